// The smart gateway against a real Mosquitto with certificates of our PKI and simulated devices
// in-process: metrics aggregation, the remote control protocol end to end, its durable command
// log across a restart, device logs, and refusal of bad input. End-to-end protection is on, as it
// is by default: the test client plays the EMS engine's end (as if through the bridge), sealing
// controls and opening what the gateway sends.
#include "gateway/gateway.hpp"

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/protocol/control_messages.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

#include "child_process.hpp"
#include "device/device_fleet.hpp"
#include "e2e_probe.hpp"
#include "loop_thread.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh::gateway {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using protocol::ControlIntent;
using protocol::DeviceKind;
using protocol::DeviceMetrics;
using protocol::DeviceOutcome;
using protocol::DeviceState;
using protocol::MemberControl;
using protocol::MemberControlResponse;
using protocol::MemberControlStatus;
using protocol::MemberControlType;

protocol::Timestamp now_ms() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto gateway = community_.gateway();
    gateway_chain_ = gateway.chain;
    gateway_key_ = gateway.key;
    cafile_ = gateway.cafile;
    const auto engine = community_.service("engine");
    ems_engine_ = std::make_unique<crypto::JwsSigner>(
        crypto::JwsSigner::from_files(engine.chain, engine.key));
    community_.issue_devices("m1", {"pv1", "bat1", "ev1", "ev2"});
    // The probes play the devices and the platform side with the gateway's certificate: a
    // custom rule opens every topic to it (the gateway's own row is guard_matrix_test's).
    community_.allow(gateway, {"#"}, {"#"});
    port_ = community_.start_local().member_port;
    // Plays the EMS engine (through the bridge) and the log management side.
    ems_ = std::make_unique<testing::MqttTestClient>("ems-side");
    ASSERT_TRUE(ems_->connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
    ASSERT_TRUE(ems_->subscribe("/platform/#"));
    platform_ = std::make_unique<testing::E2eProbe>(testing::E2eProbe::Side::kPlatform, *ems_,
                                                    pki_dir(), "r1", "m1");
  }

  void TearDown() override {
    stop_gateway();
    if (fleet_) {
      loop_.stop_and_wait(*fleet_);
    }
    loop_.stop();
    fleet_.reset();
  }

  fs::path pki_dir() const { return community_.pki_dir(); }
  testing::TestCommunity::LocalBroker& broker() { return community_.local(); }

  GatewayConfig gateway_config() const {
    GatewayConfig config;
    config.broker_port = port_;
    config.pki_dir = pki_dir();
    config.rec = "r1";
    config.member = "m1";
    config.database = tmp_ / "gateway.db";
    config.metrics_interval = 1h;  // tests publish aggregates by hand
    config.device_timeout = 1500ms;
    config.log_batch_interval = 300ms;
    config.devices = {{"pv1", DeviceKind::kGenerator, 10000},
                      {"bat1", DeviceKind::kAccumulator, 10000},
                      {"ev1", DeviceKind::kLoad, 10000},
                      {"ev2", DeviceKind::kLoad, 10000}};
    config.resolve_and_validate();
    return config;
  }

  // Runs the simulated devices `ids` (the others stay down).
  void start_devices(const std::vector<std::string>& ids) {
    device::DeviceFleetConfig config;
    config.broker_port = port_;
    config.pki_dir = pki_dir();
    config.rec = "r1";
    config.member = "m1";
    config.metrics_interval = 200ms;
    config.crash_fraction = 0;
    config.cloudiness = 0;
    for (const auto& id : ids) {
      device::DeviceSpec spec;
      spec.id = id;
      spec.kind = id == "pv1"    ? DeviceKind::kGenerator
                  : id == "bat1" ? DeviceKind::kAccumulator
                                 : DeviceKind::kLoad;
      config.devices.push_back(spec);
    }
    config.resolve_and_validate();
    on_loop([&] {
      fleet_ = std::make_unique<device::DeviceFleet>(loop_.loop(), std::move(config));
      fleet_->start();
      return 0;
    });
    ASSERT_TRUE(eventually([&] {
      for (const auto& id : ids) {
        if (!fleet_->find(id)->connected() || fleet_->find(id)->counters().metrics_published == 0) {
          return false;
        }
      }
      return true;
    }));
  }

  void start_gateway(GatewayConfig config) {
    sealed_ = config.e2e.enabled;
    on_loop([&] {
      gateway_ = std::make_unique<Gateway>(loop_.loop(), std::move(config));
      gateway_->start();
      return 0;
    });
    ASSERT_TRUE(eventually([&] { return gateway_->connected(); }));
    // Give the broker time to handle the SUBSCRIBE that followed the CONNECT.
    std::this_thread::sleep_for(300ms);
  }

  void stop_gateway() {
    if (!gateway_) {
      return;
    }
    loop_.stop_and_wait(*gateway_);
    on_loop([&] {
      gateway_.reset();
      return 0;
    });
  }

  // Drops the gateway as a crash of its process would.
  void crash_gateway() {
    on_loop([&] {
      gateway_->abort();
      gateway_.reset();
      return 0;
    });
  }

  template <typename F>
  auto on_loop(F&& f) -> std::invoke_result_t<F&> {
    return loop_.run(std::forward<F>(f));
  }
  template <typename Predicate>
  bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 20s) {
    return loop_.eventually(std::move(predicate), timeout);
  }

  std::optional<testing::ReceivedMessage> next_on(
      const std::string& topic,
      const std::function<bool(const testing::ReceivedMessage&)>& accept = {},
      std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      // Opened by the platform's end when the gateway seals; as sent otherwise.
      auto message = sealed_ ? platform_->wait_for_message(100ms) : ems_->wait_for_message(100ms);
      if (message && message->topic == topic && (!accept || accept(*message))) {
        return message;
      }
    }
    return std::nullopt;
  }

  // The next response to `control` with `status`.
  std::optional<MemberControlResponse> response(const MemberControl& control,
                                                MemberControlStatus status,
                                                std::chrono::milliseconds timeout = 15s) {
    std::optional<MemberControlResponse> out;
    next_on(
        "/platform/control/response",
        [&](const testing::ReceivedMessage& m) {
          auto decoded = MemberControlResponse::decode(m.payload);
          if (!decoded || decoded->control_id != control.control_id || decoded->status != status) {
            return false;
          }
          out = *decoded;
          return true;
        },
        timeout);
    return out;
  }

  MemberControl control(MemberControlType type, std::vector<std::string> devices,
                        nlohmann::json params = nlohmann::json::object(),
                        ControlIntent intent = ControlIntent::kIdempotent) {
    MemberControl c;
    c.control_id = protocol::Uuid::random_v4();
    c.member_id = "m1";
    c.device_ids = std::move(devices);
    c.type = type;
    c.intent = intent;
    c.params = std::move(params);
    c.issued_by = "ems_engine";
    c.issued_at = now_ms();
    c.expire_at = c.issued_at + 60s;
    c.sequence = ++sequence_;
    return c;
  }

  void send(const MemberControl& c) { send_raw(c.encode().value()); }
  // What the platform's end seals and sends on /platform/control.
  void send_raw(const std::string& payload) {
    ASSERT_TRUE(platform_->publish("/platform/control", payload));
  }

  static const protocol::DeviceResult* result_of(const MemberControlResponse& r,
                                                 const std::string& device) {
    for (const auto& d : r.per_device) {
      if (d.device_id == device) {
        return &d;
      }
    }
    return nullptr;
  }

  testing::TempDir tmp_;
  testing::TestCommunity community_{tmp_.path()};
  int port_ = 0;
  fs::path gateway_chain_;
  fs::path gateway_key_;
  fs::path cafile_;
  std::unique_ptr<crypto::JwsSigner> ems_engine_;
  std::unique_ptr<testing::MqttTestClient> ems_;
  std::unique_ptr<testing::E2eProbe> platform_;
  bool sealed_ = true;  // the running gateway's e2e setting
  testing::LoopThread loop_;
  std::unique_ptr<device::DeviceFleet> fleet_;
  std::unique_ptr<Gateway> gateway_;
  std::uint64_t sequence_ = 100;
};

