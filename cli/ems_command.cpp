// `recmesh ems`: the community's energy management engine.
#include "command.hpp"
#include "ems/ems_config.hpp"
#include "ems/ems_engine.hpp"
#include "yaml_daemon.hpp"

namespace recmesh::cli {

void add_ems_command(CLI::App& app, Runner& run) {
  add_yaml_daemon_command<ems::EmsConfig>(
      app, run, "ems", "Run the EMS engine (docs/ems.md) until SIGTERM or SIGINT",
      ems::load_ems_config, ems::run_ems);
}

}  // namespace recmesh::cli
