#include "recmesh/log/log_settings.hpp"

namespace recmesh::log {

config::Schema<LogSettings> settings_schema() {
  config::Schema<LogSettings> s;
  s.field("level", &LogSettings::level, "Least severe level written; --log-level overrides it",
          level_names());
  s.field("format", &LogSettings::format,
          "Line format: human (readable) or json (one JSON object per line); --log-format "
          "overrides it",
          format_names());
  return s;
}

}  // namespace recmesh::log
