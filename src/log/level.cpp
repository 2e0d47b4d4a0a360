#include "recmesh/log/level.hpp"

#include <algorithm>

namespace recmesh::log {

const std::vector<std::pair<std::string, Level>>& level_names() {
  static const std::vector<std::pair<std::string, Level>> names{
      {"trace", Level::kTrace}, {"debug", Level::kDebug}, {"info", Level::kInfo},
      {"warn", Level::kWarn},   {"error", Level::kError}, {"critical", Level::kCritical},
      {"off", Level::kOff},
  };
  return names;
}

const std::vector<std::pair<std::string, Format>>& format_names() {
  static const std::vector<std::pair<std::string, Format>> names{
      {"human", Format::kHuman},
      {"json", Format::kJson},
  };
  return names;
}

namespace {

template <typename E>
std::string_view name_of(const std::vector<std::pair<std::string, E>>& names, E value) {
  const auto found = std::find_if(names.begin(), names.end(),
                                  [value](const auto& entry) { return entry.second == value; });
  return found == names.end() ? std::string_view("unknown") : std::string_view(found->first);
}

template <typename E>
std::optional<E> value_of(const std::vector<std::pair<std::string, E>>& names,
                          std::string_view name) {
  const auto found = std::find_if(names.begin(), names.end(),
                                  [name](const auto& entry) { return entry.first == name; });
  return found == names.end() ? std::nullopt : std::optional<E>(found->second);
}

}  // namespace

std::string_view to_string(Level level) {
  return name_of(level_names(), level);
}
std::string_view to_string(Format format) {
  return name_of(format_names(), format);
}
std::optional<Level> parse_level(std::string_view name) {
  return value_of(level_names(), name);
}
std::optional<Format> parse_format(std::string_view name) {
  return value_of(format_names(), name);
}

}  // namespace recmesh::log
