// Member control round trip through the whole communication model against a raw MQTT
// request/response over the same brokers and bridge (docs/benchmarks.md, "control_rtt").
//
// EMS engine --/r1/m000/control--> central broker --bridge--> m000's local broker --> gateway
//   --> /device/ev1/control --> device: RECEIVED, COMPLETED --> gateway --/platform/control/
//   response--> local broker --bridge--> central broker --> EMS engine: SUCCESS.
// The raw round trip takes the same path with a plain responder in the gateway's place:
//   requester --/r1/m000/control--> ... --> responder --/platform/control/response--> ...
// Meanwhile every member's devices publish metrics and its gateway aggregates them.
// The EMS engine, gateways and devices are the product's libraries in this process, each side on
// its own event loop thread, as `recmesh ems`, `recmesh gateway` and `recmesh device` run them;
// the brokers are Mosquitto processes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdlib.h>
#include <string>
#include <thread>
#include <vector>

#include <climits>
#include <fmt/format.h>

#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/control_messages.hpp"

#include "bench_command_line.hpp"
#include "bench_community.hpp"
#include "device/device_fleet.hpp"
#include "ems/ems_engine.hpp"
#include "gateway/gateway.hpp"
#include "loop_thread.hpp"

namespace recmesh::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using protocol::DeviceKind;
using testing::LoopThread;

constexpr double kTargetRatio = 3.0;
constexpr const char* kTarget = "m000";  // the member the controls go to

struct Options {
  bool quick = false;
  int members = 100;
  int controls = 1000;  // per round, each way
  int rounds = 3;
};

const std::vector<std::pair<std::string, DeviceKind>>& member_devices() {
  static const std::vector<std::pair<std::string, DeviceKind>> kDevices{
      {"pv1", DeviceKind::kGenerator},      {"pv2", DeviceKind::kGenerator},
      {"bat1", DeviceKind::kAccumulator},   {"bat2", DeviceKind::kAccumulator},
      {"ev1", DeviceKind::kLoad},           {"hp1", DeviceKind::kLoad},
      {"ev2", DeviceKind::kLoad},           {"house1", DeviceKind::kPassiveLoad},
      {"probe1", DeviceKind::kPassiveLoad}, {"meter1", DeviceKind::kMeter}};
  return kDevices;
}

// Completion of one measured exchange, signalled from a loop thread to the driver.
class Completion {
 public:
  void reset() {
    std::lock_guard lock(mutex_);
    done_ = false;
  }
  void finish(double ms, bool ok) {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      ms_ = ms;
      ok_ = ok;
    }
    cv_.notify_one();
  }
  // The round trip in ms, or nothing on timeout or failure.
  std::optional<double> wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return done_; }) || !ok_) {
      return std::nullopt;
    }
    return ms_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  bool ok_ = false;
  double ms_ = 0;
};

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

class ControlRttBench {
 public:
  explicit ControlRttBench(Options options)
      : options_(options), community_(scratch_dir(), options.members, device_ids()) {}

  static fs::path scratch_dir() {
    const char* tmp = std::getenv("TMPDIR");
    return fs::path(tmp != nullptr ? tmp : "/tmp") /
           fmt::format("recmesh-bench-control-rtt-{}", ::getpid());
  }
  static std::vector<std::string> device_ids() {
    std::vector<std::string> ids;
    for (const auto& [id, kind] : member_devices()) {
      ids.push_back(id);
    }
    return ids;
  }

  gateway::GatewayConfig gateway_config(std::size_t index) const {
    const auto& brokers = community_.local(index);
    gateway::GatewayConfig config;
    config.broker_port = brokers.member_port;
    config.pki_dir = community_.pki_dir();
    config.rec = "r1";
    config.member = brokers.member;
    config.database = community_.dir() / fmt::format("gateway-{}.db", brokers.member);
    config.metrics_interval = 5s;
    config.device_timeout = 5s;
    config.log_batch_interval = 60s;
    for (const auto& [id, kind] : member_devices()) {
      config.devices.push_back({id, kind, 10000});
    }
    config.resolve_and_validate();
    return config;
  }

