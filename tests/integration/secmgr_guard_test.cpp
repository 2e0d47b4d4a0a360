// The recmesh-guard connector: the Security Manager's signed bundles keep a member's local
// broker and the central broker in line with the API, without restarts. SPEC §6's matrix is
// enforced, a rule change is in force at once, a revoked device is disconnected within a second
// and stays out, and revoking a member disconnects all its identities on every broker.
#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/protocol/topics.hpp"

#include "mqtt_probe.hpp"
#include "secmgr_broker_fixture.hpp"

namespace recmesh::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Pumps `client` until the broker drops it; how long that took, or nothing after `limit`.
std::optional<std::chrono::milliseconds> time_to_disconnect(MqttTestClient& client,
                                                            SteadyClock::time_point since,
                                                            std::chrono::milliseconds limit) {
  while (client.connected() && SteadyClock::now() - since < limit) {
    (void)client.wait_for_message(10ms);
  }
  if (client.connected()) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since);
}

class SecmgrGuardTest : public SecmgrBrokerFixture {
 protected:
  void SetUp() override { start_local("guard"); }

  void customise(broker::LocalBrokerOptions& options, const std::string& connector) override {
    if (connector == "guard") {
      options.guard = broker::GuardPluginOptions{RECMESH_GUARD_PLUGIN};
    }
  }

  // The central broker with recmesh-guard, registered with the manager.
  void start_central() {
    {
      pki::Pki pki = pki::Pki::open(sm_.pki(), pki::Pki::Access::kReadWrite,
                                    Secret(std::string(kTestPassphrase)));
      broker::CentralBrokerOptions options;
      options.ems_port = central_ems_;
      options.bridge_port = central_bridge_;
      options.guard = broker::GuardPluginOptions{RECMESH_GUARD_PLUGIN};
      broker::render_central_broker(pki, options, sm_.dir() / "central");
    }
    central_ = std::make_unique<MosquittoBroker>(sm_.dir() / "central" / "mosquitto.conf",
                                                 std::vector<int>{central_ems_, central_bridge_});
    const json added = sm_.post("/v1/brokers", {{"id", "ems_broker"},
                                                {"host", "127.0.0.1"},
                                                {"port", central_ems_},
                                                {"connector", "guard"}});
    ASSERT_EQ(added["pushed"]["ems_broker"], "ok") << added << central_->log();
  }

  std::unique_ptr<MqttTestClient> connect_central(const std::string& cn) {
    auto client = std::make_unique<MqttTestClient>(cn + "-central");
    (void)client->connect(central_bridge_, sm_.dir() / "pki" / "ca" / "ems" / "chain.pem",
                          client_dir(cn) / "chain.pem", client_dir(cn) / "key.pem");
    return client;
  }

  int central_ems_ = free_tcp_port();
  int central_bridge_ = free_tcp_port();
  std::unique_ptr<MosquittoBroker> central_;
};

// A member registered before any of its devices: the bridge's subscriptions are granted from the
// start, and a device registered later reaches it without the bridge subscribing again.
class SecmgrGuardEmptyMemberTest : public SecmgrGuardTest {
 protected:
  void SetUp() override {
    start_local("guard", {"gateway"}, {"rec_r1_m1_gateway", "bridge_r1_m1"});
  }
};

TEST_F(SecmgrGuardEmptyMemberTest, ADeviceRegisteredAfterTheBridgeSubscribedReachesIt) {
  auto bridge = connect_client("bridge_r1_m1");
  ASSERT_TRUE(bridge->connected()) << bridge->last_error();
  for (const std::string& filter : protocol::bridge_local_subscriptions()) {
    EXPECT_TRUE(bridge->subscribe(filter, 1)) << filter << ": " << bridge->last_error();
  }
  const json added = sm_.post("/v1/recs/r1/members/m1/devices", {{"id", "pv-1"}});
  ASSERT_EQ(added["pushed"]["broker_r1_m1"], "ok") << added;
  enrol("rec_r1_m1_pv-1");
  auto device = connect_client("rec_r1_m1_pv-1");
  ASSERT_TRUE(device->connected()) << device->last_error();
  ASSERT_TRUE(device->publish("/device/pv-1/status", "online", 1, true));
  ASSERT_TRUE(device->publish("/device/pv-1/diagnostic", "report", 1));
  std::set<std::string> got;  // the device's flows (the broker's security events come too)
  while (got.size() < 2) {
    const auto message = bridge->wait_for_message(5s);
    ASSERT_TRUE(message.has_value()) << "the new device's flows did not reach the bridge";
    if (message->topic.starts_with("/device/")) {
      got.insert(message->topic + " " + message->payload);
    }
  }
  EXPECT_EQ(
      got, (std::set<std::string>{"/device/pv-1/status online", "/device/pv-1/diagnostic report"}));
  // The device's command topic stays out of the bridge's reach.
  EXPECT_FALSE(bridge->subscribe("/device/pv-1/control", 1));
}

