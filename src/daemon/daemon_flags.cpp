#include <CLI/CLI.hpp>

#include "recmesh/daemon/daemon_runner.hpp"
#include "recmesh/log/level.hpp"

namespace recmesh::daemon {

void add_daemon_flags(CLI::App& app, DaemonFlags& flags) {
  std::vector<std::string> levels;
  for (const auto& [name, level] : log::level_names()) {
    levels.push_back(name);
  }
  std::vector<std::string> formats;
  for (const auto& [name, format] : log::format_names()) {
    formats.push_back(name);
  }
  app.add_option("--config", flags.config_file,
                 "YAML configuration file; keys left out keep their defaults "
                 "(docs/configuration.md)")
      ->type_name("FILE");
  app.add_flag("--check-config", flags.check_config,
               "Check the configuration, print it with every default filled in, and exit: 0 "
               "when it is usable, 2 with every problem otherwise");
  app.add_option("--log-level", flags.log_level, "Override logging.level")
      ->type_name("LEVEL")
      ->check(CLI::IsMember(levels));
  app.add_option("--log-format", flags.log_format, "Override logging.format")
      ->type_name("FORMAT")
      ->check(CLI::IsMember(formats));
}

}  // namespace recmesh::daemon