  device::DeviceFleetConfig fleet_config(std::size_t index) const {
    const auto& brokers = community_.local(index);
    device::DeviceFleetConfig config;
    config.broker_port = brokers.member_port;
    config.pki_dir = community_.pki_dir();
    config.rec = "r1";
    config.member = brokers.member;
    config.metrics_interval = 5s;
    config.crash_fraction = 0;  // a crashed ev1 would fail the controls
    config.seed = index + 1;
    for (const auto& [id, kind] : member_devices()) {
      device::DeviceSpec spec;
      spec.id = id;
      spec.kind = kind;
      config.devices.push_back(spec);
    }
    config.resolve_and_validate();
    return config;
  }

  void start() {
    fmt::print("control_rtt benchmark: {} members x {} devices, {} controls per round, {} rounds\n",
               options_.members, member_devices().size(), options_.controls, options_.rounds);
    const auto setup = Clock::now();
    // The local reference exchange (raw_round without the bridge) plays both ends of the
    // bridge's /platform/control flow with the gateway's certificate.
    community_.allow(std::string("rec_r1_") + kTarget + "_gateway", {"/platform/control"},
                     {"/platform/control/response"});
    community_.start_central();
    community_.start_locals(true);
    fmt::print("  brokers: 1 central + {} local, bridged ({:.1f} s)\n", options_.members,
               elapsed_ms(setup) / 1000);

    // Background: every member but the target, devices and gateway.
    background_.run([&] {
      for (std::size_t i = 1; i < community_.members().size(); ++i) {
        fleets_.push_back(
            std::make_unique<device::DeviceFleet>(background_.loop(), fleet_config(i)));
        fleets_.back()->start();
        gateways_.push_back(
            std::make_unique<gateway::Gateway>(background_.loop(), gateway_config(i)));
        gateways_.back()->start();
      }
      return 0;
    });
    member_.run([&] {
      target_fleet_ = std::make_unique<device::DeviceFleet>(member_.loop(), fleet_config(0));
      target_fleet_->start();
      return 0;
    });

    ems::EmsConfig config;
    config.broker_port = community_.central_ems_port();
    config.pki_dir = community_.pki_dir();
    config.database = community_.dir() / "ems.db";
    config.policy_period = 0ms;  // only the benchmark's controls
    config.control_timeout = 10s;
    config.control_ttl = 20s;
    config.resolve_and_validate();
    ems_.run([&] {
      engine_ = std::make_unique<ems::EmsEngine>(ems_.loop(), config);
      engine_->observe_controls([this](const std::string& id, const std::string& state) {
        if (id == pending_control_ && (state == "SUCCESS" || state == "PARTIAL" ||
                                       state == "FAILED" || state == "TIMED_OUT")) {
          pending_control_.clear();
          if (state != "SUCCESS" && !failure_logged_) {
            failure_logged_ = true;
            const auto row = engine_->store().control(id);
            fmt::print(stderr, "  first failed control: {} {}\n", state,
                       row ? row->last_response : std::string());
          }
          completion_.finish(elapsed_ms(sent_at_), state == "SUCCESS");
        }
      });
      engine_->start();
      return 0;
    });
    if (!ems_.eventually([&] { return engine_->connected(); }, 30s)) {
      throw std::runtime_error("the EMS engine did not connect");
    }
    const bool all_up = background_.eventually(
        [&] {
          for (const auto& fleet : fleets_) {
            for (const auto& device : fleet->devices()) {
              if (!device->connected()) {
                return false;
              }
            }
          }
          for (const auto& gateway : gateways_) {
            if (!gateway->connected()) {
              return false;
            }
          }
          return true;
        },
        120s);
    if (!all_up) {
      throw std::runtime_error("not every background device and gateway connected");
    }
    fmt::print("  {} devices and {} gateways connected ({:.1f} s)\n",
               static_cast<std::size_t>(options_.members) * member_devices().size(),
               options_.members - 1, elapsed_ms(setup) / 1000);
  }

