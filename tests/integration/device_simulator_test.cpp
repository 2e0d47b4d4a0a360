// The device simulator against a real Mosquitto with certificates of our PKI: metrics, status,
// commands per SPEC §4.6, refusals, EMS-signed diagnostics with device-signed reports, a fleet of
// 200 devices on one loop, and `recmesh device` as a process under SIGTERM and SIGKILL.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
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
#include "loop_thread.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

extern char** environ;

namespace recmesh::device {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using protocol::DeviceCommand;
using protocol::DeviceCommandResponse;
using protocol::DeviceCommandStatus;
using protocol::DeviceCommandType;
using protocol::DeviceKind;
using protocol::DeviceMetrics;
using protocol::DeviceState;

protocol::Timestamp now_ms() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

class DeviceSimulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto gateway = community_.gateway();
    gateway_chain_ = gateway.chain;
    gateway_key_ = gateway.key;
    cafile_ = gateway.cafile;
    const auto engine = community_.service("engine");
    ems_engine_ = std::make_unique<crypto::JwsSigner>(
        crypto::JwsSigner::from_files(engine.chain, engine.key));
    const auto lms = community_.service("lms");
    ems_lms_ =
        std::make_unique<crypto::JwsSigner>(crypto::JwsSigner::from_files(lms.chain, lms.key));
    // The observer plays the gateway with its certificate (its row of SPEC §6) and also reads
    // the devices' diagnostic reports, which only the bridge reads in production.
    community_.allow(gateway, {}, {"/device/+/diagnostic"});
    port_ = community_.start_local().member_port;
  }

  void TearDown() override {
    if (fleet_) {
      loop_.stop_and_wait(*fleet_);
    }
    loop_.stop();
    fleet_.reset();
  }

  fs::path pki_dir() const { return community_.pki_dir(); }
  void issue_devices(const std::vector<std::string>& ids) { community_.issue_devices("m1", ids); }

  DeviceFleetConfig base_config() const {
    DeviceFleetConfig config;
    config.broker_port = port_;
    config.pki_dir = pki_dir();
    config.rec = "r1";
    config.member = "m1";
    config.metrics_interval = 200ms;
    config.crash_fraction = 0;
    config.cloudiness = 0;
    config.start_hour = 12;
    config.reboot_delay = 300ms;
    return config;
  }

  static DeviceSpec spec(std::string id, DeviceKind kind) {
    DeviceSpec s;
    s.id = std::move(id);
    s.kind = kind;
    return s;
  }

  // Issues the devices' certificates, starts the fleet on a loop thread and a gateway observer.
  // With `wait_ready`, returns once every device has published metrics: it has subscribed to its
  // control topic by then, since the broker handles one connection's packets in order.
  void start_fleet(DeviceFleetConfig config, bool wait_ready = true) {
    std::vector<std::string> ids;
    for (const auto& d : config.devices) {
      ids.push_back(d.id);
    }
    issue_devices(ids);
    observer_ = std::make_unique<testing::MqttTestClient>("observer");
    ASSERT_TRUE(observer_->connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
    ASSERT_TRUE(observer_->subscribe("/device/#"));
    on_loop([&] {
      fleet_ = std::make_unique<DeviceFleet>(loop_.loop(), std::move(config));
      fleet_->start();
      return 0;
    });
    if (wait_ready) {
      for (const auto& id : ids) {
        ASSERT_TRUE(next_metrics(id)) << id << " published no metrics";
      }
    }
  }

  template <typename F>
  auto on_loop(F&& f) -> std::invoke_result_t<F&> {
    return loop_.run(std::forward<F>(f));
  }
  template <typename Predicate>
  bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 20s) {
    return loop_.eventually(std::move(predicate), timeout);
  }

  // The next message on `topic` that satisfies `accept`, skipping others.
  std::optional<testing::ReceivedMessage> next_on(
      const std::string& topic,
      const std::function<bool(const testing::ReceivedMessage&)>& accept = {},
      std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto message = observer_->wait_for_message(100ms);
      if (message && message->topic == topic && (!accept || accept(*message))) {
        return message;
      }
    }
    return std::nullopt;
  }

  std::optional<DeviceMetrics> next_metrics(
      const std::string& device, const std::function<bool(const DeviceMetrics&)>& accept = {}) {
    std::optional<DeviceMetrics> out;
    next_on("/device/" + device + "/metrics/snapshot", [&](const testing::ReceivedMessage& m) {
      auto decoded = DeviceMetrics::decode(m.payload);
      if (!decoded || (accept && !accept(*decoded))) {
        return false;
      }
      out = *decoded;
      return true;
    });
    return out;
  }

  DeviceCommand command(const std::string& device, DeviceCommandType type,
                        nlohmann::json params = nlohmann::json::object()) {
    DeviceCommand c;
    c.command_id = protocol::Uuid::random_v4();
    c.device_id = device;
    c.type = type;
    c.params = std::move(params);
    c.issued_by = "rec_r1_m1_gateway";
    c.issued_at = now_ms();
    c.expire_at = c.issued_at + 60s;
    c.sequence = ++sequence_;
    return c;
  }

  void send(const std::string& device, const std::string& payload) {
    ASSERT_TRUE(observer_->publish("/device/" + device + "/control", payload));
  }
  void send(const DeviceCommand& c) { send(c.device_id, c.encode().value()); }

  // The response to `id` with `status`, skipping others.
  std::optional<DeviceCommandResponse> response(const std::string& device, const protocol::Uuid& id,
                                                DeviceCommandStatus status) {
    std::optional<DeviceCommandResponse> out;
    next_on("/device/" + device + "/control/response", [&](const testing::ReceivedMessage& m) {
      auto decoded = DeviceCommandResponse::decode(m.payload);
      if (!decoded || decoded->command_id != id || decoded->status != status) {
        return false;
      }
      out = *decoded;
      return true;
    });
    return out;
  }

  testing::TempDir tmp_;
  testing::TestCommunity community_{tmp_.path()};
  int port_ = 0;
  fs::path gateway_chain_, gateway_key_, cafile_;
  std::unique_ptr<crypto::JwsSigner> ems_engine_, ems_lms_;
  std::unique_ptr<testing::MqttTestClient> observer_;
  testing::LoopThread loop_;
  std::unique_ptr<DeviceFleet> fleet_;
  std::uint64_t sequence_ = 0;
};

