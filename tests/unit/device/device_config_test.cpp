#include "device/device_config.hpp"

#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"
#include "recmesh/protocol/timestamp.hpp"

namespace recmesh::device {
namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_device_config(yaml, "devices.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DeviceConfig, ParsesEveryKeyWithDefaults) {
  const auto config = parse_device_config(
      "broker:\n  host: 10.0.0.1\n  port: 8884\npki_dir: /pki\nrec: r1\nmember: m1\n"
      "metrics_interval_ms: 200\nseed: 9\ncrash_fraction: 0.5\nrun_length_s: 60\n"
      "devices:\n"
      "  - id: bat1\n    kind: accumulator\n    capacity_wh: 5000\n    initial_soc_percent: 20\n"
      "  - id: ev1\n    kind: load\n    member: m2\n    cert: /c.pem\n    key: /k.pem\n"
      "    cafile: /ca.pem\n",
      "devices.yaml");
  EXPECT_EQ(config.broker_host, "10.0.0.1");
  EXPECT_EQ(config.broker_port, 8884);
  EXPECT_EQ(config.metrics_interval.count(), 200);
  EXPECT_EQ(config.seed, 9u);
  ASSERT_EQ(config.devices.size(), 2u);
  EXPECT_EQ(config.devices[0].certfile, "/pki/issued/rec_r1_m1_bat1/chain.pem");
  EXPECT_EQ(config.devices[0].cafile, "/pki/ca/member_r1_m1/chain.pem");
  EXPECT_EQ(config.devices[0].rated_power_w,
            default_rated_power(protocol::DeviceKind::kAccumulator));
  EXPECT_EQ(config.devices[1].member, "m2");
  EXPECT_EQ(config.devices[1].certfile, "/c.pem");
  EXPECT_EQ(config.ems_ca, "/pki/ca/ems/cert.pem");
  EXPECT_EQ(config.diagnostic_signers, std::vector<std::string>{"ems_engine"});
}

TEST(DeviceConfig, RejectsUnknownKeysWithFileAndLine) {
  EXPECT_NE(error_of("pki_dir: /p\nrec: r1\nmember: m1\ndevices:\n  - id: a\n    kind: load\n"
                     "    colour: red\n")
                .find("devices.yaml:7: devices[0].colour: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("metrics_intervall_ms: 5\n").find("devices.yaml:1: metrics_intervall_ms"),
            std::string::npos);
}

TEST(DeviceConfig, RejectsOutOfRangeAndMissingValues) {
  const std::string devices =
      "pki_dir: /p\nrec: r1\nmember: m1\ndevices:\n  - id: a\n    kind: load\n";
  EXPECT_NE(
      error_of("crash_fraction: 1.5\n" + devices).find("crash_fraction: 1.5 is outside 0 .. 1"),
      std::string::npos);
  EXPECT_NE(error_of("broker:\n  port: 70000\n" + devices).find("devices.yaml:2: broker.port"),
            std::string::npos);
  EXPECT_NE(error_of("metrics_interval_ms: 10\n" + devices).find("metrics_interval_ms"),
            std::string::npos);
  EXPECT_NE(error_of("pki_dir: /p\nrec: r1\nmember: m1\ndevices:\n  - id: a\n    kind: toaster\n")
                .find("devices[0].kind"),
            std::string::npos);
  EXPECT_NE(
      error_of("pki_dir: /p\nrec: r1\nmember: m1\ndevices:\n  - kind: load\n").find("id: required"),
      std::string::npos);
  EXPECT_NE(error_of("pki_dir: /p\n").find("at least one device"), std::string::npos);
  EXPECT_NE(error_of("devices:\n  - id: a\n    kind: load\n").find("cert, key and cafile"),
            std::string::npos);
  EXPECT_NE(error_of(devices + "  - id: a\n    kind: generator\n").find("duplicate id"),
            std::string::npos);
}

TEST(DeviceConfig, CrashAtIsAUtcInstant) {
  const std::string head =
      "pki_dir: /p\nrec: r1\nmember: m1\ndevices:\n  - id: a\n    kind: load\n";
  const auto config = parse_device_config(head + "    crash_at: 2026-11-22T08:00:05.250Z\n", "d");
  ASSERT_TRUE(config.devices[0].crash_at.has_value());
  EXPECT_EQ(protocol::format_timestamp(*config.devices[0].crash_at), "2026-11-22T08:00:05.250Z");
  for (const char* bad : {"tomorrow", "2026-11-22 08:00:05", "2026-11-22T08:00:05+01:00", "12"}) {
    EXPECT_NE(error_of(head + "    crash_at: " + bad + "\n")
                  .find("devices.yaml:7: devices[0].crash_at: expected a UTC timestamp"),
              std::string::npos)
        << bad;
  }
}

}  // namespace
}  // namespace recmesh::device
