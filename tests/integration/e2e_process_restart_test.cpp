// Lossless end-to-end delivery across kill -9 of the end processes (docs/protocol/e2e.md §6.1):
// `recmesh ems`, `recmesh gateway` and `recmesh device` as processes on a central and a bridged
// local Mosquitto, end-to-end protection on. Under a steady QoS 1 stream of member aggregates the
// gateway and the engine are killed with SIGKILL and started again; every aggregate the gateway
// had taken into its outbox reaches the engine's database exactly once, counted by the
// aggregate's window, and a control issued before a restart of the engine is completed.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"
#include "recmesh/protocol/timestamp.hpp"

#include "child_process.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One aggregate as the engine stored it: its window identifies it.
struct Window {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
  auto operator<=>(const Window&) const = default;
};

std::int64_t ms(protocol::Timestamp t) {
  return t.time_since_epoch().count();
}

class E2eProcessRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    community_.service("engine");
    community_.gateway();
    community_.issue_devices("m1", {"pv1", "bat1", "ev1"});
    central_port_ = community_.start_central().ems_port;
    local_port_ = community_.start_local("m1", true).member_port;
    const std::string pki = community_.pki_dir().string();
    std::ofstream(ems_config_) << "broker:\n  port: " << central_port_ << "\npki_dir: " << pki
                               << "\ndatabase: " << ems_db_.string()
                               << "\npolicy_period_ms: 0\ncontrol_timeout_ms: 120000\n"
                               << "e2e:\n  handshake_timeout_s: 2\n";
    std::ofstream(gateway_config_)
        << "broker:\n  port: " << local_port_ << "\npki_dir: " << pki
        << "\nrec: r1\nmember: m1\ndatabase: " << gateway_db_.string()
        << "\nmetrics_interval_ms: 200\ndevice_timeout_ms: 5000\n"
        << "e2e:\n  handshake_timeout_s: 2\n"
        << "devices:\n  - {id: pv1, kind: generator}\n  - {id: bat1, kind: accumulator}\n"
        << "  - {id: ev1, kind: load}\n";
    std::ofstream(device_config_)
        << "broker:\n  port: " << local_port_ << "\npki_dir: " << pki
        << "\nrec: r1\nmember: m1\nmetrics_interval_ms: 200\ncrash_fraction: 0\n"
        << "devices:\n  - {id: pv1, kind: generator}\n  - {id: bat1, kind: accumulator}\n"
        << "  - {id: ev1, kind: load, initially_on: false}\n";
    ems_ = start("ems", ems_config_);
    gateway_ = start("gateway", gateway_config_);
    devices_ = start("device", device_config_);
  }

  void TearDown() override {
    devices_.reset();
    gateway_.reset();
    ems_.reset();
  }

  std::unique_ptr<testing::ChildProcess> start(const std::string& daemon, const fs::path& config) {
    ++runs_[daemon];
    return std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{testing::recmesh_binary(), daemon, "--config", config.string()},
        tmp_ / fmt::format("{}-{}.log", daemon, runs_[daemon]));
  }
  void kill(std::unique_ptr<testing::ChildProcess>& process) {
    ASSERT_EQ(process->signal_and_wait(SIGKILL, 10s), -1);
    process.reset();
  }

  std::string logs() const {
    std::string out;
    for (const auto& entry : fs::directory_iterator(tmp_.path())) {
      if (entry.path().extension() == ".log") {
        const std::string text = read_file(entry.path());
        out += "--- " + entry.path().filename().string() + "\n" +
               text.substr(text.size() > 4000 ? text.size() - 4000 : 0);
      }
    }
    return out;
  }

  // The aggregates in the engine's database, in the order stored.
  std::vector<Window> stored() const {
    std::vector<Window> out;
    if (!fs::exists(ems_db_)) {
      return out;
    }
    SqliteDatabase db(ems_db_, SqliteDatabase::Mode::kReadOnly);
    auto rows = db.prepare("SELECT payload FROM metrics WHERE metric = 'aggregate' ORDER BY id");
    while (rows.step()) {
      const auto m = protocol::MemberMetrics::decode(rows.column_text(0));
      if (m) {
        out.push_back({ms(m->window_start), ms(m->window_end)});
      }
    }
    return out;
  }
  // The aggregates the gateway holds until the engine confirms them.
  std::vector<Window> held() const {
    std::vector<Window> out;
    SqliteDatabase db(gateway_db_, SqliteDatabase::Mode::kReadOnly);
    auto rows = db.prepare(
        "SELECT payload FROM outbox WHERE topic = '/platform/metrics/aggregate' ORDER BY id");
    while (rows.step()) {
      const auto m = protocol::MemberMetrics::decode(rows.column_text(0));
      if (m) {
        out.push_back({ms(m->window_start), ms(m->window_end)});
      }
    }
    return out;
  }
  template <typename Predicate>
  bool eventually(Predicate done, std::chrono::seconds limit = 40s) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      try {
        if (done()) {
          return true;
        }
      } catch (const std::exception&) {
        // A database in the middle of being created: look again.
      }
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  bool streaming() {
    const std::size_t before = stored().size();
    return eventually([&] { return stored().size() >= before + 3; });
  }

  testing::CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"ctl", "--config", ems_config_.string(), "--json"});
    return testing::run_recmesh(args);
  }

  testing::TempDir tmp_;
  testing::TestCommunity community_{tmp_.path()};
  int central_port_ = 0;
  int local_port_ = 0;
  fs::path ems_db_ = tmp_ / "ems.db";
  fs::path gateway_db_ = tmp_ / "gateway.db";
  fs::path ems_config_ = tmp_ / "ems.yaml";
  fs::path gateway_config_ = tmp_ / "gateway.yaml";
  fs::path device_config_ = tmp_ / "device.yaml";
  std::map<std::string, int> runs_;
  std::unique_ptr<testing::ChildProcess> ems_, gateway_, devices_;
};

