// The EMS engine against real brokers: a central Mosquitto, a member's local Mosquitto bridged to
// it by `recmesh bridge`, certificates of our PKI and a test client playing the member's gateway
// behind end-to-end protection (on, as it is by default): what the engine reads and sends is
// sealed, so the probe opens and seals like the real gateway.
#include "ems/ems_engine.hpp"

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

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
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

namespace recmesh::ems {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using protocol::MemberControl;
using protocol::MemberControlResponse;
using protocol::MemberControlStatus;
using protocol::MemberControlType;

class EmsEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto gateway = community_.gateway();
    gateway_chain_ = gateway.chain;
    gateway_key_ = gateway.key;
    member_cafile_ = gateway.cafile;
    community_.service("engine");
    // Registered before the bridge starts: recmesh-guard grants the bridge's device-scoped
    // subscriptions (`/device/+/diagnostic`) only when its member has a device to carry.
    community_.issue_devices("m1", {"pv1"});
    central_ems_port_ = community_.start_central().ems_port;
    local_port_ = community_.start_local("m1", true).member_port;

    gateway_ = std::make_unique<testing::MqttTestClient>("rec_r1_m1_gateway");
    ASSERT_TRUE(
        gateway_->connect(local_port_, member_cafile_, gateway_chain_, gateway_key_).accepted());
    probe_ = std::make_unique<testing::E2eProbe>(testing::E2eProbe::Side::kMember, *gateway_,
                                                 pki_dir(), "r1", "m1");
    ASSERT_TRUE(probe_->subscribe({"/platform/control"}));
  }

  void TearDown() override {
    if (fleet_) {
      loop_.stop_and_wait(*fleet_);
    }
    if (engine_) {
      loop_.stop_and_wait(*engine_);
    }
    loop_.stop();
    fleet_.reset();
    engine_.reset();
  }

  fs::path pki_dir() const { return community_.pki_dir(); }
  testing::MosquittoBroker& central() { return *community_.central().process; }

  EmsConfig base_config() const {
    EmsConfig config;
    config.broker_port = central_ems_port_;
    config.pki_dir = pki_dir();
    config.database = tmp_ / "ems.db";
    config.policy_period = 0ms;
    config.control_timeout = 10s;
    config.resolve_and_validate();
    return config;
  }

  void start_engine(EmsConfig config) {
    on_loop([&] {
      engine_ = std::make_unique<EmsEngine>(loop_.loop(), std::move(config));
      engine_->start();
      return 0;
    });
    ASSERT_TRUE(eventually([&] { return engine_->connected(); }));
  }

  // Stops the running engine cleanly and starts a new one on the same database.
  void restart_engine(EmsConfig config) {
    ASSERT_TRUE(loop_.stop_and_wait(*engine_));
    // The engine closed its end-to-end session on the way out: the probe reads the close, so
    // that its next message starts a session with the new engine.
    (void)probe_->wait_for_message(1s);
    start_engine(std::move(config));
  }

  template <typename F>
  auto on_loop(F&& f) -> std::invoke_result_t<F&> {
    return loop_.run(std::forward<F>(f));
  }
  template <typename Predicate>
  bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 20s) {
    return loop_.eventually(std::move(predicate), timeout);
  }

  static protocol::MemberMetrics metrics(double net_w, std::optional<double> soc) {
    protocol::MemberMetrics m;
    m.window_end = now_timestamp();
    m.window_start = m.window_end - 5s;
    m.production_w = net_w > 0 ? net_w + 500 : 0;
    m.consumption_w = 500 + (net_w < 0 ? -net_w : 0);
    m.net_exchange_w = net_w;
    m.storage_soc_percent = soc;
    return m;
  }

  // Publishes the aggregate until the engine has stored `count` of them: the engine may not
  // have its subscriptions yet when the first one crosses the bridge.
  bool publish_metrics_until_stored(const protocol::MemberMetrics& m, std::uint64_t count = 1) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      // The first hellos may cross before the engine has subscribed: a failed handshake is
      // tried again until the deadline.
      if (!probe_->publish("/platform/metrics/aggregate", m.encode().value(), 3s)) {
        continue;
      }
      if (eventually([&] { return engine_->counters().metrics_stored >= count; }, 500ms)) {
        return true;
      }
    }
    return false;
  }

  // A configuration file for `recmesh ems` and `recmesh ctl` against this test's brokers.
  fs::path write_config() const {
    const fs::path path = tmp_ / "ems.yaml";
    std::ofstream out(path);
    out << "broker:\n  port: " << central_ems_port_ << "\npki_dir: " << pki_dir().string()
        << "\ndatabase: " << (tmp_ / "ems.db").string() << "\n";
    return path;
  }

  std::optional<MemberControl> next_control(std::chrono::milliseconds timeout = 15s) {
    const auto message = probe_->wait_for_message(timeout);
    if (!message || message->topic != "/platform/control") {
      return std::nullopt;
    }
    auto decoded = MemberControl::decode(message->payload);
    if (!decoded) {
      ADD_FAILURE() << decoded.status().message;
      return std::nullopt;
    }
    return *decoded;
  }

  void respond(const MemberControl& control, MemberControlStatus status,
               const std::string& gateway_id = "rec_r1_m1_gateway") {
    MemberControlResponse r;
    r.control_id = control.control_id;
    r.gateway_id = gateway_id;
    r.status = status;
    r.issued_at = now_timestamp();
    ASSERT_TRUE(probe_->publish("/platform/control/response", r.encode().value()));
  }

  testing::TempDir tmp_;
  testing::TestCommunity community_{tmp_.path()};
  int central_ems_port_ = 0;
  int local_port_ = 0;
  fs::path gateway_chain_, gateway_key_, member_cafile_;
  std::unique_ptr<testing::MqttTestClient> gateway_;
  std::unique_ptr<testing::E2eProbe> probe_;
  testing::LoopThread loop_;
  std::unique_ptr<EmsEngine> engine_;
  std::unique_ptr<device::DeviceFleet> fleet_;
};

