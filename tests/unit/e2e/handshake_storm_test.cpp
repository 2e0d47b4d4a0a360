// A whole community's gateways asking the EMS engine for a handshake at once, over a congested
// path: the regression test of the 200-member scale run where no session came up. There the
// engine's inits filled its MQTT client's queue, answers that arrived after handshake_timeout
// were refused because a newer init had replaced theirs, and every retry made it worse.
//
// One PlatformEndpoint and kMembers MemberEndpoints on a fake clock, joined by a network that
// delays every message by more than handshake_timeout and whose engine-side client holds a
// bounded number of unacknowledged messages (as MqttClient's max_pending_messages does).
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "recmesh/e2e/endpoint.hpp"
#include "recmesh/e2e/trust_store.hpp"
#include "recmesh/pki/pki.hpp"

#include "temp_dir.hpp"

namespace recmesh::e2e {
namespace {

using namespace std::chrono_literals;

constexpr int kMembers = 60;
constexpr std::chrono::milliseconds kTick{100};
// Each way. The round trip is longer than handshake_timeout and than the longest retry gap
// (8 x handshake_timeout), so every answer arrives after its init timed out and a newer one
// went out: only an engine that still finishes earlier inits gets any session up.
constexpr std::chrono::milliseconds kLatency{5000};
// The engine's client: messages it holds at most, and how many leave it per tick.
constexpr std::size_t kClientCapacity = 40;
constexpr std::size_t kClientRatePerTick = 10;

std::string member_id(int i) {
  return fmt::format("m{:02}", i);
}

class HandshakeStormTest : public ::testing::Test {
 protected:
  static constexpr std::chrono::seconds kStart{1795305600};  // 2026-11-22T00:00:00Z

  struct InTransit {
    Clock::TimePoint arrives;
    std::string topic;
    std::string payload;
  };