TEST_F(E2eProcessRestartTest, KillingTheGatewayAndTheEngineLosesAndRepeatsNoAggregate) {
  ASSERT_TRUE(streaming()) << logs();

  // The gateway dies mid-stream; what its outbox held must arrive.
  kill(gateway_);
  std::set<Window> must_arrive;
  for (const auto& w : held()) {
    must_arrive.insert(w);
  }
  gateway_ = start("gateway", gateway_config_);
  ASSERT_TRUE(streaming()) << logs();

  // The engine dies mid-stream: what was sealed into its session and is still queued for it on
  // the central broker can no longer be opened; the gateway re-seals it in the next session.
  kill(ems_);
  std::this_thread::sleep_for(1500ms);
  ems_ = start("ems", ems_config_);
  ASSERT_TRUE(streaming()) << logs();

  // Both at once, the engine first: the gateway's outbox holds the backlog through its own
  // restart.
  kill(ems_);
  std::this_thread::sleep_for(1000ms);
  kill(gateway_);
  for (const auto& w : held()) {
    must_arrive.insert(w);
  }
  ems_ = start("ems", ems_config_);
  gateway_ = start("gateway", gateway_config_);
  ASSERT_TRUE(streaming()) << logs();

  // Everything the gateway held at a kill arrives; then the stream ends.
  ASSERT_FALSE(must_arrive.empty()) << "the outbox held nothing at the kills";
  const auto all_arrived = [&] {
    const auto now = stored();
    const std::set<Window> have(now.begin(), now.end());
    return std::all_of(must_arrive.begin(), must_arrive.end(),
                       [&](const Window& w) { return have.contains(w); });
  };
  EXPECT_TRUE(eventually(all_arrived)) << logs();
  devices_.reset();
  gateway_.reset();
  std::this_thread::sleep_for(1s);  // a repeat would arrive now

  const auto windows = stored();
  ASSERT_GT(windows.size(), 15U) << logs();
  // Exactly once: no window twice.
  const std::set<Window> distinct(windows.begin(), windows.end());
  EXPECT_EQ(distinct.size(), windows.size()) << windows.size() - distinct.size() << " repeated";
  for (const auto& w : must_arrive) {
    EXPECT_TRUE(distinct.contains(w)) << "window " << w.start_ms << ".." << w.end_ms << " lost";
  }
  // Nothing lost in between: each window starts where the one before ended, except where a
  // gateway process started again (its window in memory died with the one before).
  std::size_t gaps = 0;
  for (auto it = std::next(distinct.begin()); it != distinct.end(); ++it) {
    gaps += it->start_ms != std::prev(it)->end_ms ? 1U : 0U;
  }
  EXPECT_LE(gaps, static_cast<std::size_t>(runs_["gateway"] - 1))
      << "an aggregate between two stored ones is missing";
}

TEST_F(E2eProcessRestartTest, AControlIssuedBeforeTheEngineIsKilledIsCompleted) {
  ASSERT_TRUE(streaming()) << logs();
  // The gateway is gone when the control is issued, so it cannot be answered before the kill.
  kill(gateway_);
  const auto sent = ctl({"control", "--rec", "r1", "--member", "m1", "--type", "activate-load",
                         "--device", "ev1", "--params", R"({"power_w":3000})"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err << sent.out << logs();
  const std::string id = nlohmann::json::parse(sent.out)["control_id"];
  kill(ems_);
  ems_ = start("ems", ems_config_);
  gateway_ = start("gateway", gateway_config_);

  const auto watched = ctl({"watch", id, "--timeout", "45"});
  ASSERT_EQ(watched.exit_code, 0) << watched.err << watched.out << logs();
  EXPECT_EQ(nlohmann::json::parse(watched.out)["status"], "SUCCESS") << watched.out;
}

}  // namespace
}  // namespace recmesh