TEST_F(DeviceSimulatorTest, MetricsStatusAndLogsArriveWithSaneValues) {
  DeviceFleetConfig config = base_config();
  config.devices = {spec("pv1", DeviceKind::kGenerator), spec("bat1", DeviceKind::kAccumulator),
                    spec("ev1", DeviceKind::kLoad), spec("house1", DeviceKind::kPassiveLoad),
                    spec("meter1", DeviceKind::kMeter)};
  start_fleet(config);

  const auto pv = next_metrics("pv1", [](const DeviceMetrics& m) { return m.power_w > 0; });
  ASSERT_TRUE(pv);
  EXPECT_EQ(pv->kind, DeviceKind::kGenerator);
  EXPECT_NEAR(pv->voltage_v, 230, 5);
  EXPECT_LE(pv->power_w, 5000);
  EXPECT_NEAR(pv->current_a, pv->power_w / pv->voltage_v, 1e-6);
  EXPECT_FALSE(pv->soc_percent);
  ASSERT_TRUE(pv->temperature_c);
  EXPECT_GT(*pv->temperature_c, -20);
  EXPECT_LT(*pv->temperature_c, 80);

  const auto bat = next_metrics("bat1");
  ASSERT_TRUE(bat);
  ASSERT_TRUE(bat->soc_percent);
  EXPECT_NEAR(*bat->soc_percent, 50, 0.1);
  EXPECT_EQ(bat->state, DeviceState::kIdle);

  const auto ev = next_metrics("ev1", [](const DeviceMetrics& m) { return m.power_w < 0; });
  ASSERT_TRUE(ev);
  EXPECT_GT(ev->energy_absorbed_wh, 0);

  const auto house = next_metrics("house1", [](const DeviceMetrics& m) { return m.power_w < 0; });
  ASSERT_TRUE(house);
  // The meter sums the member's devices: PV 5 kW at noon, EV 7.4 kW, house up to 0.8 kW.
  const auto meter = next_metrics("meter1", [](const DeviceMetrics& m) { return m.power_w != 0; });
  ASSERT_TRUE(meter);
  EXPECT_LT(meter->power_w, 0);

  // Status flag and info are retained: a late subscriber sees them.
  testing::MqttTestClient late("late");
  ASSERT_TRUE(late.connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  ASSERT_TRUE(late.subscribe("/device/pv1/status/#"));
  bool flag = false;
  bool info = false;
  for (int i = 0; i < 4 && !(flag && info); ++i) {
    const auto m = late.wait_for_message(5s);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->retain);
    if (m->topic == "/device/pv1/status") {
      flag = m->payload == "online";
    } else if (m->topic == "/device/pv1/status/info") {
      const auto decoded = protocol::StatusInfo::decode(m->payload);
      ASSERT_TRUE(decoded) << decoded.status().message;
      EXPECT_EQ(decoded->fields->at("health"), "HEALTHY");
      info = true;
    }
  }
  EXPECT_TRUE(flag);
  EXPECT_TRUE(info);
}