DeviceMetrics metrics(DeviceKind kind, DeviceState state, double power_w, double delivered,
                      double absorbed, std::optional<double> soc = std::nullopt) {
  DeviceMetrics m;
  m.kind = kind;
  m.state = state;
  m.voltage_v = 230;
  m.current_a = power_w / 230;
  m.power_w = power_w;
  m.energy_delivered_wh = delivered;
  m.energy_absorbed_wh = absorbed;
  m.soc_percent = soc;
  m.timestamp = now_ms();
  return m;
}

TEST_F(GatewayTest, AggregatesDeviceMetricsWithCorrectSums) {
  start_gateway(gateway_config());
  testing::MqttTestClient devices("devices");
  ASSERT_TRUE(devices.connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  const auto put = [&](const std::string& id, const DeviceMetrics& m) {
    ASSERT_TRUE(devices.publish("/device/" + id + "/metrics/snapshot", m.encode().value()));
  };
  // Two samples each: the aggregate holds the means and the counters' growth.
  put("pv1", metrics(DeviceKind::kGenerator, DeviceState::kOn, 3000, 1000, 0));
  put("pv1", metrics(DeviceKind::kGenerator, DeviceState::kOn, 5000, 1100, 0));
  put("bat1", metrics(DeviceKind::kAccumulator, DeviceState::kCharging, -1000, 50, 200, 40));
  put("bat1", metrics(DeviceKind::kAccumulator, DeviceState::kCharging, -1000, 50, 230, 42));
  put("ev1", metrics(DeviceKind::kLoad, DeviceState::kOn, -2000, 0, 500));
  put("ev1", metrics(DeviceKind::kLoad, DeviceState::kOn, -2000, 0, 540));
  ASSERT_TRUE(eventually([&] { return gateway_->counters().metrics_received == 6; }));
  on_loop([&] {
    gateway_->publish_aggregate();
    return 0;
  });
  const auto published = next_on("/platform/metrics/aggregate");
  ASSERT_TRUE(published);
  const auto m = protocol::MemberMetrics::decode(published->payload);
  ASSERT_TRUE(m) << m.status().message;
  EXPECT_DOUBLE_EQ(m->production_w, 4000);
  EXPECT_DOUBLE_EQ(m->consumption_w, 2000);
  EXPECT_DOUBLE_EQ(m->storage_power_w, -1000);
  ASSERT_TRUE(m->storage_soc_percent);
  EXPECT_DOUBLE_EQ(*m->storage_soc_percent, 42);
  EXPECT_DOUBLE_EQ(m->net_exchange_w, 1000);
  EXPECT_DOUBLE_EQ(m->energy.produced_wh, 100);
  EXPECT_DOUBLE_EQ(m->energy.consumed_wh, 40);
  EXPECT_DOUBLE_EQ(m->energy.charged_wh, 30);
  EXPECT_DOUBLE_EQ(m->energy.discharged_wh, 0);
  EXPECT_EQ(m->devices[DeviceState::kOn], 2u);
  EXPECT_EQ(m->devices[DeviceState::kCharging], 1u);
  EXPECT_EQ(m->devices[DeviceState::kOffline], 1u);  // ev2 never reported
  EXPECT_EQ(*m, *on_loop([&] { return gateway_->last_aggregate(); }));
}

TEST_F(GatewayTest, AggregatesSimulatedDevicesOnItsTimer) {
  start_devices({"pv1", "bat1", "ev1"});
  auto config = gateway_config();
  config.metrics_interval = 500ms;
  start_gateway(config);
  std::optional<protocol::MemberMetrics> m;
  ASSERT_TRUE(next_on("/platform/metrics/aggregate", [&](const testing::ReceivedMessage& msg) {
    auto decoded = protocol::MemberMetrics::decode(msg.payload);
    if (decoded && decoded->devices[DeviceState::kOffline] == 1) {
      m = *decoded;
      return true;
    }
    return false;
  }));
  EXPECT_GT(m->production_w, 0);  // noon, clear sky
  EXPECT_GT(m->consumption_w, 0);
  EXPECT_TRUE(m->storage_soc_percent);
}

TEST_F(GatewayTest, ControlReachesTheRightDevicesAndSucceeds) {
  start_devices({"pv1", "bat1", "ev1"});
  start_gateway(gateway_config());
  const auto c = control(MemberControlType::kStoreSurplus, {});
  send(c);
  ASSERT_TRUE(response(c, MemberControlStatus::kReceived));
  ASSERT_TRUE(response(c, MemberControlStatus::kExecuting));
  const auto done = response(c, MemberControlStatus::kSuccess);
  ASSERT_TRUE(done);
  ASSERT_EQ(done->per_device.size(), 1u);  // the only accumulator
  EXPECT_EQ(done->per_device[0].device_id, "bat1");
  EXPECT_EQ(done->per_device[0].status, DeviceOutcome::kSuccess);
  EXPECT_EQ(done->gateway_id, "rec_r1_m1_gateway");
  EXPECT_EQ(on_loop([&] { return fleet_->find("bat1")->counters().commands_completed; }), 1u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().commands_completed; }), 0u);

  const auto curtail = control(MemberControlType::kDeviceCommand, {"pv1"},
                               {{"command", "curtail"}, {"params", {{"percentage", 40}}}});
  send(curtail);
  const auto curtailed = response(curtail, MemberControlStatus::kSuccess);
  ASSERT_TRUE(curtailed);
  EXPECT_EQ(curtailed->per_device.at(0).device_id, "pv1");
  // A passive refusal is a per-device failure, not a crash: a load cannot curtail.
  const auto mixed = control(MemberControlType::kDeviceCommand, {"pv1", "ev1"},
                             {{"command", "curtail"}, {"params", {{"percentage", 60}}}});
  send(mixed);
  const auto partial = response(mixed, MemberControlStatus::kPartial);
  ASSERT_TRUE(partial);
  ASSERT_TRUE(result_of(*partial, "ev1"));
  EXPECT_EQ(result_of(*partial, "ev1")->exit_code, protocol::kExitUnsupported);
}

