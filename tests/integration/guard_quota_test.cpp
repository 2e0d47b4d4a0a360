// Protocol-feature abuse (thesis §2.3.2) against recmesh-guard's quotas: publish floods,
// oversize payloads, retained spam, subscription spam, Will abuse and keep-alive bounds. The
// abusers are throttled or disconnected while a well-behaved device on the same broker keeps
// its messages flowing (a generous latency bound, not a speed assertion).
#include <algorithm>

#include <fmt/format.h>

#include "guard_harness.hpp"

namespace recmesh::guard_test {
namespace {

using policy::BrokerId;

const std::vector<policy::MemberRegistration> kMembers{
    {"r1", "m1", {"good", "flood", "big", "ret", "subs", "will", "kick", "idle", "swap"}}};

class GuardQuotaTest : public GuardFixture {
 protected:
  void SetUp() override {
    GuardFixture::SetUp();
    broker_ = local_broker("m1");
    secmgr_ = publisher(broker_.management, "secmgr-quota");
    auto bundle = matrix_bundle(BrokerId::local("r1", "m1"), kMembers, 1);
    policy::Quota q;
    q.publish_per_second = 20;
    q.bytes_per_second = 64 * 1024;
    q.max_payload_bytes = 1024;
    q.max_retained = 2;
    q.max_subscriptions = 3;
    q.max_will_bytes = 64;
    q.keepalive_min_s = 5;
    q.keepalive_max_s = 300;
    bundle.default_quota = q;
    for (auto& grant : bundle.grants) {
      if (grant.identity.ends_with("_kick")) {
        policy::Quota strict = q;
        strict.disconnect_after_violations = 50;
        grant.quota = strict;
      }
      if (grant.identity.ends_with("_gateway") || grant.identity.starts_with("bridge:")) {
        grant.quota = policy::Quota{};  // the readers are not limited
      }
    }
    push_ok(*secmgr_, bundle);
    gateway_ = connect("gw", gateway("m1"));
    ASSERT_TRUE(gateway_);
    ASSERT_TRUE(gateway_->subscribe("/device/+/metrics/#"));
    ASSERT_TRUE(gateway_->subscribe("/device/+/status"));
    bridge_ = connect("bridge", bridge("m1"), broker_.bridge);
    ASSERT_TRUE(bridge_);
    ASSERT_TRUE(bridge_->subscribe("/security/events"));
  }

  std::unique_ptr<GuardClient> connect(const std::string& id, const Cert& cert, int port = 0,
                                       const GuardClient::Options& options = {}) {
    auto client = std::make_unique<GuardClient>(id);
    if (!client->connect(port == 0 ? broker_.member : port, root_ca(), cert, options)) {
      return nullptr;
    }
    return client;
  }

  // Messages the gateway got on `topic_prefix` within `window`.
  std::vector<Received> gateway_messages(const std::string& topic_prefix,
                                         std::chrono::milliseconds window) {
    std::vector<Received> out;
    const auto deadline = SteadyClock::now() + window;
    while (SteadyClock::now() < deadline) {
      if (auto m = gateway_->wait_message(50ms); m && m->topic.starts_with(topic_prefix)) {
        out.push_back(*m);
      }
    }
    return out;
  }