TEST_F(DeviceSimulatorTest, BatterySocFollowsChargeAndDischarge) {
  DeviceFleetConfig config = base_config();
  DeviceSpec bat = spec("bat1", DeviceKind::kAccumulator);
  bat.capacity_wh = 10;  // 3.6 kW moves 10 % of it per second
  bat.rated_power_w = 3600;
  config.devices = {bat};
  start_fleet(config);

  const auto charge = command("bat1", DeviceCommandType::kChargeMode);
  send(charge);
  ASSERT_TRUE(response("bat1", charge.command_id, DeviceCommandStatus::kReceived));
  ASSERT_TRUE(response("bat1", charge.command_id, DeviceCommandStatus::kCompleted));
  const auto charging = next_metrics("bat1", [](const DeviceMetrics& m) {
    return m.state == DeviceState::kCharging && m.power_w < 0 && *m.soc_percent > 55;
  });
  ASSERT_TRUE(charging);
  EXPECT_LE(*charging->soc_percent, 100);

  const auto discharge = command("bat1", DeviceCommandType::kDischargeMode);
  send(discharge);
  ASSERT_TRUE(response("bat1", discharge.command_id, DeviceCommandStatus::kCompleted));
  const double from = *charging->soc_percent;
  const auto discharging = next_metrics("bat1", [from](const DeviceMetrics& m) {
    return m.state == DeviceState::kDischarging && m.power_w > 0 && *m.soc_percent < from - 5;
  });
  ASSERT_TRUE(discharging);
  EXPECT_GE(*discharging->soc_percent, 0);

  // A generator-only command is refused by an accumulator.
  const auto curtail = command("bat1", DeviceCommandType::kCurtail, {{"percentage", 10}});
  send(curtail);
  const auto failed = response("bat1", curtail.command_id, DeviceCommandStatus::kFailed);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->exit_code, protocol::kExitUnsupported);
}

TEST_F(DeviceSimulatorTest, PassiveDeviceRefusesEveryCommand) {
  DeviceFleetConfig config = base_config();
  config.devices = {spec("house1", DeviceKind::kPassiveLoad)};
  start_fleet(config);
  for (const auto type :
       {DeviceCommandType::kShutdown, DeviceCommandType::kPowerOn, DeviceCommandType::kReboot}) {
    const auto c = command("house1", type);
    send(c);
    const auto failed = response("house1", c.command_id, DeviceCommandStatus::kFailed);
    ASSERT_TRUE(failed) << protocol::to_string(type);
    EXPECT_EQ(failed->exit_code, protocol::kExitUnsupported);
    EXPECT_TRUE(failed->details.contains("reason"));
  }
  EXPECT_TRUE(eventually([&] { return fleet_->find("house1")->counters().commands_failed == 3; }));
  EXPECT_TRUE(on_loop([&] { return fleet_->find("house1")->connected(); }));
}

TEST_F(DeviceSimulatorTest, CurtailReducesPvPower) {
  DeviceFleetConfig config = base_config();
  config.devices = {spec("pv1", DeviceKind::kGenerator)};
  start_fleet(config);
  const auto before = next_metrics("pv1", [](const DeviceMetrics& m) { return m.power_w > 0; });
  ASSERT_TRUE(before);
  EXPECT_NEAR(before->power_w, 5000, 1);  // noon, clear sky

  const auto c = command("pv1", DeviceCommandType::kCurtail, {{"percentage", 20}});
  send(c);
  ASSERT_TRUE(response("pv1", c.command_id, DeviceCommandStatus::kCompleted));
  const auto after = next_metrics(
      "pv1", [](const DeviceMetrics& m) { return m.state == DeviceState::kCurtailed; });
  ASSERT_TRUE(after);
  EXPECT_LE(after->power_w, 0.2 * 5000 + 1);
  EXPECT_GT(after->power_w, 0);
}