TEST_F(GatewayTest, PartialWhenADeviceIsDown) {
  start_devices({"pv1", "ev1"});  // ev2 stays down
  start_gateway(gateway_config());
  const auto c = control(MemberControlType::kActivateLoad, {"ev1", "ev2"});
  send(c);
  const auto done = response(c, MemberControlStatus::kPartial);
  ASSERT_TRUE(done);
  ASSERT_TRUE(result_of(*done, "ev1"));
  ASSERT_TRUE(result_of(*done, "ev2"));
  EXPECT_EQ(result_of(*done, "ev1")->status, DeviceOutcome::kSuccess);
  EXPECT_EQ(result_of(*done, "ev2")->status, DeviceOutcome::kFailed);
  EXPECT_EQ(result_of(*done, "ev2")->exit_code, protocol::kExitTimeout);
}

TEST_F(GatewayTest, RetriesIdempotentWorkWithBackoff) {
  start_gateway(gateway_config());  // no device runs: every attempt times out
  auto c = control(MemberControlType::kActivateLoad, {"ev1"});
  c.retry_policy = {2, 100, true};
  send(c);
  const auto failed = response(c, MemberControlStatus::kFailed, 20s);
  ASSERT_TRUE(failed);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().device_retries; }), 2u);
  EXPECT_EQ(on_loop([&] { return gateway_->command_log().commands_of(c.control_id.str()).size(); }),
            3u);

  auto once = control(MemberControlType::kActivateLoad, {"ev1"}, nlohmann::json::object(),
                      ControlIntent::kNonIdempotent);
  once.retry_policy = {2, 100, true};
  send(once);
  ASSERT_TRUE(response(once, MemberControlStatus::kFailed, 20s));
  EXPECT_EQ(
      on_loop([&] { return gateway_->command_log().commands_of(once.control_id.str()).size(); }),
      1u);
}

