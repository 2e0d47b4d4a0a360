// `recmesh device`: simulated devices of one or more members in one process.
#include "command.hpp"
#include "device/device_config.hpp"
#include "device/device_fleet.hpp"
#include "yaml_daemon.hpp"

namespace recmesh::cli {

void add_device_command(CLI::App& app, Runner& run) {
  add_yaml_daemon_command<device::DeviceFleetConfig>(
      app, run, "device",
      "Run simulated devices (docs/device-simulator.md) until SIGTERM or SIGINT",
      device::load_device_config, device::run_device_fleet);
}

}  // namespace recmesh::cli
