// End-to-end protection on the real path: the EMS engine on a central Mosquitto, the member's
// gateway on its local Mosquitto, Mosquitto's built-in bridge between them, certificates of our
// PKI. Shows what docs/protocol/e2e.md promises: brokers and bridges carry ciphertext only; the
// engine and the gateway see plaintext; tampered, truncated, replayed, reordered, stale,
// wrong-member and wrong-direction messages are dropped and counted; restarts re-handshake.
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/core/secret.hpp"
#include "recmesh/e2e/envelope.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

#include "e2e_probe.hpp"
#include "ems/ems_engine.hpp"
#include "free_port.hpp"
#include "gateway/gateway.hpp"
#include "mosquitto_broker.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::Failure;

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::let_mosquitto_through(tmp_.path());
    pki::Pki pki = pki::Pki::create(pki_dir(), Secret(testing::kTestPassphrase));
    pki.add_rec("r1");
    for (const std::string member : {"m1", "m2"}) {
      pki.add_member("r1", member);
      pki::IssueRequest request;
      request.identity = pki::Identity::make(pki::IdentityKind::kGateway, "r1", member, "");
      pki.issue(request);
    }
    for (const std::string service : {"engine", "lms"}) {
      pki::IssueRequest request;
      request.identity = pki::Identity::make(pki::IdentityKind::kService, "", "", service);
      pki.issue(request);
    }
    // recmesh-guard enforces SPEC §6; ems_lms gets a custom rule on the whole REC, so that it
    // spies on every flow and plays the insider that replays and forges (what end-to-end
    // protection must withstand even when a broker lets it through).
    const std::vector<policy::MemberRegistration> members{{"r1", "m1", {}}, {"r1", "m2", {}}};
    render({"broker-config", "--pki", pki_dir().string(), "--central", "--ems-port",
            std::to_string(central_port_), "--bridge-port", std::to_string(central_bridge_port_),
            "--out", (tmp_ / "central").string(), "--policy",
            testing::write_signed_policy(tmp_ / "central.jws", pki_dir(),
                                         policy::BrokerId::central(), members,
                                         {testing::grant_for("ems_lms", {"/r1/#"}, {"/r1/#"})})});
    central_ = std::make_unique<testing::MosquittoBroker>(
        tmp_ / "central" / "mosquitto.conf", std::vector<int>{central_port_, central_bridge_port_});
    for (int i = 0; i < 2; ++i) {
      const std::string member = i == 0 ? "m1" : "m2";
      render({"broker-config", "--pki", pki_dir().string(), "--local", "--rec", "r1", "--member",
              member, "--member-port", std::to_string(local_port_[i]), "--bridge-port",
              std::to_string(local_bridge_port_[i]), "--bridge-to",
              "127.0.0.1:" + std::to_string(central_bridge_port_), "--out",
              (tmp_ / member).string(), "--policy",
              testing::write_signed_policy(tmp_ / (member + ".jws"), pki_dir(),
                                           policy::BrokerId::local("r1", member), members)});
      local_[i] = std::make_unique<testing::MosquittoBroker>(
          tmp_ / member / "mosquitto.conf",
          std::vector<int>{local_port_[i], local_bridge_port_[i]});
      ASSERT_TRUE(central_->wait_for_log(" as bridge_r1_" + member + " ", 15s)) << central_->log();
    }
    // Full read rights on the central broker: sees every member topic.
    spy_ = std::make_unique<testing::MqttTestClient>("spy");
    ASSERT_TRUE(spy_->connect(central_port_, pki_dir() / "ca/ems/chain.pem",
                              pki_dir() / "issued/ems_lms/chain.pem",
                              pki_dir() / "issued/ems_lms/key.pem")
                    .accepted());
    ASSERT_TRUE(spy_->subscribe("/r1/#"));
    runner_ = std::thread([this] { loop_.run(); });
  }

  void TearDown() override {
    stop_gateway();
    stop_engine();
    loop_.stop();
    runner_.join();
  }

  void render(const std::vector<std::string>& args) {
    const auto result = testing::run_recmesh(args);
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }

  fs::path pki_dir() const { return tmp_ / "pki"; }

  static e2e::E2eSettings settings() {
    e2e::E2eSettings s;
    s.handshake_timeout = 1s;
    s.replay_window = 64;
    s.max_age = 8s;
    return s;
  }

  void start_engine() {
    ems::EmsConfig config;
    config.broker_port = central_port_;
    config.pki_dir = pki_dir();
    config.database = tmp_ / "ems.db";
    config.policy_period = 0ms;
    config.control_timeout = 20s;
    config.e2e = settings();
    config.resolve_and_validate();
    on_loop([&] {
      engine_ = std::make_unique<ems::EmsEngine>(loop_, config);
      engine_->start();
      return 0;
    });
    ASSERT_TRUE(eventually([&] { return engine_->connected(); }));
  }

  void start_gateway() {
    gateway::GatewayConfig config;
    config.broker_port = local_port_[0];
    config.pki_dir = pki_dir();
    config.rec = "r1";
    config.member = "m1";
    config.database = tmp_ / "gateway.db";
    config.metrics_interval = 1h;  // aggregates are published by hand
    config.device_timeout = 500ms;
    config.devices = {{"pv1", protocol::DeviceKind::kGenerator, 10000}};
    config.e2e = settings();
    config.resolve_and_validate();
    on_loop([&] {
      gateway_ = std::make_unique<gateway::Gateway>(loop_, config);
      gateway_->start();
      return 0;
    });
    ASSERT_TRUE(eventually([&] { return gateway_->connected(); }));
  }

  void stop_gateway() {
    if (gateway_) {
      stop_on_loop([this](std::function<void()> done) { gateway_->stop(std::move(done)); });
      on_loop([this] {
        gateway_.reset();
        return 0;
      });
    }
  }
  void stop_engine() {
    if (engine_) {
      stop_on_loop([this](std::function<void()> done) { engine_->stop(std::move(done)); });
      on_loop([this] {
        engine_.reset();
        return 0;
      });
    }
  }
  void stop_on_loop(const std::function<void(std::function<void()>)>& stop) {
    std::promise<void> stopped;
    on_loop([&] {
      stop([&stopped] { stopped.set_value(); });
      return 0;
    });
    stopped.get_future().wait_for(20s);
  }

  template <typename F>
  auto on_loop(F&& f) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    std::packaged_task<R()> task(std::forward<F>(f));
    auto future = task.get_future();
    loop_.post([&task] { task(); });
    if (future.wait_for(60s) != std::future_status::ready) {
      std::abort();  // `task` lives on this stack
    }
    return future.get();
  }

  template <typename Predicate>
  bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!on_loop(predicate)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  bool sessions_up() {
    return eventually(
        [&] { return engine_->e2e()->established("r1", "m1") && gateway_->e2e()->established(); });
  }
  // Readers for predicates of eventually() and on_loop(): call them on the loop thread.
  std::uint64_t engine_refused(Failure f) const { return engine_->e2e()->stats().refused_of(f); }
  std::uint64_t gateway_refused(Failure f) const { return gateway_->e2e()->stats().refused_of(f); }
  std::uint64_t metrics_stored() const { return engine_->counters().metrics_stored; }
  void publish_aggregate() {
    on_loop([&] {
      gateway_->publish_aggregate();
      return 0;
    });
  }
  // The next message the spy sees on `topic`.
  std::optional<testing::ReceivedMessage> spy_on(const std::string& topic) {
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = spy_->wait_for_message(1s);
      if (m && m->topic == topic) {
        return m;
      }
    }
    return std::nullopt;
  }

  testing::TempDir tmp_;
  int central_port_ = testing::free_tcp_port();
  int central_bridge_port_ = testing::free_tcp_port();
  int local_port_[2] = {testing::free_tcp_port(), testing::free_tcp_port()};
  int local_bridge_port_[2] = {testing::free_tcp_port(), testing::free_tcp_port()};
  std::unique_ptr<testing::MosquittoBroker> central_;
  std::unique_ptr<testing::MosquittoBroker> local_[2];
  std::unique_ptr<testing::MqttTestClient> spy_;
  mqtt::EventLoop loop_;
  std::unique_ptr<ems::EmsEngine> engine_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::thread runner_;
};

