#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recmesh::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };

enum class Format {
  kHuman,  // one readable line per event
  kJson,   // one JSON object per line (JSON Lines)
};

// Names as written in configuration files and flags: trace, debug, info, warn, error, critical,
// off; human, json.
std::string_view to_string(Level level);
std::string_view to_string(Format format);
const std::vector<std::pair<std::string, Level>>& level_names();
const std::vector<std::pair<std::string, Format>>& format_names();
std::optional<Level> parse_level(std::string_view name);
std::optional<Format> parse_format(std::string_view name);

}  // namespace recmesh::log
