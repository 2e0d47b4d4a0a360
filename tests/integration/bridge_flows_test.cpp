// `recmesh bridge` between two real Mosquitto brokers: every SPEC §4.5 flow crosses in its
// direction with its QoS and retain flag, nothing else crosses, the status flag and counters
// appear on both sides, and bad input is refused and counted while good traffic goes on.
#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

#include "recmesh/protocol/telemetry_messages.hpp"

#include "bridge_fixture.hpp"

namespace recmesh::testing {
namespace {

struct Flow {
  bool from_local;  // published on the local broker (else on the central one)
  std::string topic;
  std::string expected;  // the topic on the other side; empty: must not cross
  int qos = 1;
  bool retain = false;
  bool expect_retained = false;  // the far broker keeps it as the retained message
};

std::vector<Flow> flows() {
  return {
      // SPEC §4.5, direction out
      {true, "/device/d1/status", "/r1/m1/device/d1/status", 1, true, true},
      {true, "/device/d1/status/info", "/r1/m1/device/d1/status/info", 1, true, true},
      {true, "/smart-gateway/status", "/r1/m1/smart-gateway/status", 1, true, true},
      {true, "/smart-gateway/status/info", "/r1/m1/smart-gateway/status/info", 1, true, true},
      {true, "/device/d1/diagnostic", "/r1/m1/device/d1/diagnostic", 1, false, false},
      // a diagnostic is never retained, whatever its publisher asked
      {true, "/smart-gateway/diagnostic", "/r1/m1/smart-gateway/diagnostic", 1, true, false},
      {true, "/platform/metrics/power", "/r1/m1/metrics/power", 1, false, false},
      {true, "/platform/metrics/a/b", "/r1/m1/metrics/a/b", 0, false, false},
      {true, "/platform/control/response", "/r1/m1/control/response", 1, false, false},
      {true, "/platform/logs/ERROR", "/r1/m1/logs/ERROR", 1, false, false},
      {true, "/platform/keys/response", "/r1/m1/keys/response", 1, false, false},
      {true, "/security/events", "/r1/m1/security/events", 1, false, false},
      // direction in
      {false, "/r1/m1/control", "/platform/control", 1, false, false},
      {false, "/r1/m1/keys", "/platform/keys", 0, false, false},
      // nothing else crosses
      {true, "/platform/control", "", 1, false, false},
      {true, "/platform/keys", "", 1, false, false},
      {true, "/device/d1/control", "", 1, false, false},
      {true, "/device/d1/metrics/power", "", 1, false, false},
      {true, "/platform/other", "", 1, false, false},
      {true, "/device/NOT_AN_ID/status", "", 1, true, false},
      {false, "/r1/m1/metrics/power", "", 1, false, false},
      {false, "/r1/m1/control/response", "", 1, false, false},
      {false, "/r2/m1/control", "", 1, false, false},
      {false, "/r1/m2/keys", "", 1, false, false},
  };
}

bool is_bridge_status(const std::string& topic) {
  return topic.find("/bridge/status") != std::string::npos;
}

class BridgeFlowsTest : public ::testing::Test {
 protected:
  BridgeWorld world_;
};

TEST_F(BridgeFlowsTest, EveryFlowCrossesInItsDirectionWithQosAndRetainAndNothingElse) {
  BridgeOptions options;
  world_.start_bridge(options);
  MqttTestClient central_sub("ems_engine");
  ASSERT_TRUE(central_sub
                  .connect(world_.ems_port(), world_.engine().cafile, world_.engine().cert,
                           world_.engine().key)
                  .accepted());
  ASSERT_TRUE(central_sub.subscribe("#", 1));
  MqttTestClient local_sub("rec_r1_m1_gateway");
  ASSERT_TRUE(local_sub
                  .connect(world_.member_port(), world_.gateway().cafile, world_.gateway().cert,
                           world_.gateway().key)
                  .accepted());
  ASSERT_TRUE(local_sub.subscribe("#", 1));
  // The bridge is up once its status flag is on the central broker.
  bool online = false;
  for (int i = 0; i < 100 && !online; ++i) {
    if (auto m = central_sub.wait_for_message(200ms)) {
      online = m->topic == "/r1/m1/bridge/status" && m->payload == "online";
    }
  }
  ASSERT_TRUE(online) << world_.bridge_log();
  std::this_thread::sleep_for(500ms);  // its subscriptions follow the CONNACK

  MqttTestClient local_pub("rec_r1_m1_d1");
  ASSERT_TRUE(local_pub
                  .connect(world_.member_port(), world_.device().cafile, world_.device().cert,
                           world_.device().key)
                  .accepted());
  MqttTestClient central_pub("ems_engine_pub");
  ASSERT_TRUE(central_pub
                  .connect(world_.ems_port(), world_.engine().cafile, world_.engine().cert,
                           world_.engine().key)
                  .accepted());
  const std::vector<Flow> table = flows();
  std::set<std::string> published_local;
  std::set<std::string> published_central;
  int index = 0;
  for (const Flow& flow : table) {
    (flow.from_local ? published_local : published_central)
        .insert("payload-" + std::to_string(index));
    MqttTestClient& publisher = flow.from_local ? local_pub : central_pub;
    ASSERT_TRUE(
        publisher.publish(flow.topic, "payload-" + std::to_string(index++), flow.qos, flow.retain))
        << flow.topic;
  }

  // What reaches each side from the other, within a few seconds.
  std::map<std::string, ReceivedMessage> at_central;
  std::map<std::string, ReceivedMessage> at_local;
  const auto collect = [](MqttTestClient& client, std::map<std::string, ReceivedMessage>& into,
                          const std::set<std::string>& published_here) {
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = client.wait_for_message(100ms);
      if (!m || is_bridge_status(m->topic)) {
        continue;
      }
      // Skip what the test published on this side itself (each payload is unique).
      if (!published_here.contains(m->payload)) {
        into[m->topic] = *m;
      }
    }
  };
  collect(central_sub, at_central, published_central);
  collect(local_sub, at_local, published_local);