  bool security_event(const std::string& needle, std::chrono::milliseconds timeout = 3s) {
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      if (auto m = bridge_->wait_message(100ms);
          m && m->payload.find(needle) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  LocalBroker broker_;
  std::unique_ptr<policy::GuardPublisher> secmgr_;
  std::unique_ptr<GuardClient> gateway_;
  std::unique_ptr<GuardClient> bridge_;
};

TEST_F(GuardQuotaTest, PublishFloodIsThrottledWhileAWellBehavedDeviceKeepsItsLatency) {
  auto flood = connect("flood", device("m1", "flood"));
  auto good = connect("good", device("m1", "good"));
  ASSERT_TRUE(flood && good);
  std::atomic<bool> stop{false};
  std::thread flooder([&] {
    for (int i = 0; i < 20000 && !stop; ++i) {
      flood->publish_async("/device/flood/metrics/power", std::to_string(i), 0);
      if (i % 200 == 0) {
        std::this_thread::sleep_for(1ms);
      }
    }
  });
  // The well-behaved device publishes 10 messages at 5/s; each must arrive, in bounded time.
  std::vector<long> latencies_ms;
  std::size_t flood_seen = 0;
  for (int i = 0; i < 10; ++i) {
    const auto sent = SteadyClock::now();
    ASSERT_TRUE(good->publish("/device/good/metrics/power", fmt::format("good-{}", i)));
    bool arrived = false;
    while (!arrived && SteadyClock::now() - sent < 3s) {
      auto m = gateway_->wait_message(100ms);
      if (!m) {
        continue;
      }
      if (m->topic == "/device/flood/metrics/power") {
        ++flood_seen;
      } else if (m->payload == fmt::format("good-{}", i)) {
        arrived = true;
      }
    }
    ASSERT_TRUE(arrived) << "message " << i << " of the well-behaved device";
    latencies_ms.push_back(static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - sent).count()));
    std::this_thread::sleep_for(200ms);
  }
  stop = true;
  flooder.join();
  flood_seen += gateway_messages("/device/flood/", 500ms).size();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  RecordProperty("good_p90_ms", static_cast<int>(latencies_ms[8]));
  EXPECT_LT(latencies_ms[8], 1000) << "generous bound for the well-behaved device";
  // About 2 s of flooding at 20/s plus a burst of 20: far below what was sent.
  EXPECT_LT(flood_seen, 200u);
  EXPECT_GT(flood_seen, 0u);
  EXPECT_TRUE(security_event("\"publish rate\""));
}

TEST_F(GuardQuotaTest, SustainedAbuseDisconnects) {
  auto kick = connect("kick", device("m1", "kick"));
  ASSERT_TRUE(kick);
  for (int i = 0; i < 500 && !kick->disconnected(); ++i) {
    kick->publish_async("/device/kick/metrics/power", "x", 0);
  }
  EXPECT_TRUE(kick->wait_disconnected(3s));
  auto good = connect("good", device("m1", "good"));
  ASSERT_TRUE(good);
  ASSERT_TRUE(good->publish("/device/good/metrics/power", "still here"));
  EXPECT_FALSE(gateway_messages("/device/good/", 500ms).empty());
}

// A bundle that gives a so far unlimited client a rate it keeps to neither throttles nor
// disconnects it: its bucket starts full under the new limit (it used to start empty, so the
// first bursts after the swap counted as violations).
TEST_F(GuardQuotaTest, APolicySwapDoesNotThrottleAClientWithinItsNewRate) {
  const auto bundle_with = [&](std::uint64_t sequence, const policy::Quota& quota) {
    auto bundle = matrix_bundle(BrokerId::local("r1", "m1"), kMembers, sequence);
    for (auto& grant : bundle.grants) {
      grant.quota = grant.identity.ends_with("_swap") ? quota : policy::Quota{};
    }
    return bundle;
  };
  push_ok(*secmgr_, bundle_with(2, policy::Quota{}));
  auto swap = connect("swap", device("m1", "swap"));
  ASSERT_TRUE(swap);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(swap->publish_async("/device/swap/metrics/power", "unlimited", 0));
  }
  policy::Quota limited;
  limited.publish_per_second = 200;
  limited.disconnect_after_violations = 3;
  push_ok(*secmgr_, bundle_with(3, limited));
  // A burst of 40 at once (a fifth of a second's worth), then bursts of 10 every 100 ms: within
  // 200/s throughout.
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(swap->publish_async("/device/swap/metrics/power", "burst", 0));
  }
  for (int burst = 0; burst < 10; ++burst) {
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(swap->publish_async("/device/swap/metrics/power", "limited", 0));
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(swap->wait_disconnected(1s)) << "disconnected right after the swap";
  EXPECT_FALSE(security_event("rec_r1_m1_swap", 500ms)) << "a quota event for the swap client";
}

TEST_F(GuardQuotaTest, OversizePayloadsAreDropped) {
  auto big = connect("big", device("m1", "big"));
  ASSERT_TRUE(big);
  ASSERT_TRUE(big->publish("/device/big/metrics/blob", std::string(4096, 'x')));
  ASSERT_TRUE(big->publish("/device/big/metrics/blob", std::string(1000, 'y')));
  const auto seen = gateway_messages("/device/big/", 700ms);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].payload.size(), 1000u);
  EXPECT_TRUE(security_event("\"payload size\""));
}

