#pragma once

// Conversions between configuration text and typed values, shared by every field type.
// Each parse function returns nothing and sets `error` to a sentence fragment such as
// "expected an integer, got \"abc\"" when the text is not acceptable.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/config/config_value.hpp"

namespace recmesh::config {

// A decimal integer as written: sign and magnitude, so that every integer type can range-check
// it without overflow. At most 19 digits ("+" and leading zeros allowed, nothing else).
struct IntegerText {
  bool negative = false;
  std::uint64_t magnitude = 0;
};
std::optional<IntegerText> parse_integer(std::string_view text, std::string& error);

// A finite decimal number ("0.5", "-3", "1e3"); NaN and infinities are refused.
std::optional<double> parse_number(std::string_view text, std::string& error);

// "0" or <digits><unit> with unit ms, s, m, h or d; returns milliseconds.
std::optional<std::int64_t> parse_duration_ms(std::string_view text, std::string& error);

// <digits>[unit] with unit B, KiB, MiB, GiB or TiB (no unit: bytes); returns bytes.
std::optional<std::uint64_t> parse_byte_size(std::string_view text, std::string& error);

// The largest unit that represents the value exactly: 90000 -> "90s", 120000 -> "2m".
std::string format_duration_ms(std::int64_t ms);
// The largest IEC unit that represents the value exactly: 65536 -> "64KiB".
std::string format_byte_size(std::uint64_t bytes);
// A number that reads back as the same double.
std::string format_number(double value);

// A YAML double-quoted scalar holding `text` exactly.
std::string yaml_quote(std::string_view text);

// A short printable description of a value for error messages: a quoted, escaped and truncated
// scalar, or "a mapping", "a list", "nothing".
std::string describe(const ConfigValue& value);

// An error fragment when `text` holds a control character (line breaks included), else empty.
std::string control_character_error(std::string_view text);

// The candidate nearest to `word` by edit distance, when it is near enough to be a likely typo.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

// "a, b or c".
std::string join_alternatives(const std::vector<std::string>& words);

}  // namespace recmesh::config
