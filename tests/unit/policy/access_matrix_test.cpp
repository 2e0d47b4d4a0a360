#include "recmesh/policy/access_matrix.hpp"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "recmesh/policy/policy_matcher.hpp"
#include "recmesh/protocol/topics.hpp"

namespace recmesh::policy {
namespace {

using Set = std::set<std::string>;

const MemberRegistration kM1{"r1", "m1", {"pv1", "bat1"}};
const MemberRegistration kM2{"r1", "m2", {"meter"}};

const Grant& row(const std::vector<DerivedGrant>& rows, std::string_view identity) {
  auto it = std::find_if(rows.begin(), rows.end(),
                         [&](const DerivedGrant& d) { return d.grant.identity == identity; });
  if (it == rows.end()) {
    throw std::runtime_error("no row for " + std::string(identity));
  }
  return it->grant;
}

Set set(const std::vector<std::string>& topics) {
  return {topics.begin(), topics.end()};
}

// SPEC §6, local broker of r1/m1, written out by hand from the table.
TEST(AccessMatrixTest, LocalBrokerRowsAreTheSpecTable) {
  const MemberRegistration members[] = {kM1, kM2};
  auto rows = derive_access_matrix(BrokerId::local("r1", "m1"), members);
  ASSERT_TRUE(rows.ok()) << rows.status().message;
  ASSERT_EQ(rows->size(), 5u);  // 2 devices, gateway, bridge, secmgr: m2 is not served here

  const Grant& pv1 = row(*rows, "member/r1/m1:rec_r1_m1_pv1");
  EXPECT_EQ(set(pv1.publish),
            (Set{"/device/pv1/status", "/device/pv1/status/info", "/device/pv1/diagnostic",
                 "/device/pv1/metrics/#", "/device/pv1/log/+", "/device/pv1/control/response"}));
  EXPECT_EQ(set(pv1.subscribe), (Set{"/device/pv1/control"}));

  const Grant& gw = row(*rows, "member/r1/m1:rec_r1_m1_gateway");
  EXPECT_EQ(
      set(gw.publish),
      (Set{"/device/pv1/control", "/device/bat1/control", "/platform/metrics/#",
           "/platform/control/response", "/platform/logs/+", "/platform/keys/response",
           "/smart-gateway/status", "/smart-gateway/status/info", "/smart-gateway/diagnostic"}));
  Set gw_read{"/platform/control", "/platform/keys"};
  for (std::string d : {"pv1", "bat1"}) {
    for (std::string tail :
         {"/status", "/status/info", "/metrics/#", "/log/+", "/control/response"}) {
      gw_read.insert("/device/" + d + tail);
    }
  }
  EXPECT_EQ(set(gw.subscribe), gw_read);

  const Grant& bridge = row(*rows, "bridge:bridge_r1_m1");
  EXPECT_EQ(set(bridge.publish),
            (Set{"/platform/control", "/platform/keys", "/bridge/status", "/bridge/status/info"}));
  // The device flows by wildcard: on m1's broker they are m1's devices' flows only.
  const Set bridge_read{"/device/+/status",
                        "/device/+/status/info",
                        "/device/+/diagnostic",
                        "/smart-gateway/status",
                        "/smart-gateway/status/info",
                        "/smart-gateway/diagnostic",
                        "/platform/metrics/#",
                        "/platform/control/response",
                        "/platform/logs/+",
                        "/platform/keys/response",
                        "/security/events"};
  EXPECT_EQ(set(bridge.subscribe), bridge_read);

  const Grant& secmgr = row(*rows, "ems:ems_secmgr");
  EXPECT_EQ(set(secmgr.publish), (Set{"$CONTROL/recmesh-guard/v1"}));
  EXPECT_EQ(set(secmgr.subscribe), (Set{"$CONTROL/recmesh-guard/v1/response"}));
}

// Regression: with no device registered yet the bridge's `/device/+/diagnostic` subscription was
// refused (its grant listed no device topic), and it never subscribed again once devices came.
TEST(AccessMatrixTest, TheLocalBridgeMaySubscribeWhatItCarriesBeforeAnyDeviceIsRegistered) {
  const MemberRegistration empty[] = {{"r1", "m1", {}}};
  auto bundle = derived_bundle(BrokerId::local("r1", "m1"), empty, 1, 1);
  ASSERT_TRUE(bundle.ok()) << bundle.status().message;
  const PolicyMatcher matcher(*bundle);
  const CompiledGrant* bridge = matcher.grant_of("bridge:bridge_r1_m1");
  ASSERT_NE(bridge, nullptr);
  for (const auto& filter : protocol::bridge_local_subscriptions()) {
    EXPECT_TRUE(bridge->receive.intersects(filter)) << filter;
  }
  // A device registered later is carried without a new subscription; the device's own command
  // topic and the gateway's flows stay out of the bridge's reach.
  EXPECT_TRUE(bridge->receive.matches("/device/pv9/diagnostic"));
  EXPECT_TRUE(bridge->receive.matches("/device/pv9/status/info"));
  EXPECT_FALSE(bridge->receive.matches("/device/pv9/control"));
  EXPECT_FALSE(bridge->receive.matches("/device/pv9/metrics/power"));
  EXPECT_FALSE(bridge->receive.intersects("/device/+/control"));
}

TEST(AccessMatrixTest, CentralBrokerRowsAreTheSpecTable) {
  const MemberRegistration members[] = {kM1, kM2};
  auto rows = derive_access_matrix(BrokerId::central(), members);
  ASSERT_TRUE(rows.ok()) << rows.status().message;
  ASSERT_EQ(rows->size(), 5u);  // two bridges, engine, lms, secmgr

  const Grant& bridge = row(*rows, "bridge:bridge_r1_m2");
  EXPECT_EQ(set(bridge.publish),
            (Set{"/r1/m2/device/meter/status", "/r1/m2/device/meter/status/info",
                 "/r1/m2/device/meter/diagnostic", "/r1/m2/smart-gateway/status",
                 "/r1/m2/smart-gateway/status/info", "/r1/m2/smart-gateway/diagnostic",
                 "/r1/m2/metrics/#", "/r1/m2/control/response", "/r1/m2/logs/+",
                 "/r1/m2/keys/response", "/r1/m2/security/events", "/r1/m2/bridge/status",
                 "/r1/m2/bridge/status/info", "/r1/m2/bridge/diagnostic"}));
  EXPECT_EQ(set(bridge.subscribe), (Set{"/r1/m2/control", "/r1/m2/keys"}));

  const Grant& engine = row(*rows, "ems:ems_engine");
  EXPECT_EQ(set(engine.publish),
            (Set{"/r1/m1/control", "/r1/m1/keys", "/r1/m2/control", "/r1/m2/keys"}));
  const Set engine_read = set(engine.subscribe);
  EXPECT_TRUE(engine_read.contains("/r1/m1/device/bat1/status/info"));
  EXPECT_TRUE(engine_read.contains("/r1/m2/metrics/#"));
  EXPECT_TRUE(engine_read.contains("/r1/m2/bridge/diagnostic"));
  EXPECT_TRUE(engine_read.contains("/r1/m2/logs/+"));  // sealed for it end to end
  EXPECT_FALSE(engine_read.contains("/r1/m2/security/events"));
  EXPECT_FALSE(engine_read.contains("/ems/security/events"));

  const Grant& lms = row(*rows, "ems:ems_lms");
  EXPECT_TRUE(lms.publish.empty());
  EXPECT_EQ(set(lms.subscribe), (Set{"/r1/m1/logs/+", "/r1/m1/security/events", "/r1/m2/logs/+",
                                     "/r1/m2/security/events", "/ems/security/events"}));
}

// One producer and one consumer per channel: what the bridge writes centrally is read by
// exactly one of engine and log management, except member logs, which both read (sealed for
// the engine, which opens them for log management).
TEST(AccessMatrixTest, CentralFlowsHaveOneReader) {
  const MemberRegistration members[] = {kM1};
  auto rows = derive_access_matrix(BrokerId::central(), members);
  ASSERT_TRUE(rows.ok());
  const Set engine = set(row(*rows, "ems:ems_engine").subscribe);
  const Set lms = set(row(*rows, "ems:ems_lms").subscribe);
  for (const auto& topic : row(*rows, "bridge:bridge_r1_m1").publish) {
    if (topic == "/r1/m1/logs/+") {
      EXPECT_TRUE(engine.contains(topic) && lms.contains(topic));
    } else {
      EXPECT_NE(engine.contains(topic), lms.contains(topic)) << topic;
    }
  }
  // Nothing else the engine reads is anyone's but a bridge's to write.
  for (const auto& topic : engine) {
    EXPECT_TRUE(std::ranges::count(row(*rows, "bridge:bridge_r1_m1").publish, topic) == 1) << topic;
  }
}

TEST(AccessMatrixTest, BadRegistrationsAreRefused) {
  const MemberRegistration bad_device[] = {{"r1", "m1", {"Bad_Id"}}};
  EXPECT_FALSE(derive_access_matrix(BrokerId::local("r1", "m1"), bad_device).ok());
  const MemberRegistration reserved[] = {{"r1", "m1", {"gateway"}}};
  EXPECT_FALSE(derive_access_matrix(BrokerId::local("r1", "m1"), reserved).ok());
  const MemberRegistration bad_member[] = {{"r1", "m_1", {}}};
  EXPECT_FALSE(derive_access_matrix(BrokerId::central(), bad_member).ok());
  const MemberRegistration other[] = {kM2};
  auto missing = derive_access_matrix(BrokerId::local("r1", "m1"), other);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace recmesh::policy
