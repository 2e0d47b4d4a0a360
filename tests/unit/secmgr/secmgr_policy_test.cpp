// The policy the connectors push, computed from the registry (pure functions, no I/O).
#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "secmgr/dynsec_connector.hpp"
#include "secmgr/policy_compiler.hpp"
#include "secmgr/rabbitmq_auth_endpoint.hpp"

namespace recmesh::secmgr {
namespace {

using nlohmann::json;

// A string member of a command, or "" when it has none.
std::string text_of(const json& command, const char* key) {
  const auto it = command.find(key);
  return it != command.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

class PolicyCompilerTest : public ::testing::Test {
 protected:
  PolicyCompilerTest() {
    snapshot_.members = {{"r1", "m1", "active", 0}, {"r1", "m2", "revoked", 0}};
    snapshot_.identities = {
        {"rec_r1_m1_pv", "device", "r1", "m1", "pv", "active", 0},
        {"rec_r1_m1_old", "device", "r1", "m1", "old", "revoked", 0},
        {"rec_r1_m1_gateway", "gateway", "r1", "m1", "gateway", "active", 0},
        {"bridge_r1_m1", "bridge", "r1", "m1", "", "active", 0},
        {"bridge_r1_m2", "bridge", "r1", "m2", "", "revoked", 0},
        {"ems_engine", "service", "", "", "engine", "active", 0},
    };
    local_.id = "broker_r1_m1";
    local_.role = "local";
    local_.rec = "r1";
    local_.member = "m1";
    central_.id = "ems_broker";
    central_.role = "central";
  }

  const policy::Grant* grant(const policy::PolicyBundle& bundle, const std::string& key) {
    for (const auto& g : bundle.grants) {
      if (g.identity == key) {
        return &g;
      }
    }
    return nullptr;
  }

  PolicySnapshot snapshot_;
  BrokerRecord local_;
  BrokerRecord central_;
};

TEST_F(PolicyCompilerTest, DerivesTheMatrixForRegisteredDevicesOnly) {
  const auto bundle = compile_policy(local_, snapshot_, 7, 100);
  EXPECT_EQ(bundle.broker, "local/r1/m1");
  EXPECT_EQ(bundle.sequence, 7U);
  const auto* device = grant(bundle, "member/r1/m1:rec_r1_m1_pv");
  ASSERT_NE(device, nullptr);
  EXPECT_TRUE(contains(device->publish, "/device/pv/status"));
  EXPECT_TRUE(contains(device->subscribe, "/device/pv/control"));
  EXPECT_EQ(grant(bundle, "member/r1/m1:rec_r1_m1_old"), nullptr);
  const auto* gateway = grant(bundle, "member/r1/m1:rec_r1_m1_gateway");
  ASSERT_NE(gateway, nullptr);
  EXPECT_TRUE(contains(gateway->publish, "/device/pv/control"));
  EXPECT_FALSE(contains(gateway->publish, "/device/old/control"));
  EXPECT_TRUE(contains(bundle.revocations.identities, "member/r1/m1:rec_r1_m1_old"));
  EXPECT_TRUE(contains(bundle.revocations.domains, "member/r1/m2"));
}

TEST_F(PolicyCompilerTest, CustomRulesAllowAndDenyOnTheBrokersTheyName) {
  snapshot_.rules = {
      {1, "rec_r1_m1_pv", "*", "write", "/device/pv/firmware", true, "", "", 0},
      {2, "rec_r1_m1_pv", "*", "write", "/device/pv/status", false, "", "", 0},
      {3, "bridge_r1_m1", "ems_broker", "read", "/r1/m1/extra", true, "", "", 0},
      {4, "rec_r1_m1_old", "*", "write", "/device/old/x", true, "", "", 0},
      {5, "ems_engine", "*", "read", "/ems/extra", true, "", "", 0},
  };
  const auto local = compile_policy(local_, snapshot_, 1, 0);
  const auto* device = grant(local, "member/r1/m1:rec_r1_m1_pv");
  ASSERT_NE(device, nullptr);
  EXPECT_TRUE(contains(device->publish, "/device/pv/firmware"));
  EXPECT_FALSE(contains(device->publish, "/device/pv/status"));
  EXPECT_EQ(grant(local, "member/r1/m1:rec_r1_m1_old"), nullptr);
  EXPECT_EQ(grant(local, "ems:ems_engine"), nullptr);  // a local broker does not serve it
  const auto central = compile_policy(central_, snapshot_, 1, 0);
  const auto* bridge = grant(central, "bridge:bridge_r1_m1");
  ASSERT_NE(bridge, nullptr);
  EXPECT_TRUE(contains(bridge->subscribe, "/r1/m1/extra"));
  const auto* engine = grant(central, "ems:ems_engine");
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(contains(engine->subscribe, "/ems/extra"));
  EXPECT_EQ(grant(central, "bridge:bridge_r1_m2"), nullptr);
}

TEST_F(PolicyCompilerTest, TheDeviceQuotaLimitsDevicesOnly) {
  const auto unlimited = compile_policy(local_, snapshot_, 1, 0);
  const auto* unlimited_device = grant(unlimited, "member/r1/m1:rec_r1_m1_pv");
  ASSERT_NE(unlimited_device, nullptr);
  EXPECT_FALSE(unlimited_device->quota.has_value());
  policy::Quota quota;
  quota.publish_per_second = 20;
  quota.max_retained = 8;
  const auto local = compile_policy(local_, snapshot_, 1, 0, quota);
  const auto* device = grant(local, "member/r1/m1:rec_r1_m1_pv");
  ASSERT_NE(device, nullptr);
  ASSERT_TRUE(device->quota.has_value());
  EXPECT_EQ(*device->quota, quota);
  const auto* gateway = grant(local, "member/r1/m1:rec_r1_m1_gateway");
  ASSERT_NE(gateway, nullptr);
  EXPECT_FALSE(gateway->quota.has_value());
  const auto* bridge = grant(local, "bridge:bridge_r1_m1");
  ASSERT_NE(bridge, nullptr);
  EXPECT_FALSE(bridge->quota.has_value());
  EXPECT_EQ(local.default_quota, policy::Quota{});
  for (const auto& g : compile_policy(central_, snapshot_, 1, 0, quota).grants) {
    EXPECT_FALSE(g.quota.has_value()) << g.identity;
  }
}

TEST_F(PolicyCompilerTest, RevokedCertificatesBecomeSerialRevocationsOfTheirDomain) {
  snapshot_.revoked_certificates = {{"member_r1_m1", "00ABCDEF"}, {"bridge", "1234"}};
  const auto bundle = compile_policy(local_, snapshot_, 1, 0);
  ASSERT_EQ(bundle.revocations.serials.size(), 2U);
  EXPECT_EQ(bundle.revocations.serials[0].domain, "member/r1/m1");
  EXPECT_EQ(bundle.revocations.serials[0].serial, "ABCDEF");
  EXPECT_EQ(bundle.revocations.serials[1].domain, "bridge");
}

TEST(DynsecCommandsTest, SendsOnlyTheDifference) {
  policy::PolicyBundle bundle;
  bundle.grants = {{"member/r1/m1:rec_r1_m1_pv", {"/device/pv/status"}, {"/device/pv/control"}, {}},
                   {"ems:ems_secmgr", {"$CONTROL/recmesh-guard/v1"}, {}, {}}};
  bundle.revocations.identities = {"member/r1/m1:rec_r1_m1_old"};
  const json clients = json::array(
      {{{"username", "ems_secmgr"}, {"roles", json::array({{{"rolename", kDynsecAdminRole}}})}},
       {{"username", "rec_r1_m1_old"}, {"roles", json::array({{{"rolename", "rec_r1_m1_old"}}})}},
       {{"username", "rec_r1_m1_pv"}, {"roles", json::array({{{"rolename", "rec_r1_m1_pv"}}})}}});
  const json roles = json::array(
      {{{"rolename", "rec_r1_m1_pv"},
        {"acls",
         json::array(
             {{{"acltype", "publishClientSend"}, {"topic", "/device/pv/status"}, {"allow", true}},
              {{"acltype", "publishClientSend"}, {"topic", "/device/pv/gone"}, {"allow", true}}})}},
       {{"rolename", "rec_r1_m1_old"}, {"acls", json::array()}},
       {{"rolename", kDynsecAdminRole}, {"acls", json::array()}}});
  const json commands = dynsec_commands(bundle, clients, roles, "ems_secmgr");
  std::vector<std::string> seen;
  for (const auto& c : commands) {
    seen.push_back(text_of(c, "command") + " " + text_of(c, "username") + text_of(c, "rolename") +
                   " " + text_of(c, "topic"));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "setDefaultACLAccess  ",
                      "deleteClient rec_r1_m1_old ",
                      "deleteRole rec_r1_m1_old ",
                      "removeRoleACL rec_r1_m1_pv /device/pv/gone",
                      "addRoleACL rec_r1_m1_pv /device/pv/control",
                      "addRoleACL rec_r1_m1_pv /device/pv/control",
                  }));
}

TEST(DynsecCommandsTest, TheBootstrapGivesTheManagerTheControlTopicOnly) {
  const json config = json::parse(dynsec_bootstrap_config("ems_secmgr"));
  EXPECT_EQ(config["defaultACLAccess"]["publishClientSend"], false);
  ASSERT_EQ(config["clients"].size(), 1U);
  EXPECT_EQ(config["clients"][0]["username"], "ems_secmgr");
  for (const auto& acl : config["roles"][0]["acls"]) {
    EXPECT_EQ(acl["topic"], "$CONTROL/dynamic-security/#");
  }
}

TEST(RabbitmqTopicsTest, CoversOnlySubsetsAndMapsRoutingKeys) {
  EXPECT_TRUE(filter_covers("/+/+/metrics/#", "/r1/m1/metrics/#"));
  EXPECT_TRUE(filter_covers("/+/+/metrics/#", "/+/+/metrics/power"));
  EXPECT_TRUE(filter_covers("/r1/m1/control", "/r1/m1/control"));
  EXPECT_FALSE(filter_covers("/r1/m1/control", "/r1/+/control"));
  EXPECT_FALSE(filter_covers("/+/+/metrics/#", "#"));
  EXPECT_FALSE(filter_covers("/+/+/metrics", "/+/+/metrics/x"));
  EXPECT_FALSE(filter_covers("/a/+", "/a/#"));
  EXPECT_EQ(mqtt_topic_of_routing_key(".r1.m1.metrics.#"), "/r1/m1/metrics/#");
  EXPECT_EQ(mqtt_topic_of_routing_key(".*.*.control"), "/+/+/control");
}

}  // namespace
}  // namespace recmesh::secmgr
