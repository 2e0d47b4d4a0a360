// `recmesh device`: simulated devices of one or more members in one process.
#include <string>

#include "command.hpp"
#include "device/device_config.hpp"
#include "device/device_fleet.hpp"

namespace recmesh::cli {

void add_device_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand(
      "device", "Run simulated devices (docs/device-simulator.md) until SIGTERM or SIGINT");
  auto config = std::make_shared<std::string>();
  auto check_only = std::make_shared<bool>(false);
  cmd->add_option("--config", *config, "YAML configuration of the devices")->required();
  cmd->add_flag("--check-config", *check_only, "Validate the configuration and exit");
  cmd->callback([&run, config, check_only] {
    run = [config, check_only] {
      device::DeviceFleetConfig parsed = device::load_device_config(*config);
      if (*check_only) {
        return kExitOk;
      }
      return device::run_device_fleet(std::move(parsed));
    };
  });
}

}  // namespace recmesh::cli
