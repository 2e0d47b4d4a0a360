#include "gateway/gateway_config.hpp"

#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh::gateway {
namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_gateway_config(yaml, "gateway.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const std::string kMinimal =
    "rec: r1\nmember: m1\npki_dir: /pki\ndatabase: /var/gw.db\n"
    "devices:\n  - id: pv1\n    kind: generator\n";

TEST(GatewayConfig, ParsesEveryKeyWithDefaults) {
  const auto config = parse_gateway_config(
      "broker:\n  host: 10.0.0.1\n  port: 8884\npki_dir: /pki\nrec: r1\nmember: m1\n"
      "database: /var/gw.db\nmetrics_interval_ms: 500\ndevice_timeout_ms: 2000\n"
      "log_batch_interval_ms: 1000\nmax_payload_bytes: 4096\noutbox_max_messages: 500\n"
      "island:\n  after_ms: 60000\n  threshold_w: 250\n"
      "devices:\n  - id: bat1\n    kind: accumulator\n    capacity_wh: 5000\n"
      "  - id: ev1\n    kind: load\n",
      "gateway.yaml");
  EXPECT_EQ(config.broker_host, "10.0.0.1");
  EXPECT_EQ(config.broker_port, 8884);
  EXPECT_EQ(config.metrics_interval.count(), 500);
  EXPECT_EQ(config.device_timeout.count(), 2000);
  EXPECT_EQ(config.log_batch_interval.count(), 1000);
  EXPECT_EQ(config.max_payload_bytes, 4096u);
  EXPECT_EQ(config.outbox_max_messages, 500u);
  EXPECT_EQ(config.island_after.count(), 60000);
  EXPECT_EQ(config.island_threshold_w, 250);
  EXPECT_EQ(config.common_name(), "rec_r1_m1_gateway");
  EXPECT_EQ(config.certfile, "/pki/issued/rec_r1_m1_gateway/chain.pem");
  EXPECT_EQ(config.keyfile, "/pki/issued/rec_r1_m1_gateway/key.pem");
  EXPECT_EQ(config.cafile, "/pki/ca/member_r1_m1/chain.pem");
  ASSERT_EQ(config.devices.size(), 2u);
  EXPECT_EQ(config.devices[0].kind, protocol::DeviceKind::kAccumulator);
  EXPECT_EQ(config.devices[0].capacity_wh, 5000);
  ASSERT_NE(config.find("ev1"), nullptr);
  EXPECT_EQ(config.find("ev9"), nullptr);

  const auto defaults = parse_gateway_config(kMinimal, "gateway.yaml");
  EXPECT_EQ(defaults.metrics_interval.count(), 30000);
  EXPECT_EQ(defaults.broker_port, 8883);
  EXPECT_EQ(defaults.island_after.count(), 0);
  EXPECT_EQ(defaults.outbox_max_messages, 100000u);
}

TEST(GatewayConfig, RejectsBadValuesWithFileAndLine) {
  EXPECT_NE(error_of(kMinimal + "    colour: red\n")
                .find("gateway.yaml:8: devices[0].colour: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("metrics_interval_ms: 5\n" + kMinimal)
                .find("gateway.yaml:1: metrics_interval_ms: 5 is outside 100 .. 3600000"),
            std::string::npos);
  EXPECT_NE(error_of(kMinimal + "  - id: pv1\n    kind: load\n").find("duplicate id"),
            std::string::npos);
  EXPECT_NE(error_of(kMinimal + "  - id: x\n    kind: toaster\n").find("kind: expected one of"),
            std::string::npos);
  EXPECT_NE(error_of("rec: r1\nmember: m1\npki_dir: /pki\n"
                     "devices:\n  - id: pv1\n    kind: generator\n")
                .find("database: required"),
            std::string::npos);
  EXPECT_NE(error_of("rec: r1\nmember: m1\ndatabase: d\ndevices: []\n").find("devices"),
            std::string::npos);
  EXPECT_NE(error_of("island:\n  after_ms: 50\n" + kMinimal).find("island.after_ms"),
            std::string::npos);
  EXPECT_NE(error_of("outbox_max_messages: 0\n" + kMinimal)
                .find("gateway.yaml:1: outbox_max_messages: 0 is outside 1 .. 10000000"),
            std::string::npos);
  EXPECT_NE(error_of("outbox_max_messages: many\n" + kMinimal).find("outbox_max_messages"),
            std::string::npos);
  EXPECT_NE(error_of("rec: [\n").find("gateway.yaml:"), std::string::npos);
}

}  // namespace
}  // namespace recmesh::gateway