bool is_envelope(const std::string& payload) {
  return payload.size() >= e2e::kEnvelopeOverhead && payload[0] == '\x01' && payload[1] == '\x01';
}

TEST_F(E2eTest, TheCentralBrokerCarriesCiphertextWhileEngineAndGatewaySeePlaintext) {
  start_engine();
  start_gateway();
  ASSERT_TRUE(sessions_up());
  publish_aggregate();
  auto metrics = spy_on("/r1/m1/metrics/aggregate");
  ASSERT_TRUE(metrics);
  EXPECT_TRUE(is_envelope(metrics->payload));
  EXPECT_EQ(metrics->payload.find("net_exchange_w"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return engine_->counters().metrics_stored >= 1; }));
  // The engine stored the plaintext aggregate.
  EXPECT_EQ(on_loop([&] { return engine_->store().members().size(); }), 1U);

  const auto control = on_loop([&] {
    return engine_->issue("r1", "m1", protocol::MemberControlType::kActivateLoad,
                          nlohmann::json{{"power_w", 100}}, {"pv1"});
  });
  ASSERT_TRUE(control) << control.status().message;
  auto sealed_control = spy_on("/r1/m1/control");
  ASSERT_TRUE(sealed_control);
  EXPECT_TRUE(is_envelope(sealed_control->payload));
  EXPECT_EQ(sealed_control->payload.find(control->control_id.str()), std::string::npos);
  auto response = spy_on("/r1/m1/control/response");
  ASSERT_TRUE(response);
  EXPECT_TRUE(is_envelope(response->payload));
  EXPECT_EQ(response->payload.find("gateway_id"), std::string::npos);
  // The gateway acted on the opened control; the engine tracked the opened responses.
  ASSERT_TRUE(eventually([&] { return gateway_->counters().controls_accepted == 1; }));
  ASSERT_TRUE(eventually([&] {
    const auto state = engine_->control_state(control->control_id.str());
    return state && *state != "ISSUED";
  }));
  EXPECT_EQ(engine_->e2e()->stats().refused_total(), 0U);
}

