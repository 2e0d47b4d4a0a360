// `recmesh ems`: the community's energy management engine.
#include <memory>
#include <string>

#include "command.hpp"
#include "ems/ems_config.hpp"
#include "ems/ems_engine.hpp"

namespace recmesh::cli {

void add_ems_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("ems", "Run the EMS engine (docs/ems.md) until SIGTERM or SIGINT");
  auto config = std::make_shared<std::string>();
  auto check_only = std::make_shared<bool>(false);
  cmd->add_option("--config", *config, "YAML configuration of the engine")->required();
  cmd->add_flag("--check-config", *check_only, "Validate the configuration and exit");
  cmd->callback([&run, config, check_only] {
    run = [config, check_only] {
      ems::EmsConfig parsed = ems::load_ems_config(*config);
      if (*check_only) {
        return kExitOk;
      }
      return ems::run_ems(std::move(parsed));
    };
  });
}

}  // namespace recmesh::cli