  std::set<std::string> expected_central;
  std::set<std::string> expected_local;
  index = 0;
  for (const Flow& flow : table) {
    const std::string payload = "payload-" + std::to_string(index++);
    if (flow.expected.empty()) {
      continue;
    }
    auto& seen = flow.from_local ? at_central : at_local;
    (flow.from_local ? expected_central : expected_local).insert(flow.expected);
    ASSERT_TRUE(seen.contains(flow.expected)) << flow.topic << " did not cross";
    EXPECT_EQ(seen[flow.expected].payload, payload) << flow.topic;
    EXPECT_EQ(seen[flow.expected].qos, flow.qos) << flow.topic << ": QoS not preserved";
  }
  std::set<std::string> got_central;
  std::set<std::string> got_local;
  for (const auto& [topic, m] : at_central) {
    got_central.insert(topic);
  }
  for (const auto& [topic, m] : at_local) {
    got_local.insert(topic);
  }
  EXPECT_EQ(got_central, expected_central) << "something else crossed outwards";
  EXPECT_EQ(got_local, expected_local) << "something else crossed inwards";

  // Retain: a new subscriber on the far broker gets exactly the retained flows.
  MqttTestClient late("ems_late");
  ASSERT_TRUE(late.connect(world_.ems_port(), world_.engine().cafile, world_.engine().cert,
                           world_.engine().key)
                  .accepted());
  ASSERT_TRUE(late.subscribe("/r1/m1/#", 1));
  std::set<std::string> retained;
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = late.wait_for_message(200ms);
    if (m && !is_bridge_status(m->topic)) {
      EXPECT_TRUE(m->retain) << m->topic;
      retained.insert(m->topic);
    }
  }
  std::set<std::string> expected_retained;
  for (const Flow& flow : table) {
    if (flow.expect_retained) {
      expected_retained.insert(flow.expected);
    }
  }
  EXPECT_EQ(retained, expected_retained);

  // An empty retained message clears the far one too.
  ASSERT_TRUE(local_pub.publish("/device/d1/status", "", 1, true));
  std::this_thread::sleep_for(1s);
  MqttTestClient later("ems_later");
  ASSERT_TRUE(later
                  .connect(world_.ems_port(), world_.engine().cafile, world_.engine().cert,
                           world_.engine().key)
                  .accepted());
  ASSERT_TRUE(later.subscribe("/r1/m1/device/d1/status", 1));
  EXPECT_FALSE(later.wait_for_message(1s).has_value());

  EXPECT_GE(world_.metric_or_zero(R"(recmesh_bridge_rejected_total{reason="topic"})"), 1.0);
}