  // One round of controls through the gateway and the device; round trips in ms.
  std::vector<double> control_round(int& failures) {
    member_.run([&] {
      gateway_ = std::make_unique<gateway::Gateway>(member_.loop(), gateway_config(0));
      gateway_->start();
      return 0;
    });
    if (!member_.eventually([&] { return gateway_->connected(); }, 30s)) {
      throw std::runtime_error("the target gateway did not connect");
    }
    std::this_thread::sleep_for(500ms);  // its subscriptions reach the broker
    std::vector<double> out;
    for (int i = 0; i < options_.controls + kWarmup; ++i) {
      completion_.reset();
      ems_.run([&] {
        sent_at_ = Clock::now();
        auto issued = engine_->issue(
            "r1", kTarget, protocol::MemberControlType::kDeviceCommand,
            {{"command", "power-on"}, {"params", nlohmann::json::object()}}, {"ev1"});
        if (issued) {
          pending_control_ = issued->control_id.str();
        } else {
          if (!failure_logged_) {
            failure_logged_ = true;
            fmt::print(stderr, "  a control could not be issued: {}\n", issued.status().message);
          }
          completion_.finish(0, false);
        }
        return 0;
      });
      const auto ms = completion_.wait(15s);
      if (!ms) {
        ++failures;
        ems_.run([&] {
          pending_control_.clear();
          return 0;
        });
        continue;
      }
      if (i >= kWarmup) {
        out.push_back(*ms);
      }
    }
    member_.stop_and_wait(*gateway_);
    member_.run([&] {
      gateway_.reset();
      return 0;
    });
    return out;
  }

  // One round of raw request/response over the same path (`bridged`), or on the target's local
  // broker alone (for reference: what the bridge crossings add); round trips in ms.
  std::vector<double> raw_round(int& failures, bool bridged = true) {
    const std::string gateway_cn = std::string("rec_r1_") + kTarget + "_gateway";
    mqtt::MqttClientOptions responder_options;
    responder_options.port = community_.local(0).member_port;
    responder_options.client_id = "bench-raw-responder";
    responder_options.clean_session = true;
    responder_options.cafile = community_.member_cafile(kTarget);
    responder_options.certfile = community_.chain(gateway_cn);
    responder_options.keyfile = community_.key(gateway_cn);
    std::unique_ptr<mqtt::MqttClient> responder;
    member_.run([&] {
      mqtt::MqttClientCallbacks callbacks;
      callbacks.on_message = [&responder](const mqtt::IncomingMessage& m) {
        (void)responder->publish("/platform/control/response", m.payload, 1);
      };
      responder = std::make_unique<mqtt::MqttClient>(member_.loop(), responder_options,
                                                     std::move(callbacks));
      (void)responder->subscribe("/platform/control", 1);
      responder->start();
      return 0;
    });

    mqtt::MqttClientOptions requester_options;
    requester_options.port = community_.central_ems_port();
    requester_options.client_id = "bench-raw-requester";
    requester_options.clean_session = true;
    requester_options.cafile = community_.ems_cafile();
    requester_options.certfile = community_.chain("ems_engine");
    requester_options.keyfile = community_.key("ems_engine");
    std::string request_topic = fmt::format("/r1/{}/control", kTarget);
    std::string response_topic = fmt::format("/r1/{}/control/response", kTarget);
    if (!bridged) {
      requester_options = responder_options;
      requester_options.client_id = "bench-raw-requester";
      request_topic = "/platform/control";
      response_topic = "/platform/control/response";
    }
    std::unique_ptr<mqtt::MqttClient> requester;
    std::string expected;
    ems_.run([&] {
      mqtt::MqttClientCallbacks callbacks;
      callbacks.on_message = [&](const mqtt::IncomingMessage& m) {
        if (!expected.empty() && m.payload == expected) {
          expected.clear();
          completion_.finish(elapsed_ms(sent_at_), true);
        }
      };
      requester =
          std::make_unique<mqtt::MqttClient>(ems_.loop(), requester_options, std::move(callbacks));
      (void)requester->subscribe(response_topic, 1);
      requester->start();
      return 0;
    });
    if (!member_.eventually([&] { return responder->connected(); }, 30s) ||
        !ems_.eventually([&] { return requester->connected(); }, 30s)) {
      throw std::runtime_error("the raw clients did not connect");
    }
    std::this_thread::sleep_for(500ms);
    std::vector<double> out;
    for (int i = 0; i < options_.controls + kWarmup; ++i) {
      completion_.reset();
      ems_.run([&] {
        // A request of about a member control's size.
        expected = fmt::format("{{\"raw\":{},\"pad\":\"{}\"}}", i, std::string(400, 'x'));
        sent_at_ = Clock::now();
        if (!requester->publish(request_topic, expected, 1)) {
          expected.clear();
          completion_.finish(0, false);
        }
        return 0;
      });
      const auto ms = completion_.wait(15s);
      if (!ms) {
        ++failures;
        continue;
      }
      if (i >= kWarmup) {
        out.push_back(*ms);
      }
    }
    // Clean sessions: nothing to hand over, so drop the connections.
    ems_.run([&] {
      requester->abort();
      requester.reset();
      return 0;
    });
    member_.run([&] {
      responder->abort();
      responder.reset();
      return 0;
    });
    return out;
  }