TEST_F(EmsEngineTest, StoresMemberMetricsCarriedByTheBridge) {
  start_engine(base_config());
  ASSERT_TRUE(publish_metrics_until_stored(metrics(1200, 40))) << central().log();
  const auto members = on_loop([&] { return engine_->store().members(); });
  ASSERT_EQ(members.size(), 1U);
  EXPECT_EQ(members[0].rec, "r1");
  EXPECT_EQ(members[0].member, "m1");
  const auto stored = protocol::MemberMetrics::decode(members[0].metrics);
  ASSERT_TRUE(stored) << stored.status().message;
  EXPECT_EQ(stored->net_exchange_w, 1200);
  EXPECT_EQ(on_loop([&] { return engine_->counters().bad_input; }), 0U);
}

TEST_F(EmsEngineTest, PolicyControlReachesTheGatewayAndItsSuccessIsTracked) {
  EmsConfig config = base_config();
  config.policy_period = 300ms;
  start_engine(config);
  ASSERT_TRUE(publish_metrics_until_stored(metrics(2000, 50)));

  const auto control = next_control();
  ASSERT_TRUE(control) << central().log();
  EXPECT_EQ(control->type, MemberControlType::kStoreSurplus);
  EXPECT_EQ(control->member_id, "m1");
  EXPECT_EQ(control->issued_by, "ems_engine");
  EXPECT_EQ(control->params.at("power_w"), 2000);
  EXPECT_GT(control->expire_at, control->issued_at);
  const std::string id = control->control_id.str();

  respond(*control, MemberControlStatus::kReceived);
  ASSERT_TRUE(eventually([&] { return engine_->control_state(id) == "RECEIVED"; }));
  respond(*control, MemberControlStatus::kExecuting);
  respond(*control, MemberControlStatus::kSuccess);
  ASSERT_TRUE(eventually([&] { return engine_->control_state(id) == "SUCCESS"; }));
  const auto row = on_loop([&] { return engine_->store().control(id); });
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, "SUCCESS");
  EXPECT_EQ(row->type, "store-surplus");

  // The next round sees the surplus again and issues a new control with a higher sequence.
  const auto next = next_control();
  ASSERT_TRUE(next);
  EXPECT_GT(next->sequence, control->sequence);
  EXPECT_NE(next->control_id, control->control_id);
}

