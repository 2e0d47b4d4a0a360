// The non-template parts of field conversion and checking (recmesh/config/field.hpp).
#include <system_error>

#include "recmesh/config/field.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::config::detail {

std::string check_path(const std::filesystem::path& path, PathCheck check) {
  if (check == PathCheck::kNone) {
    return {};
  }
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) {
    return quote_untrusted(path.string(), 200) + " does not exist";
  }
  if (check == PathCheck::kExistingFile && !std::filesystem::is_regular_file(status)) {
    return quote_untrusted(path.string(), 200) + " is not a regular file";
  }
  if (check == PathCheck::kExistingDirectory && !std::filesystem::is_directory(status)) {
    return quote_untrusted(path.string(), 200) + " is not a directory";
  }
  return {};
}

std::optional<std::string> convert_text(const ConfigValue& value, std::string& error) {
  if (value.kind != ConfigValue::Kind::kScalar) {
    error = expected("a string", value);
    return std::nullopt;
  }
  error = control_character_error(value.text);
  if (!error.empty()) {
    return std::nullopt;
  }
  return value.text;
}

std::string render_string_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    out += (i == 0 ? "" : ", ") + yaml_quote(items[i]);
  }
  return out + "]";
}

std::string not_allowed(std::string_view value, const std::vector<std::string>& allowed) {
  std::string out = quote_untrusted(value) + " is not allowed";
  if (auto suggestion = closest_match(value, allowed)) {
    out += " (did you mean " + *suggestion + "?)";
  }
  return out;
}

std::string expected(std::string_view what, const ConfigValue& value) {
  return "expected " + std::string(what) + ", got " + describe(value);
}

}  // namespace recmesh::config::detail
