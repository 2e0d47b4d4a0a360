#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace recmesh::protocol {

// MQTT levels of a name or filter: "/a/b" -> {"", "a", "b"}; "" -> {""}.
std::vector<std::string_view> split_levels(std::string_view text);

// If the valid filter matches `name`, the parts of `name` its wildcards matched, in order: one
// level per '+', and for '#' the rest of the name (empty when '#' matched the parent).
std::optional<std::vector<std::string_view>> capture_wildcards(std::string_view filter,
                                                               std::string_view name);

// `pattern` with its `<rec>` and `<member>` levels replaced.
std::string fill_member(std::string_view pattern, std::string_view rec, std::string_view member);

// `pattern` with `<rec>`, `<member>` and, in order, each '+' and '#' replaced by `captures`;
// nothing when the counts differ.
std::optional<std::string> fill_pattern(std::string_view pattern, std::string_view rec,
                                        std::string_view member,
                                        std::span<const std::string_view> captures);

}  // namespace recmesh::protocol
