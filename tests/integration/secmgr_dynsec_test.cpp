// The dynsec connector on stock Mosquitto: the Security Manager pushes SPEC §6's matrix as
// Dynamic Security roles over $CONTROL/dynamic-security/v1, and the broker enforces it. The
// checks are generated from the derived rules: every allowed publication reaches its consumer,
// every other identity's attempt on the same topic does not, and only consumers may subscribe.
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

}  // namespace
}  // namespace recmesh::testing