TEST_F(EmsEngineTest, ControlWithoutAnswerTimesOut) {
  EmsConfig config = base_config();
  config.control_timeout = 1500ms;
  start_engine(config);
  const auto issued = on_loop([&] {
    return engine_->issue("r1", "m1", MemberControlType::kCoverDeficit, {{"power_w", 800}});
  });
  ASSERT_TRUE(issued) << issued.status().message;
  const std::string id = issued->control_id.str();
  ASSERT_TRUE(next_control());
  ASSERT_TRUE(eventually([&] { return engine_->control_state(id) == "TIMED_OUT"; }));
  EXPECT_EQ(on_loop([&] { return engine_->store().control(id)->state; }), "TIMED_OUT");
  EXPECT_EQ(on_loop([&] { return engine_->counters().controls_timed_out; }), 1U);
}

TEST_F(EmsEngineTest, RestartedEngineKeepsTrackingItsOpenControls) {
  start_engine(base_config());
  const auto issued = on_loop([&] {
    return engine_->issue("r1", "m1", MemberControlType::kStoreSurplus, {{"power_w", 900}});
  });
  ASSERT_TRUE(issued) << issued.status().message;
  const std::string id = issued->control_id.str();
  const auto control = next_control();
  ASSERT_TRUE(control);
  respond(*control, MemberControlStatus::kReceived);
  ASSERT_TRUE(eventually([&] { return engine_->control_state(id) == "RECEIVED"; }));

  restart_engine(base_config());
  EXPECT_EQ(on_loop([&] { return engine_->counters().controls_resumed; }), 1U);
  EXPECT_EQ(on_loop([&] { return engine_->control_state(id); }), "RECEIVED");
  // A stale response does not move it back; the final one lands on the resumed control.
  respond(*control, MemberControlStatus::kReceived);
  respond(*control, MemberControlStatus::kSuccess);
  ASSERT_TRUE(eventually([&] { return engine_->control_state(id) == "SUCCESS"; }));
  EXPECT_EQ(on_loop([&] { return engine_->store().control(id)->state; }), "SUCCESS");
  EXPECT_EQ(on_loop([&] { return engine_->counters().controls_final; }), 1U);
  EXPECT_EQ(on_loop([&] { return engine_->counters().bad_input; }), 0U);
}

TEST_F(EmsEngineTest, RestartedEngineTimesOutControlsFromTheirIssueTime) {
  EmsConfig config = base_config();
  config.control_timeout = 3s;
  start_engine(config);
  const auto overdue = on_loop([&] {
    return engine_->issue("r1", "m1", MemberControlType::kCoverDeficit, {{"power_w", 800}});
  });
  ASSERT_TRUE(overdue);
  ASSERT_TRUE(next_control());
  // An unreadable row (a type this version does not know) is closed, never tracked forever.
  on_loop([&] {
    engine_->store().db().execute(
        "INSERT INTO controls(control_id, rec, member, type, sequence, issued_at, state,"
        " updated_at, payload) VALUES('bogus', 'r1', 'm1', 'warp-drive', 1, 'yesterday',"
        " 'ISSUED', 'yesterday', '{}')");
    return 0;
  });
  // Down for longer than the timeout: the overdue control times out right after the start.
  ASSERT_TRUE(loop_.stop_and_wait(*engine_));
  std::this_thread::sleep_for(3500ms);
  const auto started = std::chrono::steady_clock::now();
  start_engine(config);
  const std::string id = overdue->control_id.str();
  ASSERT_TRUE(eventually([&] { return engine_->control_state(id) == "TIMED_OUT"; }));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_EQ(on_loop([&] { return engine_->store().control(id)->state; }), "TIMED_OUT");
  EXPECT_EQ(on_loop([&] { return engine_->store().control("bogus")->state; }), "TIMED_OUT");
  EXPECT_EQ(on_loop([&] { return engine_->counters().controls_timed_out; }), 2U);
  EXPECT_TRUE(on_loop([&] { return engine_->store().open_controls().empty(); }));

  // One issued after the restart still gets its full timeout.
  const auto fresh = on_loop([&] {
    return engine_->issue("r1", "m1", MemberControlType::kCoverDeficit, {{"power_w", 800}});
  });
  ASSERT_TRUE(fresh);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(on_loop([&] { return engine_->control_state(fresh->control_id.str()); }), "ISSUED");
  ASSERT_TRUE(
      eventually([&] { return engine_->control_state(fresh->control_id.str()) == "TIMED_OUT"; }));
}