TEST_F(DeviceSimulatorTest, InvalidCommandsAreRefusedWithoutStateChange) {
  DeviceFleetConfig config = base_config();
  config.max_command_bytes = 4096;
  config.devices = {spec("ev1", DeviceKind::kLoad), spec("pv1", DeviceKind::kGenerator)};
  start_fleet(config);

  const auto shutdown = command("ev1", DeviceCommandType::kShutdown);
  send(shutdown);
  ASSERT_TRUE(response("ev1", shutdown.command_id, DeviceCommandStatus::kCompleted));

  // The same command_id again, now asking for power-on: a duplicate.
  auto duplicate = command("ev1", DeviceCommandType::kPowerOn);
  duplicate.command_id = shutdown.command_id;
  send(duplicate);
  // Expired before it arrived.
  auto expired = command("ev1", DeviceCommandType::kPowerOn);
  expired.issued_at = now_ms() - 120s;
  expired.expire_at = now_ms() - 60s;
  send(expired);
  // Meant for pv1 but published on ev1's topic.
  send("ev1", command("pv1", DeviceCommandType::kShutdown).encode().value());
  // Not a command at all, and too large.
  send("ev1", "{\"command_id\": 42");
  send("ev1", std::string(8192, '{'));
  // A sequence that does not increase.
  auto stale = command("ev1", DeviceCommandType::kPowerOn);
  stale.sequence = 1;
  send(stale);

  const auto expired_response = response("ev1", expired.command_id, DeviceCommandStatus::kFailed);
  ASSERT_TRUE(expired_response);
  EXPECT_EQ(expired_response->exit_code, protocol::kExitExpired);
  ASSERT_TRUE(eventually([&] {
    const auto& n = fleet_->find("ev1")->counters();
    return n.refused_duplicate == 1 && n.refused_expired == 1 && n.refused_other_device == 1 &&
           n.refused_malformed == 1 && n.refused_oversize == 1 && n.refused_sequence == 1;
  }));
  EXPECT_EQ(on_loop([&] { return fleet_->find("ev1")->model().state(); }), DeviceState::kOff);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->model().state(); }), DeviceState::kOn);
  EXPECT_TRUE(next_on("/device/ev1/log/WARN"));
  // Unsigned commands from the gateway that go wrong are not security events.
  EXPECT_EQ(on_loop([&] { return fleet_->find("ev1")->counters().security_events; }), 0u);
  EXPECT_TRUE(on_loop([&] { return fleet_->find("ev1")->connected(); }));
}

