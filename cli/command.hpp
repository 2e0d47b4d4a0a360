#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace recmesh::cli {

// Exit codes of every recmesh command (docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRejected =
    1;                                 // a verdict: e.g. `pki verify` found the certificate invalid
inline constexpr int kExitUsage = 2;   // malformed flags or arguments
inline constexpr int kExitFailed = 3;  // the operation could not be carried out

// Each subcommand registers its flags and sets `run` to what executes it.
using Runner = std::function<int()>;

void add_pki_commands(CLI::App& app, Runner& run);
void add_broker_config_command(CLI::App& app, Runner& run);
void add_device_command(CLI::App& app, Runner& run);
void add_gateway_command(CLI::App& app, Runner& run);
void add_ems_command(CLI::App& app, Runner& run);
void add_ctl_command(CLI::App& app, Runner& run);
void add_bridge_command(CLI::App& app, Runner& run);
void add_secmgr_command(CLI::App& app, Runner& run);
void add_sec_command(CLI::App& app, Runner& run);
void add_sim_command(CLI::App& app, Runner& run);
void add_demo_command(CLI::App& app, Runner& run);

}  // namespace recmesh::cli
