#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

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

 private:
  const nlohmann::json* find(std::string_view key) const;
  nlohmann::json object_;
};

}  // namespace recmesh::secmgr