// The certificate that gets the bridge's rights under stock Dynamic Security
// (SecmgrDynsecTest.KnownWeaknessACommonNameCollisionGetsTheBridgesRights) is refused at
// connect: its CN is outside the domain of the member CA that issued it.
TEST_F(SecmgrGuardTest, ACommonNameCollisionIsRefusedAtConnect) {
  for (const std::string cn : {"bridge_r1_m1", "ems_engine", "ems_secmgr"}) {
    ConnectOutcome outcome;
    auto forged = connect_forged(cn, outcome);
    EXPECT_FALSE(outcome.accepted()) << cn << ": " << outcome;
    EXPECT_FALSE(forged->connected()) << cn;
  }
  // The same broker still admits the genuine bridge and a genuine device.
  EXPECT_TRUE(connect_client("bridge_r1_m1")->connected());
  EXPECT_TRUE(connect_client("rec_r1_m1_pv-1")->connected());
}

TEST_F(SecmgrGuardTest, TheDerivedMatrixIsEnforced) {
  expect_matrix_enforced();
}

TEST_F(SecmgrGuardTest, ARuleChangeThroughTheApiIsInForceWithoutRestart) {
  auto gateway = connect_client("rec_r1_m1_gateway");
  auto device = connect_client("rec_r1_m1_pv-1");
  ASSERT_TRUE(gateway->connected() && device->connected());
  EXPECT_FALSE(gateway->subscribe("/device/pv-1/firmware", 1));
  const json read = sm_.post("/v1/rules", {{"identity", "rec_r1_m1_gateway"},
                                           {"broker", "broker_r1_m1"},
                                           {"permission", "read"},
                                           {"topic", "/device/pv-1/firmware"}});
  EXPECT_EQ(read["pushed"]["broker_r1_m1"], "ok") << read;
  sm_.post("/v1/rules", {{"identity", "rec_r1_m1_pv-1"},
                         {"permission", "write"},
                         {"topic", "/device/pv-1/firmware"}});
  // The same connections, no broker restart.
  ASSERT_TRUE(gateway->subscribe("/device/pv-1/firmware", 1)) << gateway->last_error();
  ASSERT_TRUE(device->publish("/device/pv-1/firmware", "v2", 1));
  const auto got = gateway->wait_for_message(5s);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "v2");
  // Removing the rule takes the right away again.
  const json rules = sm_.get("/v1/rules?identity=rec_r1_m1_pv-1")["rules"];
  ASSERT_EQ(rules.size(), 1U);
  const auto removed = sm_.client().del("/v1/rules/" + std::to_string(rules[0]["id"].get<int>()));
  ASSERT_EQ(removed.status, 200) << removed.body;
  ASSERT_TRUE(device->publish("/device/pv-1/firmware", "v3", 1));
  ASSERT_TRUE(device->publish("/device/pv-1/status", "online", 1));
  ASSERT_TRUE(gateway->subscribe("/device/pv-1/status", 1));
  ASSERT_TRUE(device->publish("/device/pv-1/status", "marker", 1));
  std::optional<ReceivedMessage> next;
  while ((next = gateway->wait_for_message(5s)) && next->payload != "marker") {
    EXPECT_NE(next->payload, "v3") << "a removed rule still let the publication through";
  }
  EXPECT_TRUE(next.has_value());
}

TEST_F(SecmgrGuardTest, RevokingAConnectedDeviceDisconnectsItWithinASecond) {
  auto device = connect_client("rec_r1_m1_pv-1");
  ASSERT_TRUE(device->connected());
  const auto start = SteadyClock::now();
  const json revoked = sm_.post("/v1/identities/rec_r1_m1_pv-1/revoke", json::object(), 200);
  EXPECT_EQ(revoked["pushed"]["broker_r1_m1"], "ok") << revoked;
  const auto took = time_to_disconnect(*device, start, 5s);
  ASSERT_TRUE(took.has_value()) << "the revoked device is still connected";
  EXPECT_LE(took->count(), 1000) << "disconnected after " << took->count() << " ms";
  auto again = connect_client("rec_r1_m1_pv-1");
  EXPECT_FALSE(again->connected()) << "a revoked device reconnected";
  // Its neighbours are untouched.
  auto load = connect_client("rec_r1_m1_load-1");
  EXPECT_TRUE(load->connected());
}

