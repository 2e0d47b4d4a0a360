#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "recmesh/core/error.hpp"

#include "command.hpp"

int main(int argc, char** argv) {
  using namespace recmesh;
  CLI::App app{
      "recmesh: the secure MQTT backbone of Renewable Energy Communities.\n"
      "Run `recmesh <command> --help` for the flags of each command.",
      "recmesh"};
  app.set_version_flag("--version", "recmesh 0.1.0");
  app.require_subcommand(1);
  cli::Runner run;
  cli::add_pki_commands(app, run);
  cli::add_broker_config_command(app, run);
  cli::add_device_command(app, run);
  cli::add_gateway_command(app, run);
  cli::add_ems_command(app, run);
  cli::add_ctl_command(app, run);
  cli::add_bridge_command(app, run);
  cli::add_secmgr_command(app, run);
  cli::add_sec_command(app, run);
  cli::add_sim_command(app, run);
  cli::add_demo_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? cli::kExitOk : cli::kExitUsage;
  }
  try {
    return run ? run() : cli::kExitUsage;
  } catch (const Error& e) {
    std::cerr << "recmesh: error: " << e.what() << '\n';
    return e.code() == ErrorCode::kInvalidArgument ? cli::kExitUsage : cli::kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << "recmesh: error: " << e.what() << '\n';
    return cli::kExitFailed;
  }
}