TEST_F(GuardQuotaTest, RetainedSpamIsCapped) {
  auto ret = connect("ret", device("m1", "ret"));
  ASSERT_TRUE(ret);
  ASSERT_TRUE(ret->publish("/device/ret/status", "online", 1, true));
  ASSERT_TRUE(ret->publish("/device/ret/status/info", "{}", 1, true));
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(ret->publish(fmt::format("/device/ret/metrics/m{}", i), "spam", 1, true));
  }
  // A new reader sees two retained messages of this device, not twenty-two.
  auto reader = connect("reader", gateway("m1"));
  ASSERT_TRUE(reader);
  ASSERT_TRUE(reader->subscribe("/device/ret/#"));
  std::size_t retained = 0;
  while (auto m = reader->wait_message(700ms)) {
    retained += m->retain ? 1u : 0u;
  }
  EXPECT_EQ(retained, 2u);
  EXPECT_TRUE(security_event("\"retained messages\""));
}

TEST_F(GuardQuotaTest, SubscriptionSpamIsCapped) {
  auto subs = connect("subs", device("m1", "subs"));
  ASSERT_TRUE(subs);
  EXPECT_TRUE(subs->subscribe("/device/subs/control"));
  EXPECT_TRUE(subs->subscribe("/device/+/control"));
  EXPECT_TRUE(subs->subscribe("/+/subs/control"));
  EXPECT_FALSE(subs->subscribe("/device/subs/#"));
  EXPECT_FALSE(subs->subscribe("#"));
  EXPECT_TRUE(security_event("\"subscriptions\""));
}

TEST_F(GuardQuotaTest, WillAbuseIsDropped) {
  GuardClient::Options oversize;
  oversize.will = {"/device/will/status", std::string(500, 'w')};
  auto will = connect("will", device("m1", "will"), 0, oversize);
  ASSERT_TRUE(will);
  will->drop();
  EXPECT_TRUE(gateway_messages("/device/will/", 1000ms).empty()) << "oversize Will dropped";
  EXPECT_TRUE(security_event("\"will size\""));

  GuardClient::Options foreign_topic;
  foreign_topic.will = {"/device/good/status", "offline"};
  auto impostor = connect("will-2", device("m1", "will"), 0, foreign_topic);
  ASSERT_TRUE(impostor);
  impostor->drop();
  EXPECT_TRUE(gateway_messages("/device/good/", 1000ms).empty()) << "Will outside the grant";

  GuardClient::Options fair;
  fair.will = {"/device/will/status", "offline"};
  auto honest = connect("will-3", device("m1", "will"), 0, fair);
  ASSERT_TRUE(honest);
  honest->drop();
  const auto seen = gateway_messages("/device/will/", 1500ms);
  ASSERT_EQ(seen.size(), 1u) << "a Will within the quota is delivered";
  EXPECT_EQ(seen[0].payload, "offline");
}

TEST_F(GuardQuotaTest, KeepAliveOutsideTheBoundsIsRefused) {
  GuardClient::Options never;
  never.keepalive = 0;
  EXPECT_EQ(connect("idle-0", device("m1", "idle"), 0, never), nullptr);
  GuardClient::Options lazy;
  lazy.keepalive = 3600;
  EXPECT_EQ(connect("idle-1", device("m1", "idle"), 0, lazy), nullptr);
  EXPECT_NE(connect("idle-2", device("m1", "idle")), nullptr);
  EXPECT_TRUE(broker_.process->wait_for_log("keep-alive 3600 s is above the maximum", 3s));
}

}  // namespace
}  // namespace recmesh::guard_test