TEST_F(EmsEngineTest, BadInputIsCountedAndChangesNothing) {
  start_engine(base_config());
  ASSERT_TRUE(publish_metrics_until_stored(metrics(100, 40)));
  const auto issued = on_loop([&] {
    return engine_->issue("r1", "m1", MemberControlType::kDiagnostic, nlohmann::json::object(),
                          {"pv1"});
  });
  ASSERT_TRUE(issued);
  const auto control = next_control();
  ASSERT_TRUE(control);

  // Sealed by the member's own session, then refused by the decoders.
  ASSERT_TRUE(probe_->publish("/platform/metrics/aggregate", "{not json"));
  ASSERT_TRUE(probe_->publish("/platform/control/response", "[]"));
  ASSERT_TRUE(gateway_->publish("/smart-gateway/status", "maybe"));
  // A response naming another member's gateway, for a control issued to m1.
  respond(*control, MemberControlStatus::kSuccess, "rec_r1_m2_gateway");
  // Not sealed at all: the end-to-end layer drops them before any decoder.
  const auto refused_before = on_loop([&] { return engine_->e2e()->stats().refused_total(); });
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "{not json"));
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", std::string(1 << 20, 'x')));
  ASSERT_TRUE(gateway_->publish("/platform/control/response", "[]"));

  ASSERT_TRUE(eventually([&] { return engine_->counters().bad_input >= 4; }))
      << on_loop([&] { return engine_->counters().bad_input; });
  // (The 1 MiB one may already be dropped on the way by a broker's or the bridge's size limit.)
  ASSERT_TRUE(eventually([&] {
    return engine_->e2e()->stats().refused_total() >= refused_before + 2;
  })) << on_loop([&] { return engine_->e2e()->stats().refused_total(); }) - refused_before;
  // Still alive, still reading, and nothing changed.
  const auto stored = on_loop([&] { return engine_->counters().metrics_stored; });
  ASSERT_TRUE(publish_metrics_until_stored(metrics(300, 40), stored + 1));
  EXPECT_EQ(on_loop([&] { return engine_->control_state(issued->control_id.str()); }), "ISSUED");
  const auto members = on_loop([&] { return engine_->store().members(); });
  ASSERT_EQ(members.size(), 1U);
  EXPECT_EQ(protocol::MemberMetrics::decode(members[0].metrics)->net_exchange_w, 300);
}

