#pragma once

// ProcessCommunity: member m1 of REC r1 run as an operator runs it, for integration tests of the
// daemons as processes. `recmesh ems` on TestCommunity's central broker, `recmesh gateway` and
// `recmesh device` on m1's local broker, bridged to the central one by `recmesh bridge`;
// end-to-end protection on (the default). m1 has pv1 (generator), bat1 (accumulator) and ev1
// (load, initially off), registered before the brokers start.
//
// Use:
//   using Daemon = testing::ProcessCommunity::Daemon;
//   testing::TempDir tmp;
//   testing::ProcessCommunity community(tmp.path());   // brokers, configs, the three daemons
//   const auto members = community.ctl({"members"});   // `recmesh ctl --json` as the operator
//   ASSERT_TRUE(community.kill(Daemon::kGateway));     // SIGKILL by PID
//   community.start(Daemon::kGateway);                 // again, same config and database
//   ... << community.logs();                           // on failure: what the processes said
//
// Files in <dir>: <daemon>.yaml, ems.db, gateway.db, and one log per run of a daemon,
// <daemon>-<run>.log (runs counted from 1). Destroyed, the daemons stop by PID in the order
// devices, gateway, engine (the gateway then stops with nothing in flight), then the brokers.

#include <array>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "test_community.hpp"

namespace recmesh::testing {

// What differs between tests; the rest of the three configurations is fixed.
struct ProcessCommunitySettings {
  int control_timeout_ms = 20000;         // the engine's control_timeout_ms
  int gateway_metrics_interval_ms = 500;  // how often the gateway publishes its aggregate
  // e2e.handshake_timeout_s of the engine and the gateway; their default when unset.
  std::optional<int> handshake_timeout_s;
};

class ProcessCommunity {
 public:
  // Indexes: the order the daemons start in.
  enum class Daemon : std::size_t { kEms, kGateway, kDevice };

  explicit ProcessCommunity(std::filesystem::path dir, ProcessCommunitySettings settings = {});
  ProcessCommunity(const ProcessCommunity&) = delete;
  ProcessCommunity& operator=(const ProcessCommunity&) = delete;
  ~ProcessCommunity();

  std::filesystem::path config(Daemon daemon) const;
  std::filesystem::path ems_database() const { return dir_ / "ems.db"; }
  std::filesystem::path gateway_database() const { return dir_ / "gateway.db"; }

  // Starts `daemon` with its configuration (a process still running is stopped first).
  void start(Daemon daemon);
  // Ends it by PID: SIGTERM, then SIGKILL when it lingers.
  void stop(Daemon daemon);
  // Ends it by PID with SIGKILL; whether the signal ended it.
  [[nodiscard]] bool kill(Daemon daemon);
  // How many times `daemon` was started, the first included.
  int runs(Daemon daemon) const { return runs_[index(daemon)]; }

  // `recmesh ctl --config <ems.yaml> --json args...`.
  CommandResult ctl(std::vector<std::string> args) const;
  // The last `tail_bytes` of every log in <dir> (daemons, the bridge), each under its name.
  std::string logs(std::size_t tail_bytes = 4000) const;

 private:
  static constexpr std::size_t kDaemons = 3;
  static std::size_t index(Daemon daemon) { return static_cast<std::size_t>(daemon); }
  void write_configs(const ProcessCommunitySettings& settings, int central_port, int local_port);

  std::filesystem::path dir_;
  TestCommunity community_;
  std::array<int, kDaemons> runs_{};
  std::array<std::unique_ptr<ChildProcess>, kDaemons> processes_;
};

}  // namespace recmesh::testing
