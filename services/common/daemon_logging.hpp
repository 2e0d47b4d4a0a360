#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

#include "recmesh/daemon/daemon_runner.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/log/logger.hpp"

namespace YAML {  // NOLINT(readability-identifier-naming): yaml-cpp's own namespace
class Node;
}

namespace recmesh::services {

// The `logging:` block (level, format) of the device simulator's, gateway's and EMS engine's
// configuration: the same keys and names as the `logging` block of the Schema-based daemons.
log::LogSettings read_log_settings(std::string_view source, const YAML::Node& node,
                                   const std::string& prefix);

// While it lives, what the daemon logs through spdlog and log::Logger goes to standard error in
// the configured format (human lines or JSON lines) under `component`; --log-level and
// --log-format in `flags` override the configuration. Restores the previous loggers on exit.
class DaemonLogging {
 public:
  DaemonLogging(const std::string& component, log::LogSettings settings,
                const daemon::DaemonFlags& flags);
  DaemonLogging(const DaemonLogging&) = delete;
  DaemonLogging& operator=(const DaemonLogging&) = delete;
  ~DaemonLogging();

  const std::shared_ptr<log::LogOutput>& output() const { return output_; }

 private:
  std::shared_ptr<log::LogOutput> output_;
  std::shared_ptr<log::LogOutput> previous_output_;
  std::shared_ptr<spdlog::logger> previous_logger_;
};

}  // namespace recmesh::services