TEST_F(DeviceSimulatorTest, SignedDiagnosticGetsASignedReportAndForgeriesAreRefused) {
  DeviceFleetConfig config = base_config();
  config.devices = {spec("pv1", DeviceKind::kGenerator), spec("bat1", DeviceKind::kAccumulator)};
  start_fleet(config);

  const auto diagnostic = command("pv1", DeviceCommandType::kDiagnostic);
  const std::string jws = ems_engine_->sign("/device/pv1/control", diagnostic.encode().value());
  send("pv1", jws);
  const auto report = next_on("/device/pv1/diagnostic");
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->retain);
  EXPECT_EQ(report->qos, 1);
  crypto::SignerTrust member_trust;
  member_trust.issuer_pem = read_file(pki_dir() / "ca" / "member_r1_m1" / "cert.pem");
  member_trust.crl_pem = read_file(pki_dir() / "ca" / "member_r1_m1" / "crl.pem");
  member_trust.allowed_signers = {"rec_r1_m1_pv1"};
  const crypto::JwsVerifier member_verifier(member_trust);
  const auto verified = member_verifier.verify("/device/pv1/diagnostic", report->payload);
  ASSERT_TRUE(verified) << verified.status().message;
  const auto decoded = protocol::DiagnosticReport::decode(verified->payload);
  ASSERT_TRUE(decoded) << decoded.status().message;
  EXPECT_EQ(decoded->command_id, diagnostic.command_id);
  ASSERT_TRUE(response("pv1", diagnostic.command_id, DeviceCommandStatus::kCompleted));

  // Replayed, signed by another EMS service, forged, or moved onto another device's topic.
  send("pv1", jws);
  send("pv1", ems_lms_->sign("/device/pv1/control",
                             command("pv1", DeviceCommandType::kDiagnostic).encode().value()));
  std::string forged = ems_engine_->sign(
      "/device/pv1/control", command("pv1", DeviceCommandType::kDiagnostic).encode().value());
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  send("pv1", forged);
  send("bat1", ems_engine_->sign("/device/pv1/control",
                                 command("bat1", DeviceCommandType::kDiagnostic).encode().value()));
  // Properly signed, but expired before it arrived.
  auto stale = command("pv1", DeviceCommandType::kDiagnostic);
  stale.issued_at = now_ms() - 120s;
  stale.expire_at = now_ms() - 60s;
  send("pv1", ems_engine_->sign("/device/pv1/control", stale.encode().value()));
  // Unsigned: answered FAILED with the signature exit code.
  const auto unsigned_command = command("pv1", DeviceCommandType::kDiagnostic);
  send(unsigned_command);
  const auto failed = response("pv1", unsigned_command.command_id, DeviceCommandStatus::kFailed);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->exit_code, protocol::kExitBadSignature);

  ASSERT_TRUE(eventually([&] {
    const auto& pv = fleet_->find("pv1")->counters();
    const auto& bat = fleet_->find("bat1")->counters();
    return pv.refused_duplicate == 1 && pv.refused_signature == 3 && pv.refused_expired == 1 &&
           bat.refused_signature == 1;
  }));
  // Each refusal is a security event, logged at ERROR with its reason (no /security/events
  // write for a device in SPEC §6).
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().security_events; }), 5u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("bat1")->counters().security_events; }), 1u);
  send("pv1", jws);  // once more, to read the event it raises
  const auto event = next_on("/device/pv1/log/ERROR", [](const testing::ReceivedMessage& m) {
    const auto record = protocol::LogRecord::decode(m.payload);
    return record && record->fields && record->fields->value("event", "") == "security" &&
           record->fields->value("reason", "") == "duplicate command_id";
  });
  EXPECT_TRUE(event);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().security_events; }), 6u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("pv1")->counters().diagnostics_published; }), 1u);
  EXPECT_EQ(on_loop([&] { return fleet_->find("bat1")->counters().diagnostics_published; }), 0u);
}

TEST_F(DeviceSimulatorTest, CrashedDeviceIsUnhealthyUntilRebooted) {
  DeviceFleetConfig config = base_config();
  config.crash_fraction = 1;
  config.run_length = 1s;
  config.devices = {spec("ev1", DeviceKind::kLoad)};
  start_fleet(config, false);
  ASSERT_TRUE(next_on("/device/ev1/log/ERROR"));
  const auto fault =
      next_metrics("ev1", [](const DeviceMetrics& m) { return m.state == DeviceState::kFault; });
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->power_w, 0);

  const auto refused = command("ev1", DeviceCommandType::kPowerOn);
  send(refused);
  ASSERT_TRUE(response("ev1", refused.command_id, DeviceCommandStatus::kFailed));

  const auto reboot = command("ev1", DeviceCommandType::kReboot);
  send(reboot);
  ASSERT_TRUE(response("ev1", reboot.command_id, DeviceCommandStatus::kCompleted));
  ASSERT_TRUE(next_on("/device/ev1/status", [](const auto& m) { return m.payload == "offline"; }));
  ASSERT_TRUE(next_on("/device/ev1/status", [](const auto& m) { return m.payload == "online"; }));
  const auto info = next_on("/device/ev1/status/info", [](const testing::ReceivedMessage& m) {
    const auto decoded = protocol::StatusInfo::decode(m.payload);
    return decoded && decoded->reason == "rebooted";
  });
  ASSERT_TRUE(info);
  EXPECT_NE(info->payload.find("\"HEALTHY\""), std::string::npos);
  ASSERT_TRUE(
      next_metrics("ev1", [](const DeviceMetrics& m) { return m.state == DeviceState::kOn; }));
}