  void stop() {
    if (engine_) {
      ems_.stop_and_wait(*engine_);
    }
    if (target_fleet_) {
      member_.stop_and_wait(*target_fleet_);
    }
    for (auto& gateway : gateways_) {
      background_.stop_and_wait(*gateway);
    }
    for (auto& fleet : fleets_) {
      background_.stop_and_wait(*fleet);
    }
    ems_.stop();
    member_.stop();
    background_.stop();
    engine_.reset();
    target_fleet_.reset();
    gateways_.clear();
    fleets_.clear();
  }

  int run() {
    start();
    std::vector<double> p50s;
    std::vector<double> p99s;
    std::vector<double> raw_p50s;
    std::vector<double> raw_p99s;
    std::vector<double> raw_local_p50s;
    int failures = 0;
    int raw_failures = 0;
    for (int round = 1; round <= options_.rounds; ++round) {
      const auto raw = raw_round(raw_failures);
      int local_failures = 0;
      const auto local = raw_round(local_failures, false);
      raw_local_p50s.push_back(percentile(local, 50));
      const auto control = control_round(failures);
      raw_p50s.push_back(percentile(raw, 50));
      raw_p99s.push_back(percentile(raw, 99));
      p50s.push_back(percentile(control, 50));
      p99s.push_back(percentile(control, 99));
      fmt::print(
          "  round {}/{}: control p50 {:.2f} ms p99 {:.2f} ms ({} ok) | raw p50 {:.2f} ms p99 "
          "{:.2f} ms ({} ok) | local broker alone p50 {:.2f} ms\n",
          round, options_.rounds, p50s.back(), p99s.back(), control.size(), raw_p50s.back(),
          raw_p99s.back(), raw.size(), raw_local_p50s.back());
      std::fflush(stdout);
    }
    const std::uint64_t background_aggregates = background_.run([&] {
      std::uint64_t n = 0;
      for (const auto& gateway : gateways_) {
        n += gateway->counters().aggregates_published;
      }
      return n;
    });
    const auto ems_metrics = ems_.run([&] { return engine_->counters().metrics_stored; });
    stop();

    const double p50 = median(p50s);
    const double p99 = median(p99s);
    const double raw_p50 = median(raw_p50s);
    const double raw_p99 = median(raw_p99s);
    const double ratio = raw_p99 > 0 ? p99 / raw_p99 : 0;
    const bool meets = ratio > 0 && ratio <= kTargetRatio && failures == 0;
    fmt::print("\nmedians over {} rounds:\n", options_.rounds);
    fmt::print("  {:<48} {:>8.2f} ms p50 {:>8.2f} ms p99\n",
               "member control -> device -> member SUCCESS", p50, p99);
    fmt::print("  {:<48} {:>8.2f} ms p50 {:>8.2f} ms p99\n", "raw MQTT request/response, same path",
               raw_p50, raw_p99);
    fmt::print("  {:<48} {:>8.2f} ms p50\n", "raw, on the local broker alone (reference)",
               median(raw_local_p50s));
    fmt::print("  {:<48} {:>8.2f} (target <= {}: {})\n", "ratio p99", ratio, kTargetRatio,
               meets ? "met" : "missed");
    fmt::print("  background: {} aggregates published, {} metrics stored by the EMS engine\n",
               background_aggregates, ems_metrics);
    fmt::print(
        "{{\"benchmark\":\"control_rtt\",\"quick\":{},\"members\":{},\"devices_per_member\":{},"
        "\"controls_per_round\":{},\"rounds\":{},\"p50_ms\":{:.3f},\"p99_ms\":{:.3f},"
        "\"raw_p50_ms\":{:.3f},\"raw_p99_ms\":{:.3f},\"raw_local_p50_ms\":{:.3f},\"ratio_p99\":{:."
        "3f},\"target_ratio_p99\":{},"
        "\"failed_controls\":{},\"failed_raw\":{},\"meets_target\":{}}}\n",
        options_.quick, options_.members, member_devices().size(), options_.controls,
        options_.rounds, p50, p99, raw_p50, raw_p99, median(raw_local_p50s), ratio, kTargetRatio,
        failures, raw_failures, meets);
    return 0;
  }