TEST_F(GatewayTest, DuplicateControlIsNotExecutedTwice) {
  start_devices({"ev1"});
  start_gateway(gateway_config());
  const auto c = control(MemberControlType::kActivateLoad, {"ev1"}, nlohmann::json::object(),
                         ControlIntent::kNonIdempotent);
  send(c);
  ASSERT_TRUE(response(c, MemberControlStatus::kSuccess));
  send(c);
  const auto again = response(c, MemberControlStatus::kSuccess);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->per_device.size(), 1u);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().controls_duplicate; }), 1u);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().device_commands_sent; }), 1u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("ev1")->counters().commands_completed; }), 1u);
}

TEST_F(GatewayTest, ExpiredControlIsRefused) {
  start_devices({"ev1"});
  start_gateway(gateway_config());
  auto c = control(MemberControlType::kActivateLoad, {"ev1"});
  c.issued_at = now_ms() - 120s;
  c.expire_at = now_ms() - 60s;
  send(c);
  const auto failed = response(c, MemberControlStatus::kFailed);
  ASSERT_TRUE(failed);
  ASSERT_TRUE(failed->general);
  EXPECT_NE(failed->general->find("expired"), std::string::npos);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().device_commands_sent; }), 0u);
}

TEST_F(GatewayTest, RestartDoesNotReExecuteANonIdempotentControl) {
  start_gateway(gateway_config());  // ev1 is down: the control stays open
  const auto c = control(MemberControlType::kActivateLoad, {"ev1"}, nlohmann::json::object(),
                         ControlIntent::kNonIdempotent);
  send(c);
  ASSERT_TRUE(response(c, MemberControlStatus::kExecuting));
  crash_gateway();
  start_devices({"ev1"});
  start_gateway(gateway_config());
  const auto failed = response(c, MemberControlStatus::kFailed);
  ASSERT_TRUE(failed);
  ASSERT_TRUE(failed->general);
  EXPECT_NE(failed->general->find("not executed again"), std::string::npos);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().device_commands_sent; }), 0u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("ev1")->counters().commands_completed; }), 0u);
  const auto rows =
      on_loop([&] { return gateway_->command_log().commands_of(c.control_id.str()); });
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, "FAILED");
  // Sending it again is a duplicate: the recorded FAILED comes back.
  send(c);
  ASSERT_TRUE(response(c, MemberControlStatus::kFailed));
  EXPECT_EQ(on_loop([&] { return gateway_->counters().device_commands_sent; }), 0u);
}