TEST_F(E2eTest, AttacksOnTheBackboneAreDroppedCountedAndNeverActedOn) {
  start_engine();
  start_gateway();
  ASSERT_TRUE(sessions_up());
  // A second member whose gateway is a probe on its own local broker, for wrong-member.
  testing::MqttTestClient m2_client("m2-gateway");
  ASSERT_TRUE(m2_client
                  .connect(local_port_[1], pki_dir() / "ca/member_r1_m2/chain.pem",
                           pki_dir() / "issued/rec_r1_m2_gateway/chain.pem",
                           pki_dir() / "issued/rec_r1_m2_gateway/key.pem")
                  .accepted());
  testing::E2eProbe m2(testing::E2eProbe::Side::kMember, m2_client, pki_dir(), "r1", "m2",
                       settings());
  ASSERT_TRUE(m2.subscribe({"/platform/control"}));
  ASSERT_TRUE(m2.establish(20s));

  testing::MqttTestClient attacker("attacker");
  ASSERT_TRUE(attacker
                  .connect(central_port_, pki_dir() / "ca/ems/chain.pem",
                           pki_dir() / "issued/ems_lms/chain.pem",
                           pki_dir() / "issued/ems_lms/key.pem")
                  .accepted());
  publish_aggregate();
  auto captured = spy_on("/r1/m1/metrics/aggregate");
  ASSERT_TRUE(captured);
  ASSERT_TRUE(eventually([&] { return metrics_stored() == 1; }));
  const std::string& genuine = captured->payload;

  // A sequence number not seen yet (the next one), so the tag is what refuses it (the sequence
  // is authenticated).
  std::string tampered = genuine;
  for (std::size_t i = 16; i >= 9; --i) {  // the big-endian sequence at offsets 9..16, plus one
    tampered[i] = static_cast<char>(static_cast<unsigned char>(tampered[i]) + 1U);
    if (tampered[i] != '\0') {
      break;
    }
  }
  ASSERT_TRUE(attacker.publish("/r1/m1/metrics/aggregate", tampered));
  ASSERT_TRUE(attacker.publish("/r1/m1/metrics/aggregate", genuine.substr(0, 20)));
  ASSERT_TRUE(attacker.publish("/r1/m1/metrics/aggregate", genuine));  // a replay
  ASSERT_TRUE(eventually([&] {
    return engine_refused(Failure::kTampered) == 1 && engine_refused(Failure::kTruncated) == 1 &&
           engine_refused(Failure::kReplayed) == 1;
  }));

  // m2's sealed aggregate moved onto m1's topic.
  ASSERT_TRUE(m2.publish("/platform/metrics/aggregate", R"({"x":1})"));
  auto m2_sealed = spy_on("/r1/m2/metrics/aggregate");
  ASSERT_TRUE(m2_sealed);
  ASSERT_TRUE(attacker.publish("/r1/m1/metrics/aggregate", m2_sealed->payload));
  ASSERT_TRUE(eventually([&] { return engine_refused(Failure::kWrongMember) == 1; }));

  // The engine's own control reflected back as a response; and tampered towards the gateway.
  ASSERT_TRUE(on_loop([&] {
    return engine_->issue("r1", "m1", protocol::MemberControlType::kActivateLoad,
                          nlohmann::json{{"power_w", 100}}, {"pv1"});
  }));
  auto control = spy_on("/r1/m1/control");
  ASSERT_TRUE(control);
  ASSERT_TRUE(eventually([&] { return gateway_->counters().controls_accepted == 1; }));
  ASSERT_TRUE(attacker.publish("/r1/m1/control/response", control->payload));
  ASSERT_TRUE(eventually([&] { return engine_refused(Failure::kWrongDirection) == 1; }));
  std::string forged_control = control->payload;
  forged_control[16] = static_cast<char>(forged_control[16] ^ 0x40);
  ASSERT_TRUE(attacker.publish("/r1/m1/control", forged_control));
  ASSERT_TRUE(attacker.publish("/r1/m1/control", control->payload));  // replayed control
  ASSERT_TRUE(eventually([&] {
    return gateway_refused(Failure::kTampered) == 1 && gateway_refused(Failure::kReplayed) == 1;
  }));

  // Reordered beyond the window: 64 newer aggregates, then the first one again.
  const std::uint64_t stored = on_loop([&] { return metrics_stored(); });
  for (int i = 0; i < 64; ++i) {
    publish_aggregate();
  }
  ASSERT_TRUE(eventually([&] { return metrics_stored() == stored + 64; }));
  ASSERT_TRUE(attacker.publish("/r1/m1/metrics/aggregate", genuine));
  ASSERT_TRUE(eventually([&] { return engine_refused(Failure::kOutsideWindow) == 1; }));

  // Stale: the captured envelope once it is older than max_age.
  std::this_thread::sleep_for(settings().max_age + 1s);
  ASSERT_TRUE(attacker.publish("/r1/m1/metrics/aggregate", genuine));
  ASSERT_TRUE(eventually([&] { return engine_refused(Failure::kStale) == 1; }));

  // Nothing was acted on, nothing crashed, and the genuine path still works.
  EXPECT_EQ(on_loop([&] { return metrics_stored(); }), stored + 64);
  EXPECT_EQ(on_loop([&] { return gateway_->counters().controls_accepted; }), 1U);
  publish_aggregate();
  ASSERT_TRUE(eventually([&] { return metrics_stored() == stored + 65; }));
}