TEST_F(SecmgrGuardTest, RevokingAMemberDisconnectsAllItsIdentitiesOnEveryBroker) {
  start_central();
  std::vector<std::unique_ptr<MqttTestClient>> connections;
  for (const auto& cn : local_identities()) {
    connections.push_back(connect_client(cn));
  }
  connections.push_back(connect_central("bridge_r1_m1"));
  for (const auto& client : connections) {
    ASSERT_TRUE(client->connected()) << client->last_error();
  }
  const auto start = SteadyClock::now();
  const json revoked = sm_.post("/v1/recs/r1/members/m1/revoke", json::object(), 200);
  EXPECT_EQ(revoked["pushed"]["broker_r1_m1"], "ok") << revoked;
  EXPECT_EQ(revoked["pushed"]["ems_broker"], "ok") << revoked;
  for (const auto& client : connections) {
    const auto took = time_to_disconnect(*client, start, 5s);
    EXPECT_TRUE(took.has_value()) << "an identity of the revoked member is still connected";
  }
  EXPECT_FALSE(connect_central("bridge_r1_m1")->connected());
  EXPECT_FALSE(connect_client("rec_r1_m1_gateway")->connected());
}

// A fresh broker is neither wide open nor dead: registered first, it is rendered with the
// bundle the manager signs for it (`recmesh sec broker bundle` → `broker-config --policy`) and
// admits its identities from its first connection, before any push reaches it.
TEST_F(SecmgrGuardTest, ABrokerSeededWithTheManagersBundleStartsWithItsPolicy) {
  const json added = sm_.post("/v1/brokers", {{"id", "ems_broker"},
                                              {"host", "127.0.0.1"},
                                              {"port", central_ems_},
                                              {"connector", "guard"}});
  // Nothing listens yet: reported at once (not after connectors.timeout) and kept as the
  // broker's last result until a later change or resync reaches it.
  const std::string pushed = added["pushed"]["ems_broker"].get<std::string>();
  EXPECT_NE(pushed.find("not reachable"), std::string::npos) << added;
  const json listed = sm_.get("/v1/brokers")["brokers"];
  const auto central_entry = std::find_if(listed.begin(), listed.end(), [](const json& broker) {
    return broker["id"] == "ems_broker";
  });
  ASSERT_NE(central_entry, listed.end()) << listed;
  EXPECT_EQ((*central_entry)["last_push_result"], pushed);
  const json bundle = sm_.get("/v1/brokers/ems_broker/bundle");
  ASSERT_TRUE(bundle["bundle"].is_string()) << bundle;
  {
    pki::Pki pki = pki::Pki::open(sm_.pki(), pki::Pki::Access::kReadWrite,
                                  Secret(std::string(kTestPassphrase)));
    broker::CentralBrokerOptions options;
    options.ems_port = central_ems_;
    options.bridge_port = central_bridge_;
    options.guard = broker::GuardPluginOptions{RECMESH_GUARD_PLUGIN};
    options.guard->seed_bundle = bundle["bundle"].get<std::string>();
    const auto rendered = broker::render_central_broker(pki, options, sm_.dir() / "central");
    EXPECT_TRUE(rendered.seeded_policy);
  }
  central_ = std::make_unique<MosquittoBroker>(sm_.dir() / "central" / "mosquitto.conf",
                                               std::vector<int>{central_ems_, central_bridge_});
  auto bridge = connect_central("bridge_r1_m1");
  EXPECT_TRUE(bridge->connected()) << bridge->last_error() << central_->log();
  EXPECT_TRUE(bridge->subscribe("/r1/m1/control", 1)) << central_->log();
  // The next change reaches the broker that now runs.
  const json next = sm_.post("/v1/recs/r1/members/m1/devices", {{"id", "pv-2"}});
  EXPECT_EQ(next["pushed"]["ems_broker"], "ok") << next << central_->log();
  // A broker the manager does not push to through the guard gets no bundle.
  EXPECT_EQ(sm_.client().get("/v1/brokers/ems_nobody/bundle").status, 404);
}

}  // namespace
}  // namespace recmesh::testing
