// The dynsec connector on stock Mosquitto: the Security Manager pushes SPEC §6's matrix as
// Dynamic Security roles over $CONTROL/dynamic-security/v1, and the broker enforces it. The
// checks are generated from the derived rules: every allowed publication reaches its consumer,
// every other identity's attempt on the same topic does not, and only consumers may subscribe.
#include <algorithm>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mqtt_probe.hpp"
#include "secmgr_broker_fixture.hpp"

namespace recmesh::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class SecmgrDynsecTest : public SecmgrBrokerFixture {
 protected:
  void SetUp() override { start_local("dynsec"); }
};

TEST_F(SecmgrDynsecTest, TheDerivedMatrixIsEnforcedOnStockMosquitto) {
  expect_matrix_enforced();
}

TEST_F(SecmgrDynsecTest, ARuleChangeThroughTheApiIsInForceWithoutRestart) {
  const pid_t broker_pid = broker_->pid();
  auto probe = connect_client("rec_r1_m1_gateway");
  EXPECT_FALSE(probe->subscribe("/device/pv-1/firmware", 1));
  const json added = sm_.post("/v1/rules", {{"identity", "rec_r1_m1_gateway"},
                                            {"broker", "broker_r1_m1"},
                                            {"permission", "read"},
                                            {"topic", "/device/pv-1/firmware"}});
  EXPECT_EQ(added["pushed"]["broker_r1_m1"], "ok") << added;
  sm_.post("/v1/rules", {{"identity", "rec_r1_m1_pv-1"},
                         {"permission", "write"},
                         {"topic", "/device/pv-1/firmware"}});
  auto gateway = connect_client("rec_r1_m1_gateway");
  auto device = connect_client("rec_r1_m1_pv-1");
  ASSERT_TRUE(gateway->subscribe("/device/pv-1/firmware", 1)) << gateway->last_error();
  ASSERT_TRUE(device->publish("/device/pv-1/firmware", "v2", 1));
  const auto got = gateway->wait_for_message(5s);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "v2");
  EXPECT_EQ(broker_->pid(), broker_pid);
  EXPECT_TRUE(broker_->running());
}

TEST_F(SecmgrDynsecTest, RevokingADeviceDeletesItsClientAndDisconnectsIt) {
  auto device = connect_client("rec_r1_m1_pv-1");
  ASSERT_TRUE(device->publish("/device/pv-1/status", "online", 1));
  const json revoked = sm_.post("/v1/identities/rec_r1_m1_pv-1/revoke", json::object(), 200);
  EXPECT_EQ(revoked["pushed"]["broker_r1_m1"], "ok") << revoked;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (device->connected() && std::chrono::steady_clock::now() < deadline) {
    (void)device->wait_for_message(50ms);
  }
  EXPECT_FALSE(device->connected()) << "dynsec did not disconnect the revoked client";
  // Without a CRL reload Mosquitto still completes the handshake, but the client has no rights.
  auto again = connect_client("rec_r1_m1_pv-1");
  if (again->connected()) {
    EXPECT_FALSE(again->subscribe("/device/pv-1/control", 1));
  }
}

// The documented weakness of stock Dynamic Security (docs/secmgr.md; thesis §3.5.2,
// mosquitto#2423): the plugin keys clients by username, which is the certificate's CN whatever
// CA issued it, so a certificate of the member's CA named like the bridge gets the bridge's
// rights: it reads what the platform is sent and writes what only the platform may. This test
// keeps the documentation true; SecmgrGuardTest.ACommonNameCollisionIsRefusedAtConnect shows
// recmesh-guard refusing the same certificate.
TEST_F(SecmgrDynsecTest, KnownWeaknessACommonNameCollisionGetsTheBridgesRights) {
  const auto grants = local_grants();
  ASSERT_TRUE(grants.contains("bridge_r1_m1") && grants.contains("rec_r1_m1_pv-1"));
  const policy::Grant& bridge = grants.at("bridge_r1_m1");
  const policy::Grant& device = grants.at("rec_r1_m1_pv-1");
  const auto lacks = [](const std::vector<std::string>& rights, const std::string& filter) {
    return std::find(rights.begin(), rights.end(), filter) == rights.end();
  };
  // A flow out (the gateway writes, only the bridge reads) and one in (only the bridge writes,
  // the gateway reads).
  std::string out_filter;
  std::string out_topic;
  for (const auto& filter : bridge.subscribe) {
    for (const auto& written : grants.at("rec_r1_m1_gateway").publish) {
      if (out_topic.empty() && lacks(device.subscribe, filter) &&
          policy::filter_matches(filter, concrete(written))) {
        out_filter = filter;
        out_topic = concrete(written);
      }
    }
  }
  std::string in_topic;
  std::string in_filter;
  for (const auto& written : bridge.publish) {
    for (const auto& filter : grants.at("rec_r1_m1_gateway").subscribe) {
      if (in_topic.empty() && lacks(device.publish, written) &&
          policy::filter_matches(filter, concrete(written))) {
        in_topic = concrete(written);
        in_filter = filter;
      }
    }
  }
  ASSERT_FALSE(out_topic.empty());
  ASSERT_FALSE(in_topic.empty());
  SCOPED_TRACE("out: " + out_topic + ", in: " + in_topic);

  auto gateway = connect_client("rec_r1_m1_gateway");
  auto genuine = connect_client("rec_r1_m1_pv-1");
  ASSERT_TRUE(gateway->connected() && genuine->connected());
  ASSERT_TRUE(gateway->subscribe(in_filter, 1)) << gateway->last_error();
  // The control: a device's own certificate gets neither right.
  EXPECT_FALSE(genuine->subscribe(out_filter, 1));
  genuine->publish(in_topic, "from the device", 1);

  ConnectOutcome outcome;
  auto forged = connect_forged("bridge_r1_m1", outcome);
  ASSERT_TRUE(outcome.accepted()) << outcome;
  EXPECT_TRUE(forged->subscribe(out_filter, 1)) << forged->last_error();
  ASSERT_TRUE(forged->publish(in_topic, "forged command", 1));
  std::optional<ReceivedMessage> got;
  while ((got = gateway->wait_for_message(5s)) && got->topic != in_topic) {
  }
  ASSERT_TRUE(got.has_value()) << "the forged bridge could not write to the gateway";
  EXPECT_EQ(got->payload, "forged command") << "the device's publication got through";

  ASSERT_TRUE(gateway->publish(out_topic, "member data", 1));
  while ((got = forged->wait_for_message(5s)) && got->topic != out_topic) {
  }
  ASSERT_TRUE(got.has_value()) << "the forged bridge did not read what the bridge reads";
  EXPECT_EQ(got->payload, "member data");
}

}  // namespace
}  // namespace recmesh::testing
