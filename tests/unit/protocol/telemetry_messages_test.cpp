#include "recmesh/protocol/telemetry_messages.hpp"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/protocol/limits.hpp"

namespace recmesh::protocol {
namespace {

using nlohmann::json;

constexpr std::string_view kStatusInfo = R"({
  "timestamp": "2025-06-01T11:58:02.000Z",
  "status": "online",
  "reason": "reconnected after a Wi-Fi outage",
  "reconnect_attempts": 4,
  "fields": {"rssi_dbm": -71}
})";

constexpr std::string_view kDeviceMetrics = R"({
  "kind": "accumulator",
  "state": "charging",
  "voltage_v": 51.2,
  "current_a": -19.5,
  "power_w": -998.4,
  "energy_delivered_wh": 120345.0,
  "energy_absorbed_wh": 131002.5,
  "temperature_c": 28.5,
  "soc_percent": 63.0,
  "timestamp": "2025-06-01T12:00:00.000Z"
})";

constexpr std::string_view kMemberMetrics = R"({
  "window_start": "2025-06-01T11:45:00.000Z",
  "window_end": "2025-06-01T12:00:00.000Z",
  "production_w": 4200.0,
  "consumption_w": 1850.5,
  "storage_power_w": -1000.0,
  "storage_soc_percent": 63.0,
  "net_exchange_w": 1349.5,
  "energy": {"produced_wh": 1050.0, "consumed_wh": 462.6, "charged_wh": 250.0,
             "discharged_wh": 0.0, "exported_wh": 337.4, "imported_wh": 0.0},
  "devices": {"on": 2, "off": 0, "idle": 0, "charging": 1, "discharging": 0, "curtailed": 0,
              "fault": 0, "offline": 1}
})";

constexpr std::string_view kDiagnosticReport = R"({
  "timestamp": "2025-06-01T12:00:02.000Z",
  "trigger": "command",
  "command_id": "0b7e5d0c-2f4a-4e61-8a3d-9c1e2f3a4b5c",
  "software_version": "recmesh-sim-0.1.0",
  "firmware_version": "2.4.1",
  "firmware_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  "uptime_s": 86400,
  "memory": {"total_bytes": 268435456, "used_bytes": 73400320},
  "cpu_load_percent": 12.5,
  "details": {"partitions": ["a", "b"], "active": "a"}
})";

constexpr std::string_view kLogRecord = R"({
  "level": "ERROR",
  "timestamp": "2025-06-01T12:00:03.512Z",
  "source": "inverter",
  "message": "DC input voltage out of range",
  "fields": {"voltage_v": 612.0, "limit_v": 600.0}
})";

std::string canonical(std::string_view pretty) {
  return json::parse(pretty).dump();
}

template <typename T>
void expect_round_trip(std::string_view sample) {
  auto decoded = T::decode(sample);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message;
  auto encoded = decoded->encode();
  ASSERT_TRUE(encoded.ok()) << encoded.status().message;
  EXPECT_EQ(*encoded, canonical(sample));
  auto again = T::decode(*encoded);
  ASSERT_TRUE(again.ok()) << again.status().message;
  EXPECT_EQ(*again, *decoded);
}

TEST(TelemetryMessagesTest, RoundTripsCanonically) {
  expect_round_trip<StatusInfo>(kStatusInfo);
  expect_round_trip<DeviceMetrics>(kDeviceMetrics);
  expect_round_trip<MemberMetrics>(kMemberMetrics);
  expect_round_trip<DiagnosticReport>(kDiagnosticReport);
  expect_round_trip<LogRecord>(kLogRecord);
}

TEST(TelemetryMessagesTest, OptionalFieldsAreOmittedNotNull) {
  StatusInfo info;
  info.timestamp = *parse_timestamp("2025-06-01T12:00:00.000Z");
  info.status = StatusFlag::kOffline;
  auto encoded = info.encode();
  ASSERT_TRUE(encoded.ok()) << encoded.status().message;
  EXPECT_EQ(*encoded, R"({"status":"offline","timestamp":"2025-06-01T12:00:00.000Z"})");
  EXPECT_EQ(*StatusInfo::decode(*encoded), info);
  auto with_null = StatusInfo::decode(
      R"({"status":"offline","timestamp":"2025-06-01T12:00:00.000Z","reason":null})");
  ASSERT_FALSE(with_null.ok());
  EXPECT_NE(with_null.status().message.find("reason: must be a string"), std::string::npos);
}

TEST(TelemetryMessagesTest, StatusFlagIsBareText) {
  EXPECT_EQ(*parse_status_flag("online"), StatusFlag::kOnline);
  EXPECT_EQ(*parse_status_flag("offline"), StatusFlag::kOffline);
  EXPECT_EQ(to_string(StatusFlag::kOffline), "offline");
  for (const char* bad : {"", "ONLINE", "\"online\"", "online\n", "1"}) {
    EXPECT_FALSE(parse_status_flag(bad).ok()) << bad;
  }
}