 private:
  static constexpr int kWarmup = 20;
  Options options_;
  BenchCommunity community_;
  LoopThread background_;  // every member but the target
  LoopThread member_;      // the target member's gateway and devices, or the raw responder
  LoopThread ems_;         // the EMS engine, or the raw requester
  std::vector<std::unique_ptr<device::DeviceFleet>> fleets_;
  std::vector<std::unique_ptr<gateway::Gateway>> gateways_;
  std::unique_ptr<device::DeviceFleet> target_fleet_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::unique_ptr<ems::EmsEngine> engine_;
  Completion completion_;
  // EMS loop thread only.
  Clock::time_point sent_at_;
  std::string pending_control_;
  bool failure_logged_ = false;
};

constexpr const char* kUsage =
    "usage: recmesh-bench-control_rtt [--quick] [--members N] [--controls N] [--rounds N]\n"
    "  full: 100 members x 10 devices, 1000 controls per round, 3 rounds\n"
    "  --quick: 20 members x 10 devices, 300 controls per round, 3 rounds\n";

}  // namespace
}  // namespace recmesh::bench

int main(int argc, char** argv) {
  recmesh::bench::Options options;
  const recmesh::bench::BenchCommandLine command_line =
      recmesh::bench::BenchCommandLine("recmesh-bench-control_rtt", recmesh::bench::kUsage)
          .on_quick([&] {
            options.quick = true;
            options.members = 20;
            options.controls = 300;
          })
          .integer("--members", 1, INT_MAX, [&](int n) { options.members = n; })
          .integer("--controls", 1, INT_MAX, [&](int n) { options.controls = n; })
          .integer("--rounds", 1, INT_MAX, [&](int n) { options.rounds = n; });
  if (const auto exit_code = command_line.parse(argc, argv)) {
    return *exit_code;
  }
  return command_line.run([&] { return recmesh::bench::ControlRttBench(options).run(); });
}