  static void SetUpTestSuite() {
    dir_ = new recmesh::testing::TempDir();
    FixedClock issue_clock(Clock::TimePoint(kStart - 1h));
    auto pki = pki::Pki::create(pki_dir(), Secret("e2e storm passphrase 0123"), issue_clock);
    pki.add_rec("r1");
    for (int i = 0; i < kMembers; ++i) {
      pki.add_member("r1", member_id(i));
      pki::IssueRequest request;
      request.identity = pki::Identity::make(pki::IdentityKind::kGateway, "r1", member_id(i), "");
      pki.issue(request);
    }
    pki::IssueRequest engine;
    engine.identity = pki::Identity::make(pki::IdentityKind::kService, "", "", "engine");
    pki.issue(engine);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::filesystem::path pki_dir() { return dir_->path() / "pki"; }
  static Credentials credentials(const std::string& cn) {
    const auto dir = pki_dir() / "issued" / cn;
    return Credentials::from_files(dir / "chain.pem", dir / "key.pem");
  }

  void SetUp() override {
    settings_.handshake_timeout = 1s;
    settings_.max_concurrent_handshakes = 8;
    engine_trust_ = std::make_shared<PkiTrustStore>(pki_dir());
    platform_ = std::make_unique<PlatformEndpoint>(
        credentials("ems_engine"),
        [trust = engine_trust_](const std::string& rec, const std::string& member) {
          return trust->get("member_" + rec + "_" + member,
                            "rec_" + rec + "_" + member + "_gateway");
        },
        settings_,
        [this](const std::string& topic, std::string payload, bool) {
          if (engine_client_.size() >= kClientCapacity) {
            ++engine_refused_;
            return false;
          }
          engine_client_.push_back({clock_.now() + kLatency, topic, std::move(payload)});
          return true;
        },
        clock_);
    auto gateway_trust = std::make_shared<PkiTrustStore>(pki_dir());
    for (int i = 0; i < kMembers; ++i) {
      const std::string id = member_id(i);
      gateways_[id] = std::make_unique<MemberEndpoint>(
          credentials("rec_r1_" + id + "_gateway"), "r1", id,
          [gateway_trust] { return gateway_trust->get("ems", "ems_engine"); }, settings_,
          [this, id](const std::string& topic, std::string payload, bool) {
            // As the bridge maps it to the central broker.
            to_engine_.push_back({clock_.now() + kLatency,
                                  topic == "/platform/keys/response"
                                      ? "/r1/" + id + "/keys/response"
                                      : bound_topic("r1", id, topic),
                                  std::move(payload)});
            return true;
          },
          clock_);
    }
  }

  // One tick of the network: the engine's client sends what its rate allows, everything due
  // arrives, both sides poll.
  void tick() {
    clock_.set(clock_.now() + kTick);
    std::size_t sent = 0;
    while (!engine_client_.empty() && sent < kClientRatePerTick &&
           engine_client_.front().arrives <= clock_.now()) {
      InTransit m = std::move(engine_client_.front());
      engine_client_.pop_front();
      ++sent;
      const auto member = m.topic.substr(4, 3);  // /r1/mNN/...
      if (m.topic.ends_with("/keys")) {
        (void)gateways_.at(member)->on_keys(m.payload);
      } else {
        auto opened = gateways_.at(member)->open("/platform/control", m.payload);
        if (opened) {
          controls_opened_[member] = *opened;
        }
      }
    }
    while (!to_engine_.empty() && to_engine_.front().arrives <= clock_.now()) {
      InTransit m = std::move(to_engine_.front());
      to_engine_.pop_front();
      const auto member = m.topic.substr(4, 3);
      if (m.topic.ends_with("/keys/response")) {
        (void)platform_->on_keys_response("r1", member, m.payload);
      } else {
        auto opened = platform_->open("r1", member, m.topic, m.payload);
        if (opened) {
          metrics_opened_[member] = *opened;
        }
      }
    }
    max_in_flight_ = std::max(max_in_flight_, platform_->handshakes_in_flight());
    platform_->poll();
    for (auto& [id, gateway] : gateways_) {
      gateway->poll();
    }
  }

  bool all_established() const {
    for (const auto& [id, gateway] : gateways_) {
      if (!gateway->established() || !platform_->established("r1", id)) {
        return false;
      }
    }
    return true;
  }

  inline static recmesh::testing::TempDir* dir_ = nullptr;
  FixedClock clock_{Clock::TimePoint(kStart)};
  E2eSettings settings_;
  std::shared_ptr<PkiTrustStore> engine_trust_;
  std::unique_ptr<PlatformEndpoint> platform_;
  std::map<std::string, std::unique_ptr<MemberEndpoint>> gateways_;
  std::deque<InTransit> engine_client_;  // what the engine's client holds, in order
  std::deque<InTransit> to_engine_;
  std::map<std::string, std::string> metrics_opened_, controls_opened_;
  std::size_t engine_refused_ = 0;
  std::size_t max_in_flight_ = 0;
};

TEST_F(HandshakeStormTest, EveryGatewayGetsASessionAndAMessageFlowsOnEach) {
  // Every gateway starts at once and says hello; the engine also has a control for each.
  for (auto& [id, gateway] : gateways_) {
    gateway->start();
    ASSERT_TRUE(platform_->publish("r1", id, "/r1/" + id + "/control", "control for " + id));
  }
  // Ten minutes of fake time at most.
  for (int i = 0; i < 6000 && !all_established(); ++i) {
    tick();
  }
  ASSERT_TRUE(all_established()) << platform_->stats().handshakes_completed << " of " << kMembers
                                 << " handshakes completed";
  EXPECT_LE(max_in_flight_, settings_.max_concurrent_handshakes);
  // Each member's trust was read once, however many handshakes it took.
  EXPECT_EQ(engine_trust_->loads(), static_cast<std::uint64_t>(kMembers));

  // A message each way on every session.
  for (auto& [id, gateway] : gateways_) {
    ASSERT_TRUE(gateway->publish("/platform/metrics/aggregate", "aggregate of " + id));
  }
  for (int i = 0; i < 600 && (metrics_opened_.size() < gateways_.size() ||
                              controls_opened_.size() < gateways_.size());
       ++i) {
    tick();
  }
  for (const auto& [id, gateway] : gateways_) {
    EXPECT_EQ(metrics_opened_[id], "aggregate of " + id);
    EXPECT_EQ(controls_opened_[id], "control for " + id);
  }
  for (const auto& [id, gateway] : gateways_) {
    EXPECT_EQ(gateway->stats().refused_of(Failure::kUnknownSession), 0U) << id;
  }
}

// The engine's retries of an unanswered member back off: a gateway that never answers costs
// a handful of inits over minutes, not one per handshake_timeout.
TEST_F(HandshakeStormTest, AnUnansweredMemberIsRetriedFurtherApart) {
  platform_->connect("r1", "m00");
  std::vector<Clock::TimePoint> sent_at;
  for (int i = 0; i < 1200; ++i) {  // two minutes
    clock_.set(clock_.now() + kTick);
    while (!engine_client_.empty()) {
      sent_at.push_back(clock_.now());
      engine_client_.pop_front();  // lost on the way
    }
    platform_->poll();
  }
  // 1 s timeout: inits about 1, 2, 4, 8, 8, ... s apart (less up to a quarter): some 25 of
  // them at most, where a fixed retry would have sent 120.
  ASSERT_GE(sent_at.size(), 4U);
  EXPECT_LE(sent_at.size(), 25U);
  EXPECT_GE(sent_at.back() - sent_at[sent_at.size() - 2], 6s);
  EXPECT_GE(platform_->stats().handshakes_timed_out, sent_at.size() - 1);
}

// A gateway left without an answer spaces its hellos the same way.
TEST_F(HandshakeStormTest, AnUnansweredGatewaySpacesItsHellos) {
  auto& gateway = *gateways_.at("m00");
  gateway.start();
  for (int i = 0; i < 1200; ++i) {
    clock_.set(clock_.now() + kTick);
    gateway.poll();
  }
  // About 1, 2, 4, 8, 8, ... s apart (less up to a quarter) over 120 s.
  EXPECT_GE(gateway.stats().hellos, 4U);
  EXPECT_LE(gateway.stats().hellos, 25U);
}

}  // namespace
}  // namespace recmesh::e2e