TEST_F(EmsEngineTest, CtlHandsAControlToTheEngineAndWatchesItToSuccess) {
  start_engine(base_config());
  ASSERT_TRUE(publish_metrics_until_stored(metrics(-700, 60)));
  const fs::path config = write_config();

  const auto members =
      testing::run_recmesh({"ctl", "--config", config.string(), "--json", "members"});
  ASSERT_EQ(members.exit_code, 0) << members.err;
  const auto listed = nlohmann::json::parse(members.out);
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0]["member"], "m1");
  EXPECT_EQ(listed[0]["metrics"]["net_exchange_w"], -700);

  // ctl queues it in the database; the engine seals it for m1's session, sends and tracks it.
  const auto sent = testing::run_recmesh(
      {"ctl", "--config", config.string(), "--json", "control", "--rec", "r1", "--member", "m1",
       "--type", "activate-load", "--device", "ev1", "--params", R"({"power_w":3000})"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err << sent.out;
  const auto issued = nlohmann::json::parse(sent.out);
  EXPECT_EQ(issued["status"], "ISSUED");
  const std::string id = issued["control_id"];
  const auto control = next_control(20s);
  ASSERT_TRUE(control);
  EXPECT_EQ(control->control_id.str(), id);
  EXPECT_EQ(control->type, MemberControlType::kActivateLoad);
  EXPECT_EQ(control->issued_by, "ems_engine");
  EXPECT_EQ(control->device_ids, std::vector<std::string>{"ev1"});
  EXPECT_EQ(control->params.at("power_w"), 3000);
  EXPECT_EQ(on_loop([&] { return engine_->control_state(id); }), "ISSUED");
  EXPECT_EQ(on_loop([&] { return engine_->counters().requests_taken; }), 1U);

  auto watch = std::async(std::launch::async, [&] {
    return testing::run_recmesh(
        {"ctl", "--config", config.string(), "--json", "watch", id, "--timeout", "20"});
  });
  respond(*control, MemberControlStatus::kReceived);
  respond(*control, MemberControlStatus::kExecuting);
  respond(*control, MemberControlStatus::kSuccess);
  const auto result = watch.get();
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "SUCCESS");
  EXPECT_EQ(json["control_id"], id);
  EXPECT_EQ(json["last_response"]["status"], "SUCCESS");
  EXPECT_EQ(on_loop([&] { return engine_->control_state(id); }), "SUCCESS");

  // --wait follows it to the engine's own timeout when nobody answers.
  const auto unanswered = testing::run_recmesh(
      {"ctl", "--config", config.string(), "--json", "control", "--rec", "r1", "--member", "m1",
       "--type", "cover-deficit", "--wait", "--timeout", "2"});
  EXPECT_EQ(unanswered.exit_code, 1) << unanswered.err;
  EXPECT_NE(nlohmann::json::parse(unanswered.out)["status"], "SUCCESS");

  const auto usage = testing::run_recmesh({"ctl", "--config", config.string(), "control", "--rec",
                                           "r1", "--member", "m1", "--type", "explode"});
  EXPECT_EQ(usage.exit_code, 2);
  const auto bad_member =
      testing::run_recmesh({"ctl", "--config", config.string(), "control", "--rec", "r1",
                            "--member", "M_1", "--type", "cover-deficit"});
  EXPECT_EQ(bad_member.exit_code, 2);
}

// Without a running engine nothing is sent: the request expires and ctl says why.
TEST_F(EmsEngineTest, CtlRefusesWhenTheEngineDoesNotTakeTheRequest) {
  start_engine(base_config());
  ASSERT_TRUE(loop_.stop_and_wait(*engine_));
  const fs::path config = write_config();
  const auto started = std::chrono::steady_clock::now();
  const auto result = testing::run_recmesh({"ctl", "--config", config.string(), "--json", "control",
                                            "--rec", "r1", "--member", "m1", "--type",
                                            "store-surplus", "--take-timeout", "1", "--wait"});
  EXPECT_EQ(result.exit_code, 3) << result.err << result.out;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "EXPIRED");
  EXPECT_NE(json["error"].get<std::string>().find("did not take"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);

  // A restarted engine does not send the expired request, and sends nothing else.
  start_engine(base_config());
  EXPECT_FALSE(next_control(2s));
  EXPECT_EQ(on_loop([&] { return engine_->counters().controls_issued; }), 0U);
  EXPECT_EQ(on_loop([&] {
              return engine_->store().request(json["control_id"].get<std::string>())->state;
            }),
            "EXPIRED");
}

