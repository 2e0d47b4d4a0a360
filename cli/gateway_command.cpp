// `recmesh gateway`: the smart gateway of one member.
#include "command.hpp"
#include "gateway/gateway.hpp"
#include "gateway/gateway_config.hpp"
#include "yaml_daemon.hpp"

namespace recmesh::cli {

void add_gateway_command(CLI::App& app, Runner& run) {
  add_yaml_daemon_command<gateway::GatewayConfig>(
      app, run, "gateway", "Run a member's smart gateway (docs/gateway.md) until SIGTERM or SIGINT",
      gateway::load_gateway_config, gateway::run_gateway);
}

}  // namespace recmesh::cli