TEST(TelemetryMessagesTest, NumbersKeepTheirValueAndNegativeZeroIsNormalised) {
  auto m = *DeviceMetrics::decode(kDeviceMetrics);
  EXPECT_DOUBLE_EQ(m.voltage_v, 51.2);
  m.power_w = -0.0;
  m.current_a = 0.1 + 0.2;  // not exactly 0.3: must survive as written
  auto encoded = m.encode();
  ASSERT_TRUE(encoded.ok());
  EXPECT_NE(encoded->find("\"power_w\":0.0"), std::string::npos) << *encoded;
  auto back = DeviceMetrics::decode(*encoded);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->current_a, 0.1 + 0.2);
  EXPECT_EQ(*back->encode(), *encoded);
  // Integers are accepted where a number is expected.
  json j = json::parse(kDeviceMetrics);
  j["voltage_v"] = 230;
  auto integral = DeviceMetrics::decode(j.dump());
  ASSERT_TRUE(integral.ok()) << integral.status().message;
  EXPECT_EQ(integral->voltage_v, 230.0);
}

struct Rejection {
  std::string what;
  std::function<void(json&)> mutate;
  std::string message;
};

template <typename T>
void expect_rejections(std::string_view sample, const std::vector<Rejection>& cases) {
  for (const auto& c : cases) {
    json j = json::parse(sample);
    c.mutate(j);
    auto decoded = T::decode(j.dump());
    ASSERT_FALSE(decoded.ok()) << c.what;
    EXPECT_EQ(decoded.status().code, ErrorCode::kInvalidArgument) << c.what;
    EXPECT_NE(decoded.status().message.find(c.message), std::string::npos)
        << c.what << ": " << decoded.status().message;
  }
}

TEST(TelemetryMessagesTest, StatusInfoRejectsBadInput) {
  expect_rejections<StatusInfo>(
      kStatusInfo,
      {
          {"missing timestamp", [](json& j) { j.erase("timestamp"); }, "timestamp: missing"},
          {"unknown status", [](json& j) { j["status"] = "away"; }, "status: unknown"},
          {"negative attempts", [](json& j) { j["reconnect_attempts"] = -1; },
           "reconnect_attempts"},
          {"fields not object", [](json& j) { j["fields"] = json::array(); },
           "fields: must be an object"},
          {"unknown field", [](json& j) { j["extra"] = 1; }, "unknown field \"extra\""},
          {"reason too long", [](json& j) { j["reason"] = std::string(kMaxTextBytes + 1, 'r'); },
           "reason: has"},
      });
}

TEST(TelemetryMessagesTest, DeviceMetricsRejectsBadInput) {
  expect_rejections<DeviceMetrics>(
      kDeviceMetrics,
      {
          {"unknown kind", [](json& j) { j["kind"] = "battery"; }, "kind: unknown device kind"},
          {"offline state", [](json& j) { j["state"] = "offline"; }, "state: a device"},
          {"negative voltage", [](json& j) { j["voltage_v"] = -1; }, "voltage_v: must be"},
          {"power beyond range", [](json& j) { j["power_w"] = 2e9; }, "power_w"},
          {"string number", [](json& j) { j["power_w"] = "12"; }, "power_w: must be a number"},
          {"negative counter", [](json& j) { j["energy_absorbed_wh"] = -0.5; },
           "energy_absorbed_wh"},
          {"soc over 100", [](json& j) { j["soc_percent"] = 100.5; }, "soc_percent"},
          {"accumulator without soc", [](json& j) { j.erase("soc_percent"); },
           "soc_percent: missing for an accumulator"},
          {"generator with soc", [](json& j) { j["kind"] = "generator"; },
           "soc_percent: applies only to accumulators"},
          {"temperature null", [](json& j) { j["temperature_c"] = nullptr; },
           "temperature_c: must be a number"},
          {"missing power", [](json& j) { j.erase("power_w"); }, "power_w: missing"},
      });
}

TEST(TelemetryMessagesTest, MemberMetricsRejectsBadInput) {
  expect_rejections<MemberMetrics>(
      kMemberMetrics,
      {
          {"window reversed", [](json& j) { j["window_end"] = "2025-06-01T11:00:00.000Z"; },
           "window_end: must be after window_start"},
          {"negative production", [](json& j) { j["production_w"] = -1.0; }, "production_w"},
          {"missing energy item", [](json& j) { j["energy"].erase("imported_wh"); },
           "energy.imported_wh: missing"},
          {"unknown energy item", [](json& j) { j["energy"]["wasted_wh"] = 1; },
           "energy: unknown field"},
          {"missing state count", [](json& j) { j["devices"].erase("fault"); },
           "devices.fault: missing"},
          {"unknown state count", [](json& j) { j["devices"]["sleeping"] = 1; },
           "devices: unknown field"},
          {"fractional count", [](json& j) { j["devices"]["on"] = 1.5; },
           "devices.on: must be an integer"},
          {"count too big", [](json& j) { j["devices"]["on"] = 4294967296LL; }, "devices.on"},
      });
}