TEST_F(BridgeFlowsTest, StatusFlagAndCountersOnBothSides) {
  world_.start_bridge();
  MqttTestClient central("ems_engine");
  ASSERT_TRUE(central
                  .connect(world_.ems_port(), world_.engine().cafile, world_.engine().cert,
                           world_.engine().key)
                  .accepted());
  ASSERT_TRUE(central.subscribe("/r1/m1/bridge/#", 1));
  MqttTestClient local("rec_r1_m1_gateway");
  ASSERT_TRUE(local
                  .connect(world_.member_port(), world_.gateway().cafile, world_.gateway().cert,
                           world_.gateway().key)
                  .accepted());
  ASSERT_TRUE(local.subscribe("/bridge/#", 1));
  const auto wait_for = [](MqttTestClient& client, const std::string& topic,
                           const std::function<bool(const std::string&)>& accept) {
    for (int i = 0; i < 100; ++i) {
      if (auto m = client.wait_for_message(200ms); m && m->topic == topic && accept(m->payload)) {
        return true;
      }
    }
    return false;
  };
  const auto is = [](std::string value) {
    return [value](const std::string& payload) { return payload == value; };
  };
  EXPECT_TRUE(wait_for(central, "/r1/m1/bridge/status", is("online")));
  EXPECT_TRUE(wait_for(local, "/bridge/status", is("online")));
  // SPEC §4.2 status info, with the counters as its fields.
  const auto counters = [](const std::string& payload) {
    const auto info = protocol::StatusInfo::decode(payload);
    return info && info->status == protocol::StatusFlag::kOnline && info->fields &&
           info->fields->contains("forwarded_out") && info->fields->contains("forwarded_in") &&
           info->fields->contains("buffered") && info->fields->contains("dropped") &&
           info->fields->contains("reconnects_central") && info->fields->contains("queue_depth");
  };
  EXPECT_TRUE(wait_for(central, "/r1/m1/bridge/status/info", counters));
  EXPECT_TRUE(wait_for(local, "/bridge/status/info", counters));
  EXPECT_TRUE(world_.metric("recmesh_bridge_queue_depth").has_value());

  // SIGTERM: a clean exit that says offline on both sides.
  EXPECT_EQ(world_.stop_bridge(), 0);
  EXPECT_TRUE(wait_for(central, "/r1/m1/bridge/status", is("offline")));
  EXPECT_TRUE(wait_for(local, "/bridge/status", is("offline")));

  // A crash: the Last Will says it.
  world_.start_bridge();
  EXPECT_TRUE(wait_for(central, "/r1/m1/bridge/status", is("online")));
  world_.kill_bridge();
  EXPECT_TRUE(wait_for(central, "/r1/m1/bridge/status", is("offline")));
}

TEST_F(BridgeFlowsTest, BadInputIsRefusedAndCountedAndGoodTrafficContinues) {
  BridgeOptions options;
  options.max_payload_bytes = 2048;
  world_.start_bridge(options);
  MqttTestClient central("ems_engine");
  ASSERT_TRUE(central
                  .connect(world_.ems_port(), world_.engine().cafile, world_.engine().cert,
                           world_.engine().key)
                  .accepted());
  ASSERT_TRUE(central.subscribe("/r1/m1/metrics/#", 1));
  MqttTestClient gateway("rec_r1_m1_gateway");
  ASSERT_TRUE(gateway
                  .connect(world_.member_port(), world_.gateway().cafile, world_.gateway().cert,
                           world_.gateway().key)
                  .accepted());
  ASSERT_TRUE(eventually([&] {
    return world_.metric("recmesh_bridge_connected{broker=\"central\"}").value_or(0) == 1;
  }));
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(gateway.publish("/platform/metrics/good", "before", 1));
  // Oversize, binary, a topic outside the table (an invalid ID in a wildcard level), empty.
  ASSERT_TRUE(gateway.publish("/platform/metrics/big", std::string(4096, 'x'), 1));
  ASSERT_TRUE(gateway.publish("/platform/metrics/bin", std::string("\x00\xff\xfe\x01", 4), 1));
  ASSERT_TRUE(gateway.publish("/device/Bad_Id/status", "online", 1, true));
  ASSERT_TRUE(gateway.publish("/platform/metrics/empty", "", 1));
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(gateway.publish("/platform/metrics/big",
                                std::string(static_cast<std::size_t>(3000 + i), 'y'), 1));
  }
  ASSERT_TRUE(gateway.publish("/platform/metrics/good", "after", 1));
  std::map<std::string, std::string> seen;
  while (auto m = central.wait_for_message(2s)) {
    seen[m->topic] = m->payload;
  }
  EXPECT_EQ(seen["/r1/m1/metrics/good"], "after");
  EXPECT_EQ(seen.count("/r1/m1/metrics/big"), 0U);
  EXPECT_EQ(seen["/r1/m1/metrics/bin"], std::string("\x00\xff\xfe\x01", 4));
  EXPECT_TRUE(seen.contains("/r1/m1/metrics/empty"));
  EXPECT_EQ(world_.metric_or_zero(R"(recmesh_bridge_rejected_total{reason="oversize"})"), 51.0);
  EXPECT_EQ(world_.metric_or_zero(R"(recmesh_bridge_rejected_total{reason="topic"})"), 1.0);
  const std::string log = world_.bridge_log();
  EXPECT_NE(log.find("message refused"), std::string::npos);
  // Rate-limited: 51 refusals do not make 51 lines.
  EXPECT_LT(std::count(log.begin(), log.end(), '\n'), 40);
  EXPECT_EQ(world_.stop_bridge(), 0) << log;
}

TEST_F(BridgeFlowsTest, ConfigurationIsCheckedWithFileAndLine) {
  const fs::path config = world_.write_bridge_config({});
  EXPECT_EQ(run_recmesh({"bridge", "--config", config.string(), "--check-config"}).exit_code, 0);
  {
    std::ofstream out(config, std::ios::app);
    out << "store_max: 5\n";
  }
  const CommandResult bad = run_recmesh({"bridge", "--config", config.string(), "--check-config"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bridge.yaml:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("store_max"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace recmesh::testing
