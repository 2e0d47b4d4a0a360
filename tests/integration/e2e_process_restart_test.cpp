// Lossless end-to-end delivery across kill -9 of the end processes (docs/protocol/e2e.md §6.1):
// `recmesh ems`, `recmesh gateway` and `recmesh device` as processes on a central and a bridged
// local Mosquitto, end-to-end protection on. Under a steady QoS 1 stream of member aggregates the
// gateway and the engine are killed with SIGKILL and started again; every aggregate the gateway
// had taken into its outbox reaches the engine's database exactly once, counted by the
// aggregate's window, and a control issued before a restart of the engine is completed.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"
#include "recmesh/protocol/timestamp.hpp"

#include "process_community.hpp"
#include "temp_dir.hpp"

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

using Daemon = testing::ProcessCommunity::Daemon;

class E2eProcessRestartTest : public ::testing::Test {
 protected:
  // The aggregates in the engine's database, in the order stored.
  std::vector<Window> stored() const {
    std::vector<Window> out;
    if (!fs::exists(community_.ems_database())) {
      return out;
    }
    SqliteDatabase db(community_.ems_database(), SqliteDatabase::Mode::kReadOnly);
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
    SqliteDatabase db(community_.gateway_database(), SqliteDatabase::Mode::kReadOnly);
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

  testing::TempDir tmp_;
  testing::ProcessCommunity community_{
      tmp_.path(),
      {.control_timeout_ms = 120000, .gateway_metrics_interval_ms = 200, .handshake_timeout_s = 2}};
};

TEST_F(E2eProcessRestartTest, KillingTheGatewayAndTheEngineLosesAndRepeatsNoAggregate) {
  ASSERT_TRUE(streaming()) << community_.logs();

  // The gateway dies mid-stream; what its outbox held must arrive.
  ASSERT_TRUE(community_.kill(Daemon::kGateway));
  std::set<Window> must_arrive;
  for (const auto& w : held()) {
    must_arrive.insert(w);
  }
  community_.start(Daemon::kGateway);
  ASSERT_TRUE(streaming()) << community_.logs();

  // The engine dies mid-stream: what was sealed into its session and is still queued for it on
  // the central broker can no longer be opened; the gateway re-seals it in the next session.
  ASSERT_TRUE(community_.kill(Daemon::kEms));
  std::this_thread::sleep_for(1500ms);
  community_.start(Daemon::kEms);
  ASSERT_TRUE(streaming()) << community_.logs();

  // Both at once, the engine first: the gateway's outbox holds the backlog through its own
  // restart.
  ASSERT_TRUE(community_.kill(Daemon::kEms));
  std::this_thread::sleep_for(1000ms);
  ASSERT_TRUE(community_.kill(Daemon::kGateway));
  for (const auto& w : held()) {
    must_arrive.insert(w);
  }
  community_.start(Daemon::kEms);
  community_.start(Daemon::kGateway);
  ASSERT_TRUE(streaming()) << community_.logs();

  // Everything the gateway held at a kill arrives; then the stream ends.
  ASSERT_FALSE(must_arrive.empty()) << "the outbox held nothing at the kills";
  const auto all_arrived = [&] {
    const auto now = stored();
    const std::set<Window> have(now.begin(), now.end());
    return std::all_of(must_arrive.begin(), must_arrive.end(),
                       [&](const Window& w) { return have.contains(w); });
  };
  EXPECT_TRUE(eventually(all_arrived)) << community_.logs();
  community_.stop(Daemon::kDevice);
  community_.stop(Daemon::kGateway);
  std::this_thread::sleep_for(1s);  // a repeat would arrive now

  const auto windows = stored();
  ASSERT_GT(windows.size(), 15U) << community_.logs();
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
  EXPECT_LE(gaps, static_cast<std::size_t>(community_.runs(Daemon::kGateway) - 1))
      << "an aggregate between two stored ones is missing";
}

TEST_F(E2eProcessRestartTest, AControlIssuedBeforeTheEngineIsKilledIsCompleted) {
  ASSERT_TRUE(streaming()) << community_.logs();
  // The gateway is gone when the control is issued, so it cannot be answered before the kill.
  ASSERT_TRUE(community_.kill(Daemon::kGateway));
  const auto sent =
      community_.ctl({"control", "--rec", "r1", "--member", "m1", "--type", "activate-load",
                      "--device", "ev1", "--params", R"({"power_w":3000})"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err << sent.out << community_.logs();
  const std::string id = nlohmann::json::parse(sent.out)["control_id"];
  ASSERT_TRUE(community_.kill(Daemon::kEms));
  community_.start(Daemon::kEms);
  community_.start(Daemon::kGateway);

  const auto watched = community_.ctl({"watch", id, "--timeout", "45"});
  ASSERT_EQ(watched.exit_code, 0) << watched.err << watched.out << community_.logs();
  EXPECT_EQ(nlohmann::json::parse(watched.out)["status"], "SUCCESS") << watched.out;
}

}  // namespace
}  // namespace recmesh