// Who can write the EMS database can control the community: ctl without that right refuses.
TEST_F(EmsEngineTest, CtlRefusesWithoutTheRightToWriteTheDatabase) {
  start_engine(base_config());
  const fs::path config = write_config();
  EXPECT_EQ(fs::status(tmp_ / "ems.db").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::vector<std::string> as_other;
  if (::geteuid() == 0) {
    // root reads every file: ask as an account without rights on it.
    as_other = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"};
    fs::permissions(tmp_.path(), fs::perms::others_read | fs::perms::others_exec,
                    fs::perm_options::add);
    fs::permissions(config, fs::perms::others_read, fs::perm_options::add);
  } else {
    fs::permissions(tmp_ / "ems.db", fs::perms::none);
  }
  std::vector<std::string> args = as_other;
  for (const std::string& arg :
       {testing::recmesh_binary(), std::string("ctl"), std::string("--config"), config.string(),
        std::string("--json"), std::string("control"), std::string("--rec"), std::string("r1"),
        std::string("--member"), std::string("m1"), std::string("--type"),
        std::string("store-surplus")}) {
    args.push_back(arg);
  }
  const auto result = testing::run_command(args);
  EXPECT_EQ(result.exit_code, 3) << result.err << result.out;
  EXPECT_NE(result.out.find("cannot open the EMS database"), std::string::npos) << result.out;
  EXPECT_FALSE(next_control(1s));
  EXPECT_EQ(on_loop([&] { return engine_->store().count("requests"); }), 0);

  // A database that does not exist is not created by ctl.
  const fs::path elsewhere = tmp_ / "elsewhere.yaml";
  std::ofstream(elsewhere) << "broker:\n  port: " << central_ems_port_
                           << "\npki_dir: " << pki_dir().string()
                           << "\ndatabase: " << (tmp_ / "none.db").string() << "\n";
  const auto missing =
      testing::run_recmesh({"ctl", "--config", elsewhere.string(), "--json", "control", "--rec",
                            "r1", "--member", "m1", "--type", "store-surplus"});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_FALSE(fs::exists(tmp_ / "none.db"));
}

// The gateway's part is played here: it forwards the signed command it cannot forge to the
// device, and reports the device's outcome.
TEST_F(EmsEngineTest, CtlDiagnosticReturnsTheDeviceReportVerifiedAgainstTheMemberCa) {
  start_engine(base_config());
  device::DeviceFleetConfig fleet;
  fleet.broker_port = local_port_;
  fleet.pki_dir = pki_dir();
  fleet.rec = "r1";
  fleet.member = "m1";
  fleet.metrics_interval = 200ms;
  fleet.crash_fraction = 0;
  device::DeviceSpec pv;
  pv.id = "pv1";
  pv.kind = protocol::DeviceKind::kGenerator;
  fleet.devices = {pv};
  ASSERT_TRUE(gateway_->subscribe("/device/pv1/metrics/snapshot"));
  ASSERT_TRUE(gateway_->subscribe("/device/pv1/control/response"));
  on_loop([&] {
    fleet_ = std::make_unique<device::DeviceFleet>(loop_.loop(), fleet);
    fleet_->start();
    return 0;
  });
  // Once the device publishes metrics it has subscribed to its command topic.
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    const auto m = gateway_->wait_for_message(200ms);
    ready = m && m->topic == "/device/pv1/metrics/snapshot";
  }
  ASSERT_TRUE(ready);

  const fs::path config = write_config();
  auto ctl = std::async(std::launch::async, [&] {
    return testing::run_recmesh({"ctl", "--config", config.string(), "--json", "diagnostic",
                                 "--rec", "r1", "--member", "m1", "--device", "pv1", "--wait",
                                 "--timeout", "20"});
  });
  std::optional<MemberControl> control;
  bool completed = false;
  const auto deadline = std::chrono::steady_clock::now() + 25s;
  while (!completed && std::chrono::steady_clock::now() < deadline) {
    const auto m = probe_->wait_for_message(200ms);
    if (!m) {
      continue;
    }
    if (m->topic == "/platform/control") {
      auto decoded = MemberControl::decode(m->payload);
      ASSERT_TRUE(decoded) << decoded.status().message;
      control = *decoded;
      ASSERT_EQ(control->type, MemberControlType::kDiagnostic);
      respond(*control, MemberControlStatus::kReceived);
      const std::string jws = control->params.at("signed_commands").at("pv1");
      ASSERT_TRUE(gateway_->publish("/device/pv1/control", jws));
    } else if (m->topic == "/device/pv1/control/response" && control) {
      const auto response = protocol::DeviceCommandResponse::decode(m->payload);
      ASSERT_TRUE(response) << response.status().message;
      if (response->status == protocol::DeviceCommandStatus::kCompleted) {
        respond(*control, MemberControlStatus::kSuccess);
        completed = true;
      }
    }
  }
  EXPECT_TRUE(completed);
  const auto result = ctl.get();
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "SUCCESS");
  EXPECT_EQ(json["diagnostic"]["signer"], "rec_r1_m1_pv1");
  EXPECT_EQ(json["diagnostic"]["report"]["command_id"], json["command_id"]);
  EXPECT_EQ(json["diagnostic"]["report"]["trigger"], "command");
  EXPECT_EQ(on_loop([&] { return engine_->counters().reports_verified; }), 1U);
}

