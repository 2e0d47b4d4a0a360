#pragma once

#include "recmesh/config/schema.hpp"
#include "recmesh/log/level.hpp"

namespace recmesh::log {

// The `logging` block of every daemon's configuration.
struct LogSettings {
  Level level = Level::kInfo;      // least severe level written; --log-level overrides it
  Format format = Format::kHuman;  // line format; --log-format overrides it

  bool operator==(const LogSettings&) const = default;
};

config::Schema<LogSettings> settings_schema();

}  // namespace recmesh::log
