// `recmesh gateway`: the smart gateway of one member.
#include <string>

#include "command.hpp"
#include "gateway/gateway.hpp"
#include "gateway/gateway_config.hpp"

namespace recmesh::cli {

void add_gateway_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand(
      "gateway", "Run a member's smart gateway (docs/gateway.md) until SIGTERM or SIGINT");
  auto config = std::make_shared<std::string>();
  auto check_only = std::make_shared<bool>(false);
  cmd->add_option("--config", *config, "YAML configuration of the gateway")->required();
  cmd->add_flag("--check-config", *check_only, "Validate the configuration and exit");
  cmd->callback([&run, config, check_only] {
    run = [config, check_only] {
      gateway::GatewayConfig parsed = gateway::load_gateway_config(*config);
      if (*check_only) {
        return kExitOk;
      }
      return gateway::run_gateway(std::move(parsed));
    };
  });
}

}  // namespace recmesh::cli