TEST(TelemetryMessagesTest, DiagnosticReportRejectsBadInput) {
  expect_rejections<DiagnosticReport>(
      kDiagnosticReport,
      {
          {"command without id", [](json& j) { j["command_id"] = nullptr; },
           "command_id: must name the command"},
          {"update with id", [](json& j) { j["trigger"] = "update"; }, "command_id: must be null"},
          {"missing command id", [](json& j) { j.erase("command_id"); }, "command_id: missing"},
          {"upper-case hash",
           [](json& j) {
             j["firmware_sha256"] =
                 "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
           },
           "firmware_sha256"},
          {"short hash", [](json& j) { j["firmware_sha256"] = "9f86"; }, "firmware_sha256"},
          {"version with space", [](json& j) { j["software_version"] = "1.0 beta"; },
           "software_version"},
          {"empty version", [](json& j) { j["firmware_version"] = ""; }, "firmware_version"},
          {"used above total", [](json& j) { j["memory"]["used_bytes"] = 268435457; },
           "memory.used_bytes: must not exceed"},
          {"cpu above 100", [](json& j) { j["cpu_load_percent"] = 100.01; }, "cpu_load_percent"},
      });
  json j = json::parse(kDiagnosticReport);
  j["trigger"] = "reset";
  j["command_id"] = nullptr;
  auto reset = DiagnosticReport::decode(j.dump());
  ASSERT_TRUE(reset.ok()) << reset.status().message;
  EXPECT_FALSE(reset->command_id.has_value());
  EXPECT_EQ(*reset->encode(), j.dump());
}

TEST(TelemetryMessagesTest, LogRecordRejectsBadInput) {
  expect_rejections<LogRecord>(
      kLogRecord,
      {
          {"lower-case level", [](json& j) { j["level"] = "error"; }, "level: unknown log level"},
          {"empty message", [](json& j) { j["message"] = ""; }, "message: must not be empty"},
          {"message too long", [](json& j) { j["message"] = std::string(kMaxTextBytes + 1, 'm'); },
           "message: has"},
          {"source with slash and space", [](json& j) { j["source"] = "my source"; }, "source"},
          {"fields too big",
           [](json& j) {
             j["fields"] = {{"blob", std::string(kMaxObjectBytes, 'b')}};
           },
           "fields: has"},
          {"fields with NUL key",
           [](json& j) {
             j["fields"] = {{std::string("a\0b", 3), 1}};
           },
           "NUL"},
      });
  for (auto level : kAllLogLevels) {
    EXPECT_EQ(*parse_log_level(to_string(level)), level);
  }
}

TEST(TelemetryMessagesTest, MultilineUnicodeLogMessagesSurvive) {
  LogRecord l;
  l.level = LogLevel::kWarn;
  l.timestamp = *parse_timestamp("2025-06-01T12:00:00.000Z");
  l.source = "bat1";
  l.message =
      "temperatura alta: 45 \xc2\xb0"
      "C\nseconda riga\t\xe2\x9a\xa0";
  auto encoded = l.encode();
  ASSERT_TRUE(encoded.ok()) << encoded.status().message;
  auto back = LogRecord::decode(*encoded);
  ASSERT_TRUE(back.ok()) << back.status().message;
  EXPECT_EQ(*back, l);
  l.message = "bad \xed\xa0\x80 surrogate";
  EXPECT_FALSE(l.encode().ok());
}

TEST(TelemetryMessagesTest, EscapesOnlyWhatJsonRequires) {
  LogRecord l;
  l.timestamp = *parse_timestamp("2025-06-01T12:00:00.000Z");
  l.source = "pv1";
  l.message = "a\x01\"\\/\x7f\t\xc3\xa9";
  auto encoded = l.encode();
  ASSERT_TRUE(encoded.ok()) << encoded.status().message;
  EXPECT_NE(encoded->find(R"("message":"a\u0001\"\\/)"
                          "\x7f"
                          R"(\t)"
                          "\xc3\xa9\""),
            std::string::npos)
      << *encoded;
}

TEST(TelemetryMessagesTest, DeviceStateNames) {
  for (std::size_t i = 0; i < kDeviceStateCount; ++i) {
    auto state = static_cast<DeviceState>(i);
    EXPECT_EQ(*parse_device_state(to_string(state)), state);
  }
  EXPECT_EQ(*parse_diagnostic_trigger("update"), DiagnosticTrigger::kUpdate);
}

}  // namespace
}  // namespace recmesh::protocol