TEST_F(GatewayTest, ForwardsASignedDiagnosticUntouched) {
  start_devices({"pv1"});
  start_gateway(gateway_config());
  protocol::DeviceCommand diagnostic;
  diagnostic.control_id = protocol::Uuid::random_v4();
  diagnostic.command_id = protocol::Uuid::random_v4();
  diagnostic.device_id = "pv1";
  diagnostic.type = protocol::DeviceCommandType::kDiagnostic;
  diagnostic.issued_by = "ems_engine";
  diagnostic.issued_at = now_ms();
  diagnostic.expire_at = diagnostic.issued_at + 60s;
  diagnostic.sequence = ++sequence_;
  const std::string jws = ems_engine_->sign("/device/pv1/control", diagnostic.encode().value());
  send_raw(jws);
  MemberControl as_control;
  as_control.control_id = *diagnostic.control_id;
  const auto done = response(as_control, MemberControlStatus::kSuccess);
  ASSERT_TRUE(done);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().diagnostics_published; }), 1u);
  // An unsigned diagnostic is never turned into one by the gateway.
  const auto unsigned_one = control(MemberControlType::kDiagnostic, {"pv1"});
  send(unsigned_one);
  const auto refused = response(unsigned_one, MemberControlStatus::kFailed);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->per_device.at(0).exit_code, protocol::kExitBadSignature);

  // A forged signature under a fresh control ID: the gateway routes it (it does not verify),
  // the device refuses it, and its security event reaches the platform at once.
  diagnostic.control_id = protocol::Uuid::random_v4();
  diagnostic.command_id = protocol::Uuid::random_v4();
  diagnostic.sequence = ++sequence_;
  std::string forged = ems_engine_->sign("/device/pv1/control", diagnostic.encode().value());
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  send_raw(forged);
  const auto event = next_on("/platform/logs/ERROR", [](const testing::ReceivedMessage& m) {
    const auto record = protocol::LogRecord::decode(m.payload);
    return record && record->source == "pv1" && record->fields &&
           record->fields->value("event", "") == "security";
  });
  ASSERT_TRUE(event);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().security_events_forwarded; }), 1u);
  // The unsigned one above never reached the device: the gateway refused it itself.
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().security_events; }), 1u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().diagnostics_published; }), 1u);
  as_control.control_id = *diagnostic.control_id;
  ASSERT_TRUE(response(as_control, MemberControlStatus::kFailed));  // the device timed out
}

TEST_F(GatewayTest, ForwardsSignedCommandsCarriedByADiagnosticControl) {
  start_devices({"pv1", "ev1"});
  start_gateway(gateway_config());
  const auto signed_for = [&](const std::string& device, const std::string& topic_device) {
    protocol::DeviceCommand diagnostic;
    diagnostic.command_id = protocol::Uuid::random_v4();
    diagnostic.device_id = device;
    diagnostic.type = protocol::DeviceCommandType::kDiagnostic;
    diagnostic.issued_by = "ems_engine";
    diagnostic.issued_at = now_ms();
    diagnostic.expire_at = diagnostic.issued_at + 60s;
    diagnostic.sequence = ++sequence_;
    return ems_engine_->sign("/device/" + topic_device + "/control", diagnostic.encode().value());
  };
  // pv1's command is genuine; ev1's was signed for pv1's topic, so the gateway must not route it.
  const auto c =
      control(MemberControlType::kDiagnostic, {"pv1", "ev1"},
              {{"signed_commands",
                {{"pv1", signed_for("pv1", "pv1")}, {"ev1", signed_for("ev1", "pv1")}}}});
  send(c);
  const auto done = response(c, MemberControlStatus::kPartial);
  ASSERT_TRUE(done);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().diagnostics_published; }), 1u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("ev1")->counters().diagnostics_published; }), 0u);
}

