// End-to-end protection across restarts on the real path: the EMS engine on the central
// Mosquitto, the member's gateway on its local Mosquitto, `recmesh bridge` between them, a steady
// stream of member aggregates through the gateway's durable outbox. What docs/protocol/e2e.md §6
// promises: every aggregate the local broker acknowledged reaches the engine's application once,
// counted by e2e sequence, and nothing is refused for a session the engine dropped too early.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "ems/ems_engine.hpp"
#include "gateway/gateway.hpp"
#include "loop_thread.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::Failure;

class E2eRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    community_.gateway();
    community_.service("engine");
    central_ems_port_ = community_.start_central().ems_port;
    local_port_ = community_.start_local("m1", true).member_port;
  }

  void TearDown() override {
    stop_stream();
    if (gateway_) {
      loop_.stop_and_wait(*gateway_);
    }
    if (engine_) {
      loop_.stop_and_wait(*engine_);
    }
    loop_.stop();
    gateway_.reset();
    engine_.reset();
  }

  static e2e::E2eSettings settings() {
    e2e::E2eSettings s;
    s.handshake_timeout = 1s;
    return s;
  }

  void start_engine() {
    ems::EmsConfig config;
    config.broker_port = central_ems_port_;
    config.pki_dir = community_.pki_dir();
    config.database = tmp_ / "ems.db";
    config.policy_period = 0ms;
    config.e2e = settings();
    config.resolve_and_validate();
    loop_.run([&] {
      engine_ = std::make_unique<ems::EmsEngine>(loop_.loop(), config);
      engine_->start();
      return 0;
    });
    ASSERT_TRUE(loop_.eventually([&] { return engine_->connected(); }));
  }

  void start_gateway() {
    gateway::GatewayConfig config;
    config.broker_port = local_port_;
    config.pki_dir = community_.pki_dir();
    config.rec = "r1";
    config.member = "m1";
    config.database = tmp_ / "gateway.db";
    config.metrics_interval = 1h;  // the stream below publishes the aggregates
    config.devices = {{"pv1", protocol::DeviceKind::kGenerator, 10000}};
    config.e2e = settings();
    config.resolve_and_validate();
    loop_.run([&] {
      gateway_ = std::make_unique<gateway::Gateway>(loop_.loop(), config);
      gateway_->start();
      return 0;
    });
    ASSERT_TRUE(loop_.eventually([&] { return gateway_->connected(); }));
  }

  bool sessions_up() {
    return loop_.eventually(
        [&] { return engine_->e2e()->established("r1", "m1") && gateway_->e2e()->established(); });
  }

  // One aggregate every `period` on the loop, as the gateway's timer would, until stop_stream().
  void start_stream(std::chrono::milliseconds period) {
    loop_.run([this, period] {
      streaming_ = true;
      schedule(period);
      return 0;
    });
  }
  void schedule(std::chrono::milliseconds period) {
    stream_timer_ = loop_.loop().add_timer(period, [this, period] {
      stream_timer_ = 0;
      if (streaming_ && gateway_) {
        gateway_->publish_aggregate();
        schedule(period);
      }
    });
  }
  void stop_stream() {
    loop_.run([this] {
      streaming_ = false;
      if (stream_timer_ != 0) {
        loop_.loop().cancel_timer(stream_timer_);
        stream_timer_ = 0;
      }
      return 0;
    });
  }

  // Readers for the loop thread.
  std::uint64_t published() const { return gateway_->counters().aggregates_published; }
  std::uint64_t stored() const { return engine_->counters().metrics_stored; }
  std::uint64_t lost_sessions() const {
    const auto& s = engine_->e2e()->stats();
    return s.refused_of(Failure::kNoSession) + s.refused_of(Failure::kUnknownSession);
  }

  // Runs the stream for `before`, calls `fault`, runs it for `after`, and checks that every
  // aggregate published reached the engine's application exactly once.
  void stream_across(const std::function<void()>& fault, std::chrono::milliseconds before = 2s,
                     std::chrono::milliseconds after = 3s) {
    start_stream(50ms);
    std::this_thread::sleep_for(before);
    const auto stored_before = loop_.run([&] { return stored(); });
    ASSERT_GT(stored_before, 0U);
    fault();
    std::this_thread::sleep_for(after);
    stop_stream();
    const auto total = loop_.run([&] { return published(); });
    ASSERT_GT(total, stored_before);
    EXPECT_TRUE(loop_.eventually([&] { return stored() >= total; }, 45s))
        << "published " << total << ", stored " << loop_.run([&] { return stored(); });
    std::this_thread::sleep_for(500ms);  // a duplicate would arrive now
    EXPECT_EQ(loop_.run([&] { return stored(); }), total);
    // Nothing was refused for a session the engine no longer held. A QoS 1 redelivery of an
    // envelope already opened is refused as replayed, which is what keeps the count exact.
    EXPECT_EQ(loop_.run([&] { return lost_sessions(); }), 0U);
  }

  testing::TempDir tmp_;
  testing::TestCommunity community_{tmp_.path()};
  int central_ems_port_ = 0;
  int local_port_ = 0;
  testing::LoopThread loop_;
  std::unique_ptr<ems::EmsEngine> engine_;
  std::unique_ptr<gateway::Gateway> gateway_;
  bool streaming_ = false;
  mqtt::EventLoop::TimerId stream_timer_ = 0;
};

// The gateway reconnects to its restarted broker while it still holds its session: the engine
// must keep opening what was sealed in that session (reconnects, a re-handshake, an offline
// flag on the way are no reason to refuse it).
TEST_F(E2eRestartTest, LocalBrokerRestartUnderAStreamLosesNoAggregate) {
  start_engine();
  start_gateway();
  ASSERT_TRUE(sessions_up());
  stream_across([&] { community_.local("m1").restart(); });
}

TEST_F(E2eRestartTest, LocalBrokerRestartsTwiceInARowLoseNoAggregate) {
  start_engine();
  start_gateway();
  ASSERT_TRUE(sessions_up());
  stream_across([&] {
    community_.local("m1").restart();
    std::this_thread::sleep_for(300ms);
    community_.local("m1").restart();
  });
}

}  // namespace
}  // namespace recmesh
