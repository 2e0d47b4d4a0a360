// The RabbitMQ authorisation endpoint served by `recmesh secmgr`: RabbitMQ's
// rabbitmq_auth_backend_http asks /auth/user, /auth/vhost, /auth/resource and /auth/topic, and
// the answers follow the central broker's policy, including changes and revocations made
// through the API.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "free_port.hpp"
#include "http_probe.hpp"
#include "secmgr_harness.hpp"

namespace recmesh::testing {
namespace {

using nlohmann::json;

class SecmgrRabbitmqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sm_.start();
    sm_.register_community("r1", "m1", {"pv-1", "gateway"});
    sm_.post("/v1/services", {{"id", "engine"}});
    sm_.post("/v1/services", {{"id", "lms"}});
    const json added = sm_.post(
        "/v1/brokers",
        {{"id", "ems_broker"}, {"host", "127.0.0.1"}, {"port", 5671}, {"connector", "rabbitmq"}});
    ASSERT_EQ(added["pushed"]["ems_broker"], "ok") << added;
  }

  std::string ask(const std::string& path) {
    const HttpReply reply = http_get(port_, path);
    EXPECT_EQ(reply.status, 200) << path << reply.head;
    return reply.body;
  }

  std::string topic(const std::string& user, const std::string& permission,
                    const std::string& routing_key) {
    return ask("/auth/topic?username=" + user + "&vhost=%2F&resource=topic&name=amq.topic" +
               "&permission=" + permission + "&routing_key=" + routing_key);
  }

  int port_ = free_tcp_port();
  SecmgrHarness sm_{"rabbitmq_auth:\n  enabled: true\n  port: " + std::to_string(port_) + "\n"};
};

TEST_F(SecmgrRabbitmqTest, AnswersFollowTheCentralPolicy) {
  EXPECT_EQ(ask("/auth/user?username=bridge_r1_m1&password="), "allow");
  EXPECT_EQ(ask("/auth/user?username=ems_engine&password="), "allow");
  EXPECT_EQ(ask("/auth/user?username=rec_r1_m1_pv-1&password="), "deny");  // local broker only
  EXPECT_EQ(ask("/auth/user?username=bridge_r9_m9&password="), "deny");
  EXPECT_EQ(ask("/auth/user?username=guest&password=guest"), "deny");
  EXPECT_EQ(ask("/auth/vhost?username=bridge_r1_m1&vhost=%2F&ip=127.0.0.1"), "allow");
  EXPECT_EQ(ask("/auth/vhost?username=bridge_r1_m1&vhost=other&ip=127.0.0.1"), "deny");
  EXPECT_EQ(ask("/auth/resource?username=bridge_r1_m1&vhost=%2F&resource=exchange&name=amq."
                "topic&permission=write"),
            "allow");
  EXPECT_EQ(ask("/auth/resource?username=bridge_r1_m1&vhost=%2F&resource=exchange&name=amq."
                "direct&permission=write"),
            "deny");
  EXPECT_EQ(ask("/auth/resource?username=bridge_r1_m1&vhost=%2F&resource=queue&name=mqtt-"
                "subscription-bridge_r1_m1qos1&permission=configure"),
            "allow");
  // Routing keys are MQTT topics with `.` for `/`: the bridge writes its member's metrics only.
  EXPECT_EQ(topic("bridge_r1_m1", "write", ".r1.m1.metrics.power"), "allow");
  EXPECT_EQ(topic("bridge_r1_m1", "write", ".r1.m2.metrics.power"), "deny");
  EXPECT_EQ(topic("bridge_r1_m1", "write", ".r1.m1.control"), "deny");
  EXPECT_EQ(topic("bridge_r1_m1", "read", ".r1.m1.control"), "allow");
  EXPECT_EQ(topic("bridge_r1_m1", "read", ".r1.%2A.control"), "deny");  // wider than its own
  EXPECT_EQ(topic("ems_engine", "write", ".r1.m1.control"), "allow");
  EXPECT_EQ(topic("ems_engine", "read", ".r1.m1.metrics.%23"), "allow");
  EXPECT_EQ(topic("ems_engine", "read", "%23"), "deny");
  EXPECT_EQ(topic("ems_lms", "write", ".r1.m1.control"), "deny");
}

TEST_F(SecmgrRabbitmqTest, ChangesAndRevocationsThroughTheApiApplyAtOnce) {
  EXPECT_EQ(topic("ems_lms", "read", ".r1.m1.metrics.power"), "deny");
  const json rule = sm_.post("/v1/rules", {{"identity", "ems_lms"},
                                           {"broker", "ems_broker"},
                                           {"permission", "read"},
                                           {"topic", "/+/+/metrics/#"}});
  EXPECT_EQ(rule["pushed"]["ems_broker"], "ok");
  EXPECT_EQ(topic("ems_lms", "read", ".r1.m1.metrics.power"), "allow");
  sm_.post("/v1/recs/r1/members/m1/revoke", json::object(), 200);
  EXPECT_EQ(ask("/auth/user?username=bridge_r1_m1&password="), "deny");
  EXPECT_EQ(topic("bridge_r1_m1", "write", ".r1.m1.metrics.power"), "deny");
}

}  // namespace
}  // namespace recmesh::testing