// Aggregates chain (each window starts where the previous one ended), so a gap or a reordering
// shows. Reads `count` aggregates from `probe` that follow `previous_end` (none: the first one
// read starts the chain) and moves `previous_end` along. A QoS 1 redelivery of one already seen
// is skipped.
::testing::AssertionResult chained_aggregates(testing::MqttTestClient& probe, std::size_t count,
                                              std::optional<protocol::Timestamp>& previous_end) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::size_t seen = 0;
  while (seen < count && std::chrono::steady_clock::now() < deadline) {
    const auto message = probe.wait_for_message(200ms);
    if (!message || message->topic != "/platform/metrics/aggregate") {
      continue;
    }
    const auto m = protocol::MemberMetrics::decode(message->payload);
    if (!m) {
      return ::testing::AssertionFailure() << "undecodable aggregate: " << m.status().message;
    }
    if (previous_end && m->window_end <= *previous_end) {
      continue;
    }
    if (previous_end && m->window_start != *previous_end) {
      return ::testing::AssertionFailure()
             << "aggregate " << seen << " starts at " << protocol::format_timestamp(m->window_start)
             << ", the previous one ended at " << protocol::format_timestamp(*previous_end);
    }
    previous_end = m->window_end;
    ++seen;
  }
  if (seen < count) {
    return ::testing::AssertionFailure() << "only " << seen << " of " << count << " aggregates";
  }
  return ::testing::AssertionSuccess();
}

