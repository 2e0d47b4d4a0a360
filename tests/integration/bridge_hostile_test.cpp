// A hostile local broker: a TLS server holding the local broker's certificate that answers the
// bridge's CONNECT and then sends what no honest broker would — a payload beyond
// max_payload_bytes, a topic outside SPEC §4.5, then a malformed packet. The bridge refuses and
// counts, forwards the honest message sent between them, survives the malformed packet by
// reconnecting, and keeps running.
#include <string>
#include <thread>

#include "bridge_fixture.hpp"
#include "scripted_broker.hpp"

namespace recmesh::testing {
namespace {

TEST(BridgeHostileTest, AHostileLocalBrokerIsRefusedCountedAndSurvived) {
  BridgeWorld world;
  ScriptedBroker hostile(
      world.dir() / "local" / "server.crt", world.dir() / "local" / "server.key",
      [](ScriptedBroker::Connection& connection, int number) {
        connection.read_packet(2s);  // CONNECT
        connection.write(mqtt_bytes::connack());
        if (number == 1) {
          std::this_thread::sleep_for(200ms);
          std::string burst;
          burst += mqtt_bytes::publish("/platform/metrics/big", std::string(4096, 'x'), 1, 1);
          burst += mqtt_bytes::publish("/not/in/the/table", "x", 1, 2);
          burst += mqtt_bytes::publish("/r1/m1/control", "wrong direction", 1, 3);
          burst += mqtt_bytes::publish("/platform/metrics/honest", "honest", 1, 4);
          connection.write(burst);
          std::this_thread::sleep_for(500ms);
          // A remaining length of five bytes: malformed.
          connection.write(std::string("\x30\xff\xff\xff\xff\x7f", 6));
        }
        // Keep the connection until the bridge drops it (or 2 s of silence).
        connection.drain_until_closed(2s);
      });
  MqttTestClient central("ems_engine");
  ASSERT_TRUE(
      central
          .connect(world.ems_port(), world.engine().cafile, world.engine().cert, world.engine().key)
          .accepted());
  ASSERT_TRUE(central.subscribe("/r1/m1/metrics/#", 1));
  BridgeOptions options;
  options.max_payload_bytes = 2048;
  options.local_port = hostile.port();
  world.start_bridge(options);

  std::optional<ReceivedMessage> honest;
  for (int i = 0; i < 50 && !honest; ++i) {
    honest = central.wait_for_message(200ms);
  }
  ASSERT_TRUE(honest.has_value()) << world.bridge_log();
  EXPECT_EQ(honest->topic, "/r1/m1/metrics/honest");
  EXPECT_EQ(honest->payload, "honest");
  EXPECT_FALSE(central.wait_for_message(500ms).has_value()) << "something else crossed";

  const auto metric = [&](const std::string& series) { return world.metric_or_zero(series); };
  EXPECT_TRUE(eventually([&] {
    return metric(R"(recmesh_bridge_rejected_total{reason="oversize"})") == 1 &&
           metric(R"(recmesh_bridge_rejected_total{reason="topic"})") == 2;
  })) << world.bridge_log();
  // The malformed packet ends that connection; the bridge connects again and keeps running.
  EXPECT_TRUE(eventually([&] { return hostile.connections() >= 2; })) << world.bridge_log();
  EXPECT_TRUE(eventually(
      [&] { return metric(R"(recmesh_bridge_reconnects_total{broker="local"})") >= 1; }));
  EXPECT_EQ(world.stop_bridge(), 0) << world.bridge_log();
}

}  // namespace
}  // namespace recmesh::testing
