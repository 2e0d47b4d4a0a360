// `recmesh bridge`: the bridging module of one member.
#include <memory>

#include "recmesh/daemon/daemon_runner.hpp"

#include "bridge/bridge.hpp"
#include "bridge/bridge_settings.hpp"
#include "command.hpp"

namespace recmesh::cli {

void add_bridge_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand(
      "bridge",
      "Run a member's bridging module (docs/bridge.md): SPEC 4.5 flows between the local and "
      "the central broker, stored durably while either side is down, until SIGTERM or SIGINT");
  auto runner = std::make_shared<daemon::DaemonRunner<bridge::BridgeSettings>>(
      "recmesh-bridge", bridge::bridge_schema());
  runner->add_flags(*cmd);
  cmd->callback([&run, runner] { run = [runner] { return runner->run(bridge::run_bridge); }; });
}

}  // namespace recmesh::cli