TEST_F(GatewayTest, OutboxDeliversPlatformMessagesInOrderAfterABrokerOutage) {
  // A durable subscriber: the broker keeps its session and queue across its own restart.
  auto probe = std::make_unique<testing::MqttTestClient>("platform-side", false);
  ASSERT_TRUE(probe->connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  ASSERT_TRUE(probe->subscribe("/platform/metrics/#"));
  GatewayConfig config = gateway_config();
  config.metrics_interval = 200ms;
  // The outbox sits below the end-to-end layer; a plain probe reads the aggregates' order.
  config.e2e.enabled = false;
  start_gateway(config);
  std::optional<protocol::Timestamp> end;
  ASSERT_TRUE(chained_aggregates(*probe, 2, end));

  broker().stop();  // SIGTERM: the broker saves the sessions
  ASSERT_TRUE(eventually([&] { return !gateway_->connected(); }));
  ASSERT_TRUE(eventually([&] { return gateway_->outbox().size() >= 4; }));
  const auto held = on_loop([&] { return gateway_->outbox().size(); });

  broker().restart();
  probe = std::make_unique<testing::MqttTestClient>("platform-side", false);
  ASSERT_TRUE(probe->connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  // Everything from before the outage, everything held during it and what follows: no gap.
  ASSERT_TRUE(chained_aggregates(*probe, held + 2, end));
  ASSERT_TRUE(eventually([&] { return gateway_->outbox().size() < 3; }));
  EXPECT_EQ(on_loop([&] { return gateway_->counters().outbox_dropped; }), 0u);
  EXPECT_GE(on_loop([&] { return gateway_->counters().outbox_delivered; }), held + 2);
}

TEST_F(GatewayTest, OutboxIsBoundedAndSurvivesACrash) {
  GatewayConfig config = gateway_config();
  config.metrics_interval = 200ms;
  config.outbox_max_messages = 3;
  config.e2e.enabled = false;  // as above: the outbox's bounds, read in clear
  start_gateway(config);
  ASSERT_TRUE(next_on("/platform/metrics/aggregate"));
  platform_.reset();
  ems_.reset();
  broker().stop();
  // Full: the oldest go, counted.
  ASSERT_TRUE(eventually([&] { return gateway_->counters().outbox_dropped >= 2; }));
  EXPECT_EQ(on_loop([&] { return gateway_->outbox().size(); }), 3u);
  crash_gateway();

  broker().restart();
  testing::MqttTestClient probe("platform-side");
  ASSERT_TRUE(probe.connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  ASSERT_TRUE(probe.subscribe("/platform/metrics/#"));
  config.metrics_interval = 1h;  // only what the crashed run left behind
  start_gateway(config);
  std::optional<protocol::Timestamp> end;
  ASSERT_TRUE(chained_aggregates(probe, 3, end));
  EXPECT_FALSE(probe.wait_for_message(500ms));
  ASSERT_TRUE(eventually([&] { return gateway_->outbox().size() == 0; }));
  EXPECT_EQ(on_loop([&] { return gateway_->counters().outbox_delivered; }), 3u);
}

TEST_F(GatewayTest, StoresDeviceLogsAndForwardsByLevel) {
  start_gateway(gateway_config());
  testing::MqttTestClient devices("devices");
  ASSERT_TRUE(devices.connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  const auto log = [&](protocol::LogLevel level, const std::string& text) {
    protocol::LogRecord r;
    r.level = level;
    r.timestamp = now_ms();
    r.source = "ev1";
    r.message = text;
    ASSERT_TRUE(devices.publish(fmt::format("/device/ev1/log/{}", protocol::to_string(level)),
                                r.encode().value()));
  };
  log(protocol::LogLevel::kError, "contactor stuck");
  log(protocol::LogLevel::kWarn, "temperature high");
  log(protocol::LogLevel::kInfo, "session started");
  ASSERT_TRUE(next_on("/platform/logs/ERROR"));
  ASSERT_TRUE(next_on("/platform/logs/INFO"));  // after the batch period
  EXPECT_EQ(on_loop([&] { return gateway_->counters().logs_stored; }), 3u);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().logs_forwarded; }), 2u);
  EXPECT_EQ(on_loop([&] { return gateway_->command_log().count_logs("WARN"); }), 1);
}

TEST_F(GatewayTest, BadInputKeepsTheGatewayServing) {
  start_devices({"ev1"});
  start_gateway(gateway_config());
  const auto put = [&](const std::string& topic, const std::string& payload) {
    ASSERT_TRUE(ems_->publish(topic, payload));
  };
  // Sealed by the platform's own session: the control decoder refuses them.
  send_raw("{not json");
  send_raw(R"({"control_id": 7})");
  auto other = control(MemberControlType::kActivateLoad, {"ev1"});
  other.member_id = "m2";
  send_raw(other.encode().value());
  // Not sealed: the end-to-end layer drops them first; oversize goes even before that.
  const auto e2e_refused = on_loop([&] { return gateway_->e2e()->stats().refused_total(); });
  put("/platform/control", "{not json");
  put("/platform/control", other.encode().value());
  put("/platform/control", std::string(1024 * 1024, 'x'));
  // The message layer refuses an unknown device command while decoding, like any bad field.
  auto unknown = control(MemberControlType::kDeviceCommand, {"ev1"},
                         {{"command", "reboot"}, {"params", nlohmann::json::object()}});
  std::string unknown_text = unknown.encode().value();
  unknown_text.replace(unknown_text.find("\"reboot\""), 8, "\"explode\"");
  send_raw(unknown_text);
  put("/device/ev1/control/response", "[]");
  protocol::DeviceCommandResponse stray;
  stray.command_id = protocol::Uuid::random_v4();
  stray.device_id = "ev1";
  stray.status = protocol::DeviceCommandStatus::kCompleted;
  stray.issued_at = now_ms();
  put("/device/ev1/control/response", stray.encode().value());
  put("/device/ev1/metrics/snapshot", R"({"kind": 3})");
  put("/device/ev1/log/ERROR", "\xff\xfe");
  put("/device/ev1/status", "maybe");
  ASSERT_TRUE(eventually([&] { return gateway_->counters().refused() >= 9; }));
  const auto counters = on_loop([&] { return gateway_->counters(); });
  EXPECT_GE(counters.refused_malformed, 7u);
  EXPECT_EQ(counters.refused_other_member, 1u);
  EXPECT_EQ(counters.refused_unknown_command, 1u);
  EXPECT_EQ(counters.refused_oversize, 1u);
  EXPECT_EQ(counters.device_commands_sent, 0u);
  EXPECT_TRUE(
      eventually([&] { return gateway_->e2e()->stats().refused_total() >= e2e_refused + 2; }));
  // Still serving.
  const auto c = control(MemberControlType::kActivateLoad, {"ev1"});
  send(c);
  ASSERT_TRUE(response(c, MemberControlStatus::kSuccess));
}

TEST_F(GatewayTest, IslandModeChargesOnSurplusAndReportsOnReconnection) {
  start_devices({"pv1", "bat1"});  // noon, clear sky, no load: surplus
  auto config = gateway_config();
  config.metrics_interval = 400ms;
  config.island_after = 300ms;
  start_gateway(config);
  ASSERT_TRUE(ems_->publish("/bridge/status", "offline"));
  ASSERT_TRUE(eventually([&] { return gateway_->in_island_mode(); }));
  ASSERT_TRUE(eventually(
      [&] { return fleet_->find("bat1")->model().state() == protocol::DeviceState::kCharging; }));
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().commands_completed; }), 0u);
  // Let the device's answer reach the gateway before the bridge comes back.
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(ems_->publish("/bridge/status", "online"));
  const auto report = next_on("/platform/metrics/island-report");
  ASSERT_TRUE(report);
  const auto json = nlohmann::json::parse(report->payload);
  ASSERT_EQ(json.at("actions").size(), 1u);
  EXPECT_EQ(json["actions"][0]["device_id"], "bat1");
  EXPECT_EQ(json["actions"][0]["command"], "charge-mode");
  EXPECT_EQ(json["actions"][0]["outcome"], "COMPLETED");
  EXPECT_FALSE(on_loop([&] { return gateway_->in_island_mode(); }));
}

