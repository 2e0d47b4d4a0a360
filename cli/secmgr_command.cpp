// `recmesh secmgr`: the Security Manager daemon (docs/secmgr.md).
#include <memory>

#include "recmesh/daemon/daemon_runner.hpp"

#include "command.hpp"
#include "secmgr/secmgr_config.hpp"
#include "secmgr/secmgr_daemon.hpp"

namespace recmesh::cli {

void add_secmgr_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand(
      "secmgr",
      "Run the Security Manager (docs/secmgr.md): the HTTPS API that registers RECs, members "
      "and devices, issues and revokes their certificates and pushes access policy to brokers");
  auto runner = std::make_shared<daemon::DaemonRunner<secmgr::SecmgrSettings>>(
      "recmesh-secmgr", secmgr::secmgr_schema());
  runner->add_flags(*cmd);
  cmd->callback([&run, runner] { run = [runner] { return runner->run(secmgr::run_secmgr); }; });
}

}  // namespace recmesh::cli
