#pragma once

// The command line of the daemons configured by services/common/daemon_config (device,
// gateway, ems): the standard daemon flags, the configuration checked before anything starts,
// and logs in the configured format.

#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "recmesh/daemon/daemon_runner.hpp"

#include "command.hpp"
#include "common/daemon_logging.hpp"

namespace recmesh::cli {

template <typename Config>
void add_yaml_daemon_command(CLI::App& app, Runner& run, const std::string& name,
                             const std::string& description,
                             std::function<Config(const std::filesystem::path&)> load,
                             std::function<int(Config)> body) {
  auto* cmd = app.add_subcommand(name, description);
  auto flags = std::make_shared<daemon::DaemonFlags>();
  daemon::add_daemon_flags(*cmd, *flags);
  cmd->get_option("--config")->required();
  cmd->get_option("--check-config")
      ->description("Check the configuration and exit: 0 when it is usable, 2 naming the problem");
  cmd->callback([&run, flags, name, load = std::move(load), body = std::move(body)] {
    run = [flags, name, load, body] {
      Config config = load(flags->config_file);  // a bad file throws: exit 2
      if (flags->check_config) {
        std::cout << flags->config_file << ": valid " << name << " configuration\n";
        return kExitOk;
      }
      const services::DaemonLogging logging(name, config.logging, *flags);
      return body(std::move(config));
    };
  });
}

}  // namespace recmesh::cli