TEST_F(DeviceSimulatorTest, TwoHundredDevicesOnOneLoopAllPublishMetrics) {
  DeviceFleetConfig config = base_config();
  config.metrics_interval = 1000ms;
  const DeviceKind kinds[] = {DeviceKind::kGenerator, DeviceKind::kLoad, DeviceKind::kPassiveLoad,
                              DeviceKind::kAccumulator};
  for (int i = 0; i < 200; ++i) {
    config.devices.push_back(spec(fmt::format("d{}", i), kinds[i % 4]));
  }
  start_fleet(config, false);
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& device : fleet_->devices()) {
          if (device->counters().metrics_published == 0) {
            return false;
          }
        }
        return true;
      },
      90s));
}

// `recmesh device` as a process: SIGTERM publishes offline and exits 0; SIGKILL leaves it to the
// broker's Last Will.
TEST_F(DeviceSimulatorTest, ProcessPublishesOfflineOnSigtermAndWillOnKill) {
  issue_devices({"pv1"});
  const fs::path config = tmp_ / "devices.yaml";
  {
    std::ofstream out(config);
    out << fmt::format(
        "broker:\n  host: 127.0.0.1\n  port: {}\npki_dir: {}\nrec: r1\nmember: m1\n"
        "metrics_interval_ms: 200\ncrash_fraction: 0\ndevices:\n  - id: pv1\n    kind: generator\n",
        port_, pki_dir().string());
  }
  observer_ = std::make_unique<testing::MqttTestClient>("observer");
  ASSERT_TRUE(observer_->connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  ASSERT_TRUE(observer_->subscribe("/device/pv1/status"));

  const auto spawn = [&] {
    const std::string binary = testing::recmesh_binary();
    const std::string config_path = config.string();
    std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>("device"),
                               const_cast<char*>("--config"),
                               const_cast<char*>(config_path.c_str()), nullptr};
    pid_t pid = -1;
    EXPECT_EQ(::posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), environ), 0);
    return pid;
  };
  const auto online = [](const testing::ReceivedMessage& m) { return m.payload == "online"; };
  const auto offline = [](const testing::ReceivedMessage& m) { return m.payload == "offline"; };

  pid_t pid = spawn();
  ASSERT_TRUE(next_on("/device/pv1/status", online));
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  ASSERT_TRUE(next_on("/device/pv1/status", offline));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  pid = spawn();
  ASSERT_TRUE(next_on("/device/pv1/status", online));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  ASSERT_TRUE(next_on("/device/pv1/status", offline, 20s));  // the broker's Last Will
}

// The daemon's command line: --check-config names the file, line and key of a problem (exit 2),
// and --log-format json makes every line a JSON object.
TEST_F(DeviceSimulatorTest, CliChecksItsConfigurationAndLogsJsonLines) {
  issue_devices({"pv1"});
  const fs::path config = tmp_ / "devices.yaml";
  const std::string body = fmt::format(
      "broker:\n  port: {}\npki_dir: {}\nrec: r1\nmember: m1\nmetrics_interval_ms: 200\n"
      "crash_fraction: 0\ndevices:\n  - id: pv1\n    kind: generator\n",
      port_, pki_dir().string());
  std::ofstream(config) << body << "    colour: red\n";
  const auto bad = testing::run_recmesh({"device", "--config", config.string(), "--check-config"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("devices.yaml:11: devices[0].colour: unknown key"), std::string::npos)
      << bad.err;
  std::ofstream(config) << body << "logging:\n  format: json\n";
  const auto ok = testing::run_recmesh({"device", "--config", config.string(), "--check-config"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;

  observer_ = std::make_unique<testing::MqttTestClient>("observer");
  ASSERT_TRUE(observer_->connect(port_, cafile_, gateway_chain_, gateway_key_).accepted());
  ASSERT_TRUE(observer_->subscribe("/device/pv1/status"));
  const fs::path log = tmp_ / "device.log";
  testing::ChildProcess devices(
      {testing::recmesh_binary(), "device", "--config", config.string(), "--log-level", "debug"},
      log);
  ASSERT_TRUE(next_on("/device/pv1/status",
                      [](const testing::ReceivedMessage& m) { return m.payload == "online"; }));
  EXPECT_EQ(devices.signal_and_wait(SIGTERM, 15s), 0);
  std::istringstream lines(read_file(log));
  std::size_t count = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      const auto json = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(json.is_object()) << "not a JSON line: " << line;
      EXPECT_EQ(json.value("component", ""), "device") << line;
      ++count;
    }
  }
  EXPECT_GE(count, 1U);
}

}  // namespace
}  // namespace recmesh::device
