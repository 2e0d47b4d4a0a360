#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace recmesh::secmgr {

// A request body: one JSON object whose keys are all declared. Every problem throws
// ApiError(400) naming the key; nothing of the body is echoed beyond a short quote.
class JsonBody {
 public:
  // An empty `text` is an empty object.
  JsonBody(std::string_view text, std::initializer_list<std::string_view> allowed);

  std::string required_string(std::string_view key) const;
  std::optional<std::string> optional_string(std::string_view key) const;
  std::optional<std::int64_t> optional_integer(std::string_view key, std::int64_t min,
                                               std::int64_t max) const;
  std::optional<bool> optional_bool(std::string_view key) const;
  bool has(std::string_view key) const;
  // The objects of the array `key` (none when absent), each checked like a body with its own
  // `allowed` keys; its problems name it (`devices[3]: id is required`). More than `max_items`
  // is refused.
  std::vector<JsonBody> object_list(std::string_view key,
                                    std::initializer_list<std::string_view> allowed,
                                    std::size_t max_items) const;

 private:
  JsonBody(nlohmann::json object, std::string context,
           std::initializer_list<std::string_view> allowed);
  void check_keys(std::initializer_list<std::string_view> allowed) const;
  const nlohmann::json* find(std::string_view key) const;
  nlohmann::json object_;
  std::string context_ = "request body";  // how messages name this object
};

}  // namespace recmesh::secmgr