TEST_F(EmsEngineTest, RecmeshEmsRunsAsAProcessAndStopsOnSigterm) {
  const fs::path config = write_config();
  {
    std::ofstream out(config, std::ios::app);
    out << "policy_period_ms: 300\n";
  }
  const auto checked = testing::run_recmesh({"ems", "--config", config.string(), "--check-config"});
  ASSERT_EQ(checked.exit_code, 0) << checked.err;
  const fs::path bad = tmp_ / "bad.yaml";
  std::ofstream(bad) << "broker:\n  port: 1\npolicy_period: 5\n";
  const auto refused = testing::run_recmesh({"ems", "--config", bad.string(), "--check-config"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("bad.yaml:3: policy_period: unknown key"), std::string::npos)
      << refused.err;
  testing::ChildProcess ems(
      {testing::recmesh_binary(), "ems", "--config", config.string(), "--log-format", "json"},
      tmp_ / "ems.log");
  bool listed = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!listed && std::chrono::steady_clock::now() < deadline) {
    // The first hellos may reach the broker before the new process has subscribed: retry.
    (void)probe_->publish("/platform/metrics/aggregate", metrics(1500, 30).encode().value(), 2s);
    std::this_thread::sleep_for(300ms);
    const auto members =
        testing::run_recmesh({"ctl", "--config", config.string(), "--json", "members"});
    listed = members.exit_code == 0 && nlohmann::json::parse(members.out).size() == 1;
  }
  ASSERT_TRUE(listed) << read_file(tmp_ / "ems.log");
  std::optional<MemberControl> control;
  for (int i = 0; i < 50 && !control; ++i) {
    control = next_control(500ms);
  }
  ASSERT_TRUE(control) << read_file(tmp_ / "ems.log");
  EXPECT_EQ(control->type, MemberControlType::kStoreSurplus);
  respond(*control, MemberControlStatus::kSuccess);
  bool tracked = false;
  for (int i = 0; i < 50 && !tracked; ++i) {
    const auto rows =
        testing::run_recmesh({"ctl", "--config", config.string(), "--json", "controls"});
    ASSERT_EQ(rows.exit_code, 0) << rows.err;
    for (const auto& row : nlohmann::json::parse(rows.out)) {
      tracked =
          tracked || (row["control_id"] == control->control_id.str() && row["state"] == "SUCCESS");
    }
    if (!tracked) {
      std::this_thread::sleep_for(200ms);
    }
  }
  EXPECT_TRUE(tracked);
  EXPECT_TRUE(ems.running());
  EXPECT_EQ(ems.signal_and_wait(SIGTERM, 15s), 0);
  // Every line it wrote is one JSON object.
  std::istringstream lines(read_file(tmp_ / "ems.log"));
  std::size_t count = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      const auto json = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(json.is_object()) << "not a JSON line: " << line;
      EXPECT_EQ(json.value("component", ""), "ems");
      ++count;
    }
  }
  EXPECT_GE(count, 2U);
}

}  // namespace
}  // namespace recmesh::ems