TEST_F(GatewayTest, CliChecksItsConfiguration) {
  const fs::path file = tmp_ / "gateway.yaml";
  {
    std::ofstream out(file);
    out << "rec: r1\nmember: m1\npki_dir: pki\ndatabase: gw.db\nbroker:\n  port: " << port_
        << "\ne2e:\n  suite: chacha20-poly1305\n  rotate_after_s: 600\n"
        << "devices:\n  - id: pv1\n    kind: generator\n";
  }
  const auto ok = testing::run_recmesh({"gateway", "--config", file.string(), "--check-config"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  {
    std::ofstream out(file);
    out << "rec: r1\nmember: m1\npki_dir: pki\ndatabase: gw.db\nsurprise: 1\n"
           "devices:\n  - id: pv1\n    kind: generator\n";
  }
  const auto bad = testing::run_recmesh({"gateway", "--config", file.string(), "--check-config"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("gateway.yaml:5: surprise: unknown key"), std::string::npos) << bad.err;
  const auto no_config = testing::run_recmesh({"gateway", "--check-config"});
  EXPECT_EQ(no_config.exit_code, 2);
}

// `recmesh gateway` as a process: logs as JSON lines on request, publishes its retained
// `offline` on SIGTERM and exits 0.
TEST_F(GatewayTest, ProcessLogsJsonLinesAndStopsCleanlyOnSigterm) {
  const fs::path file = tmp_ / "gateway.yaml";
  std::ofstream(file) << "rec: r1\nmember: m1\npki_dir: " << pki_dir().string()
                      << "\ndatabase: gw.db\nbroker:\n  port: " << port_
                      << "\nlogging:\n  level: debug\n"
                      << "devices:\n  - id: pv1\n    kind: generator\n";
  ASSERT_TRUE(ems_->subscribe("/smart-gateway/status"));
  sealed_ = false;  // the status flag is read as it travels, in clear
  const fs::path log = tmp_ / "gateway.log";
  testing::ChildProcess gateway(
      {testing::recmesh_binary(), "gateway", "--config", file.string(), "--log-format", "json"},
      log);
  ASSERT_TRUE(next_on("/smart-gateway/status", [](const testing::ReceivedMessage& m) {
    return m.payload == "online";
  })) << read_file(log);
  EXPECT_EQ(gateway.signal_and_wait(SIGTERM, 15s), 0);
  ASSERT_TRUE(next_on("/smart-gateway/status",
                      [](const testing::ReceivedMessage& m) { return m.payload == "offline"; }));
  // Retained: a client that comes later still reads `offline`.
  testing::MqttTestClient later("later");
  ASSERT_TRUE(later.connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  ASSERT_TRUE(later.subscribe("/smart-gateway/status"));
  const auto retained = later.wait_for_message(5s);
  ASSERT_TRUE(retained);
  EXPECT_EQ(retained->payload, "offline");

  std::istringstream lines(read_file(log));
  std::size_t count = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) {
      continue;
    }
    const auto json = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(json.is_object()) << "not a JSON line: " << line;
    EXPECT_EQ(json.value("component", ""), "gateway") << line;
    EXPECT_TRUE(json.contains("ts") && json.contains("level") && json.contains("msg")) << line;
    ++count;
  }
  EXPECT_GE(count, 2U);
}

}  // namespace
}  // namespace recmesh::gateway