TEST_F(E2eTest, GatewayRestartReHandshakesAndLosesNothingQueued) {
  start_engine();
  start_gateway();
  ASSERT_TRUE(sessions_up());
  stop_gateway();  // sends close: the engine queues for m1 from now on
  ASSERT_TRUE(eventually([&] { return !engine_->e2e()->established("r1", "m1"); }));
  const auto control = on_loop([&] {
    return engine_->issue("r1", "m1", protocol::MemberControlType::kActivateLoad,
                          nlohmann::json{{"power_w", 100}}, {"pv1"});
  });
  ASSERT_TRUE(control);
  start_gateway();
  ASSERT_TRUE(sessions_up());
  // The control queued while the gateway was away arrives, opened, once.
  ASSERT_TRUE(eventually([&] { return gateway_->counters().controls_accepted == 1; }));
  publish_aggregate();
  ASSERT_TRUE(eventually([&] { return metrics_stored() >= 1; }));
}

TEST_F(E2eTest, EngineRestartReHandshakesAndTheGatewaysQueueGetsThrough) {
  start_engine();
  start_gateway();
  ASSERT_TRUE(sessions_up());
  stop_engine();  // sends close: the gateway holds what it publishes from now on
  ASSERT_TRUE(eventually([&] { return !gateway_->e2e()->established(); }));
  publish_aggregate();
  publish_aggregate();
  start_engine();
  ASSERT_TRUE(sessions_up());
  ASSERT_TRUE(eventually([&] { return metrics_stored() >= 2; }));
  // Only the retained status info of the old session was refused, quietly: no security event.
  EXPECT_EQ(on_loop([&] { return engine_->e2e()->stats().refused_total(); }),
            on_loop([&] { return engine_->e2e()->stale_retained(); }));
}

}  // namespace
}  // namespace recmesh
