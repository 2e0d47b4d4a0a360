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

TopicSet topic_set(const std::vector<std::string>& filters) {
  TopicSet out;
  for (const auto& filter : filters) {
    out.add(filter);
  }
  return out;
}

// A topic name `filter` matches: each wildcard filled with one sample level.
std::string sample_topic(std::string_view filter) {
  std::string out;
  for (char c : filter) {
    out += (c == '+' || c == '#') ? std::string("x1") : std::string(1, c);
  }
  return out;
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

  // The platform's services have SPEC §6's wildcard rows, whatever members are registered.
  const Grant& engine = row(*rows, "ems:ems_engine");
  EXPECT_EQ(set(engine.publish), (Set{"/+/+/control", "/+/+/keys"}));
  EXPECT_EQ(set(engine.subscribe),
            (Set{"/+/+/metrics/#", "/+/+/control/response", "/+/+/keys/response",
                 "/+/+/device/+/status", "/+/+/device/+/status/info", "/+/+/device/+/diagnostic",
                 "/+/+/smart-gateway/#", "/+/+/bridge/#", "/+/+/logs/+"}));
  const TopicSet engine_read = topic_set(engine.subscribe);
  EXPECT_TRUE(engine_read.matches("/r1/m1/device/bat1/status/info"));
  EXPECT_TRUE(engine_read.matches("/r1/m2/metrics/power"));
  EXPECT_TRUE(engine_read.matches("/r1/m2/bridge/diagnostic"));
  EXPECT_TRUE(engine_read.matches("/r1/m2/logs/info"));  // sealed for it end to end
  EXPECT_FALSE(engine_read.matches("/r1/m2/security/events"));
  EXPECT_FALSE(engine_read.matches("/ems/security/events"));
  EXPECT_FALSE(engine_read.matches("/r1/m2/control"));

  const Grant& lms = row(*rows, "ems:ems_lms");
  EXPECT_TRUE(lms.publish.empty());
  EXPECT_EQ(set(lms.subscribe),
            (Set{"/+/+/logs/+", "/+/+/security/events", "/ems/security/events"}));
}

TEST(AccessMatrixTest, PlatformRowsDoNotDependOnTheMembersRegistered) {
  auto none = derive_access_matrix(BrokerId::central(), {});
  const MemberRegistration members[] = {kM1, kM2};
  auto two = derive_access_matrix(BrokerId::central(), members);
  ASSERT_TRUE(none.ok() && two.ok());
  for (const char* cn : {"ems:ems_engine", "ems:ems_lms"}) {
    EXPECT_EQ(set(row(*none, cn).publish), set(row(*two, cn).publish)) << cn;
    EXPECT_EQ(set(row(*none, cn).subscribe), set(row(*two, cn).subscribe)) << cn;
  }
}

// One producer and one consumer per channel: what the bridge writes centrally is read by
// exactly one of engine and log management, except member logs, which both read (sealed for
// the engine, which opens them for log management); and what the engine writes is read by the
// bridge of the member it is addressed to, and no other.
TEST(AccessMatrixTest, CentralFlowsHaveOneReader) {
  const MemberRegistration members[] = {kM1, kM2};
  auto rows = derive_access_matrix(BrokerId::central(), members);
  ASSERT_TRUE(rows.ok());
  const TopicSet engine = topic_set(row(*rows, "ems:ems_engine").subscribe);
  const TopicSet lms = topic_set(row(*rows, "ems:ems_lms").subscribe);
  for (const auto& filter : row(*rows, "bridge:bridge_r1_m1").publish) {
    const std::string topic = sample_topic(filter);
    if (filter == "/r1/m1/logs/+") {
      EXPECT_TRUE(engine.matches(topic) && lms.matches(topic));
    } else {
      EXPECT_NE(engine.matches(topic), lms.matches(topic)) << topic;
    }
  }
  const TopicSet m1_bridge = topic_set(row(*rows, "bridge:bridge_r1_m1").subscribe);
  const TopicSet m2_bridge = topic_set(row(*rows, "bridge:bridge_r1_m2").subscribe);
  for (const char* topic : {"/r1/m1/control", "/r1/m1/keys"}) {
    EXPECT_TRUE(topic_set(row(*rows, "ems:ems_engine").publish).matches(topic)) << topic;
    EXPECT_TRUE(m1_bridge.matches(topic)) << topic;
    EXPECT_FALSE(m2_bridge.matches(topic)) << topic;
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

// The grants that grow are one member's: its gateway's on its local broker (five subscriptions
// per device) and its bridge's on the central broker (three publications per device); the EMS
// services' rows stay the same for any community. At the most devices a member may register its
// largest list takes at most 60 % of a grant's bound; the rest is room for custom allow rules.
TEST(AccessMatrixTest, TheLargestGrantIsAMembersAndFitsItsBoundWithRoom) {
  const auto largest = [](const std::vector<DerivedGrant>& rows) {
    const DerivedGrant* found = &rows.front();
    std::size_t size = 0;
    for (const auto& r : rows) {
      for (const auto* list : {&r.grant.publish, &r.grant.subscribe}) {
        if (list->size() > size) {
          size = list->size();
          found = &r;
        }
      }
    }
    return std::pair{found->row, size};
  };
  std::vector<std::string> devices;
  for (std::size_t d = 0; d < kMaxDevicesPerMember; ++d) {
    devices.push_back("d" + std::to_string(d));
  }
  const MemberRegistration full[] = {{"r1", "m1", devices}, kM2};
  auto local = derive_access_matrix(BrokerId::local("r1", "m1"), full);
  auto central = derive_access_matrix(BrokerId::central(), full);
  ASSERT_TRUE(local.ok() && central.ok());
  EXPECT_EQ(largest(*local), std::pair(MatrixRow::kGateway, 5 * kMaxDevicesPerMember + 2));
  EXPECT_EQ(largest(*central).first, MatrixRow::kBridgeCentral);
  EXPECT_LE(largest(*central).second, largest(*local).second);
  EXPECT_LE(10 * largest(*local).second, 6 * kMaxTopicsPerGrant);

  // One device more is refused, naming the member.
  devices.push_back("one-more");
  const MemberRegistration over[] = {{"r1", "m1", devices}};
  for (const BrokerId& broker : {BrokerId::local("r1", "m1"), BrokerId::central()}) {
    auto refused = derive_access_matrix(broker, over);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(refused.status().message.find("r1/m1"), std::string::npos)
        << refused.status().message;
  }
}

}  // namespace
}  // namespace recmesh::policy
