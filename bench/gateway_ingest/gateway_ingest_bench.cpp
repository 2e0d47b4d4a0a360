// Device metrics one gateway takes in per second, against `mosquitto_sub` draining the same
// stream from the same broker in the same run (docs/benchmarks.md, "gateway_ingest").
//
// Publishers with device certificates send QoS 1 `DeviceMetrics` snapshots on
// /device/<d>/metrics/snapshot of one member's Mosquitto. In alternating phases either the
// gateway (the product's library on its own event loop thread, as `recmesh gateway` runs it) or
// `mosquitto_sub -q 1` (a process; its output lines counted) consumes the stream; each phase
// measures the consumer's messages/s over a fixed window after a warm-up. The stream is paced by
// the consumer: at most kOutstanding messages are published and not yet consumed, so the broker
// never has to drop any for a slow subscriber and the figure is what the consumer can take.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <spawn.h>
#include <stdlib.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <climits>
#include <fmt/format.h>

#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

#include "bench_command_line.hpp"
#include "bench_community.hpp"
#include "gateway/gateway.hpp"
#include "loop_thread.hpp"

extern char** environ;

namespace recmesh::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::LoopThread;

constexpr double kTargetRatio = 0.8;
constexpr std::size_t kWindow = 50;  // unacknowledged publishes per publisher
// Published and not yet consumed, over all publishers; the broker's queue per subscriber is
// raised well above it (kBrokerTuning), so nothing is dropped.
constexpr std::uint64_t kOutstanding = 500;

constexpr const char* kBrokerTuning = "max_queued_messages 100000";

// The pacing state shared by the publishers' loop and the consumer's poller.
struct Pacing {
  std::atomic<bool> enabled{false};
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> consumed{0};  // in the publishers' count
  bool may_publish() const {
    return enabled.load(std::memory_order_relaxed) &&
           published.load(std::memory_order_relaxed) <
               consumed.load(std::memory_order_relaxed) + kOutstanding;
  }
};

struct Options {
  bool quick = false;
  int devices = 20;  // publishers, one connection each
  std::chrono::milliseconds warmup{1000};
  std::chrono::milliseconds window{5000};
  int rounds = 5;
};

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// One device's connection publishing its snapshot as fast as the broker acknowledges it.
class Publisher {
 public:
  Publisher(mqtt::EventLoop& loop, mqtt::MqttClientOptions options, std::string topic,
            std::string payload, Pacing& pacing)
      : topic_(std::move(topic)), payload_(std::move(payload)), pacing_(pacing) {
    mqtt::MqttClientCallbacks callbacks;
    callbacks.on_delivered = [this](mqtt::MessageId) {
      --in_flight_;
      ++acknowledged_;
      fill();
    };
    options.max_inflight_messages = static_cast<int>(kWindow);
    client_ = std::make_unique<mqtt::MqttClient>(loop, std::move(options), std::move(callbacks));
  }
  void start() { client_->start(); }
  void abort() { client_->abort(); }
  // One message outside the pacing, to see that a consumer is subscribed.
  bool probe() { return client_->publish(topic_, payload_, 1).ok(); }
  // Tops the window up as far as the pacing allows; called on the loop.
  void fill() {
    while (pacing_.may_publish() && client_->connected() && in_flight_ < kWindow) {
      if (!client_->publish(topic_, payload_, 1)) {
        return;
      }
      ++in_flight_;
      pacing_.published.fetch_add(1, std::memory_order_relaxed);
    }
  }
  bool connected() const { return client_->connected(); }
  std::uint64_t acknowledged() const { return acknowledged_; }
  std::size_t in_flight() const { return in_flight_; }

 private:
  std::string topic_;
  std::string payload_;
  Pacing& pacing_;
  std::unique_ptr<mqtt::MqttClient> client_;
  std::size_t in_flight_ = 0;
  std::uint64_t acknowledged_ = 0;
};

// `mosquitto_sub` as a child process whose output lines are counted by a reader thread.
class MosquittoSub {
 public:
  explicit MosquittoSub(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe2 failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char*> argv;
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot start mosquitto_sub (install mosquitto-clients)");
    }
    fd_ = fds[0];
    reader_ = std::thread([this] {
      std::vector<char> buffer(1 << 16);
      while (true) {
        const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
        if (n <= 0) {
          return;
        }
        lines_.fetch_add(
            static_cast<std::uint64_t>(std::count(buffer.data(), buffer.data() + n, '\n')),
            std::memory_order_relaxed);
      }
    });
  }
  ~MosquittoSub() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reader_.join();
    ::close(fd_);
  }
  std::uint64_t lines() const { return lines_.load(std::memory_order_relaxed); }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread reader_;
  std::atomic<std::uint64_t> lines_{0};
};

class GatewayIngestBench {
 public:
  explicit GatewayIngestBench(Options options)
      : options_(options), community_(scratch_dir(), 1, device_ids(options.devices)) {}

  static fs::path scratch_dir() {
    const char* tmp = std::getenv("TMPDIR");
    return fs::path(tmp != nullptr ? tmp : "/tmp") /
           fmt::format("recmesh-bench-gateway-ingest-{}", ::getpid());
  }
  static std::vector<std::string> device_ids(int count) {
    std::vector<std::string> ids;
    for (int i = 0; i < count; ++i) {
      ids.push_back(fmt::format("d{:03}", i));
    }
    return ids;
  }

  int run() {
    fmt::print(
        "gateway_ingest benchmark: {} publishing devices (QoS 1, {} in flight each), {} rounds of "
        "{} ms after {} ms warm-up\n",
        options_.devices, kWindow, options_.rounds, options_.window.count(),
        options_.warmup.count());
    community_.start_locals(false, kBrokerTuning);
    start_publishers();
    std::vector<double> gateway_rates;
    std::vector<double> sub_rates;
    std::vector<double> offered;
    for (int round = 1; round <= options_.rounds; ++round) {
      double offered_gateway = 0;
      double offered_sub = 0;
      gateway_rates.push_back(gateway_phase(offered_gateway));
      sub_rates.push_back(sub_phase(offered_sub));
      offered.push_back(offered_gateway);
      offered.push_back(offered_sub);
      fmt::print(
          "  round {}/{}: gateway {:>9.0f} msg/s (stream {:>9.0f}) | mosquitto_sub {:>9.0f} msg/s "
          "(stream {:>9.0f})\n",
          round, options_.rounds, gateway_rates.back(), offered_gateway, sub_rates.back(),
          offered_sub);
      std::fflush(stdout);
    }
    stop_publishers();
    fmt::print("  {} messages were still queued for a consumer when its phase ended\n",
               unconsumed_);
    const double gateway_rate = median(gateway_rates);
    const double sub_rate = median(sub_rates);
    const double ratio = sub_rate > 0 ? gateway_rate / sub_rate : 0;
    const bool meets = ratio >= kTargetRatio && refused_ == 0;
    fmt::print("\nmedians over {} rounds:\n", options_.rounds);
    fmt::print("  {:<40} {:>10.0f} msg/s\n", "gateway (aggregated snapshots)", gateway_rate);
    fmt::print("  {:<40} {:>10.0f} msg/s\n", "mosquitto_sub -q 1 (same stream)", sub_rate);
    fmt::print("  {:<40} {:>10.0f} msg/s\n", "stream offered (publisher PUBACKs)", median(offered));
    fmt::print("  {:<40} {:>10.3f} (target >= {}: {})\n", "ratio gateway / mosquitto_sub", ratio,
               kTargetRatio, meets ? "met" : "missed");
    fmt::print(
        "{{\"benchmark\":\"gateway_ingest\",\"quick\":{},\"devices\":{},\"window_ms\":{},"
        "\"rounds\":{},\"gateway_msgs_per_s\":{:.0f},\"mosquitto_sub_msgs_per_s\":{:.0f},"
        "\"offered_msgs_per_s\":{:.0f},\"ratio\":{:.3f},\"target_ratio\":{},"
        "\"gateway_refused\":{},\"unconsumed_at_phase_end\":{},\"meets_target\":{}}}\n",
        options_.quick, options_.devices, options_.window.count(), options_.rounds, gateway_rate,
        sub_rate, median(offered), ratio, kTargetRatio, refused_, unconsumed_, meets);
    return 0;
  }

 private:
  static std::string payload() {
    protocol::DeviceMetrics m;
    m.kind = protocol::DeviceKind::kGenerator;
    m.state = protocol::DeviceState::kOn;
    m.voltage_v = 230.4;
    m.current_a = 12.52;
    m.power_w = 2884.6;
    m.energy_delivered_wh = 152334.25;
    m.energy_absorbed_wh = 0;
    m.temperature_c = 41.5;
    m.timestamp =
        std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    return m.encode().value();
  }

  void start_publishers() {
    const auto& brokers = community_.local(0);
    publishers_loop_.run([&] {
      for (const auto& id : device_ids(options_.devices)) {
        const std::string cn = "rec_r1_" + brokers.member + "_" + id;
        mqtt::MqttClientOptions options;
        options.port = brokers.member_port;
        options.client_id = cn;
        options.cafile = community_.member_cafile(brokers.member);
        options.certfile = community_.chain(cn);
        options.keyfile = community_.key(cn);
        publishers_.push_back(std::make_unique<Publisher>(publishers_loop_.loop(), options,
                                                          "/device/" + id + "/metrics/snapshot",
                                                          payload(), pacing_));
        publishers_.back()->start();
      }
      return 0;
    });
    if (!publishers_loop_.eventually(
            [&] {
              return std::all_of(publishers_.begin(), publishers_.end(),
                                 [](const auto& p) { return p->connected(); });
            },
            60s)) {
      throw std::runtime_error("the publishers did not connect");
    }
    publishers_loop_.run([&] {
      schedule_fill();
      return 0;
    });
  }

  void stop_publishers() {
    publishers_loop_.run([&] {
      publishers_loop_.loop().cancel_timer(fill_timer_);
      for (auto& p : publishers_) {
        p->abort();
      }
      publishers_.clear();
      return 0;
    });
    publishers_loop_.stop();
  }

  std::uint64_t acknowledged() {
    return publishers_loop_.run([&] {
      std::uint64_t n = 0;
      for (const auto& p : publishers_) {
        n += p->acknowledged();
      }
      return n;
    });
  }

  void fill_all() {
    for (auto& p : publishers_) {
      p->fill();
    }
  }

  // Consumption moves on another thread: top the publishers up every millisecond.
  void schedule_fill() {
    fill_timer_ = publishers_loop_.loop().add_timer(1ms, [this] {
      fill_all();
      schedule_fill();
    });
  }

  // Messages/s of `consumed` (a count that only grows) over the window, the stream paced by it;
  // `offered` gets the publishers' acknowledged rate over the same window.
  template <typename Count>
  double measure(Count consumed, double& offered) {
    std::atomic<bool> polling{true};
    const std::uint64_t base = consumed();
    pacing_.consumed = pacing_.published.load();
    const std::uint64_t published_base = pacing_.published.load();
    std::thread poller([&] {
      while (polling.load()) {
        pacing_.consumed = published_base + (consumed() - base);
        std::this_thread::sleep_for(1ms);
      }
    });
    pacing_.enabled = true;
    publishers_loop_.run([&] {
      fill_all();
      return 0;
    });
    std::this_thread::sleep_for(options_.warmup);
    const auto c0 = consumed();
    const auto a0 = acknowledged();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(options_.window);
    const auto c1 = consumed();
    const auto a1 = acknowledged();
    const double elapsed = seconds(Clock::now() - t0);
    pacing_.enabled = false;
    // What the broker still holds for the consumer when the stream stops is not counted; give it
    // a moment to arrive before the next phase starts.
    const auto deadline = Clock::now() + 2s;
    while (pacing_.consumed.load() < pacing_.published.load() && Clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    unconsumed_ +=
        pacing_.published.load() - std::min(pacing_.consumed.load(), pacing_.published.load());
    polling = false;
    poller.join();
    offered = static_cast<double>(a1 - a0) / elapsed;
    return static_cast<double>(c1 - c0) / elapsed;
  }

  double gateway_phase(double& offered) {
    const auto& brokers = community_.local(0);
    gateway::GatewayConfig config;
    config.broker_port = brokers.member_port;
    config.pki_dir = community_.pki_dir();
    config.rec = "r1";
    config.member = brokers.member;
    config.database = community_.dir() / "gateway.db";
    config.metrics_interval = 1s;
    for (const auto& id : device_ids(options_.devices)) {
      config.devices.push_back({id, protocol::DeviceKind::kGenerator, 10000});
    }
    config.resolve_and_validate();
    LoopThread loop;
    // The gateway's session (clean session false) kept what the broker queued for it during the
    // previous mosquitto_sub phase: drop it with a clean-session connection under its client ID,
    // so the window counts only the stream it takes in now.
    std::unique_ptr<mqtt::MqttClient> purge;
    mqtt::MqttClientOptions purge_options;
    purge_options.port = brokers.member_port;
    purge_options.client_id = config.common_name();
    purge_options.clean_session = true;
    purge_options.cafile = config.cafile;
    purge_options.certfile = config.certfile;
    purge_options.keyfile = config.keyfile;
    loop.run([&] {
      purge = std::make_unique<mqtt::MqttClient>(loop.loop(), purge_options,
                                                 mqtt::MqttClientCallbacks{});
      purge->start();
      return 0;
    });
    loop.eventually([&] { return purge->connected(); }, 30s);
    loop.run([&] {
      purge->abort();
      purge.reset();
      return 0;
    });
    std::unique_ptr<gateway::Gateway> gateway;
    loop.run([&] {
      gateway = std::make_unique<gateway::Gateway>(loop.loop(), config);
      gateway->start();
      return 0;
    });
    if (!loop.eventually([&] { return gateway->connected(); }, 30s)) {
      throw std::runtime_error("the gateway did not connect");
    }
    std::this_thread::sleep_for(500ms);  // its subscriptions reach the broker
    const double rate = measure(
        [&] { return loop.run([&] { return gateway->counters().metrics_received; }); }, offered);
    refused_ += loop.run([&] { return gateway->counters().refused(); });
    loop.stop_and_wait(*gateway);
    loop.run([&] {
      gateway.reset();
      return 0;
    });
    return rate;
  }

  double sub_phase(double& offered) {
    const auto& brokers = community_.local(0);
    const std::string cn = "rec_r1_" + brokers.member + "_gateway";
    MosquittoSub sub({"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(brokers.member_port),
                      "--cafile", community_.member_cafile(brokers.member).string(), "--cert",
                      community_.chain(cn).string(), "--key", community_.key(cn).string(), "-i",
                      "bench-mosquitto-sub", "-q", "1", "-t", "/device/+/metrics/#"});
    // Connected and subscribed once a probe message arrives.
    const auto deadline = Clock::now() + 30s;
    while (sub.lines() == 0 && Clock::now() < deadline) {
      publishers_loop_.run([&] { return publishers_.front()->probe(); });
      std::this_thread::sleep_for(100ms);
    }
    if (sub.lines() == 0) {
      throw std::runtime_error("mosquitto_sub received nothing");
    }
    std::this_thread::sleep_for(200ms);
    return measure([&] { return sub.lines(); }, offered);
  }

  Options options_;
  BenchCommunity community_;
  LoopThread publishers_loop_;
  std::vector<std::unique_ptr<Publisher>> publishers_;
  Pacing pacing_;
  mqtt::EventLoop::TimerId fill_timer_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t unconsumed_ = 0;
};

constexpr const char* kUsage =
    "usage: recmesh-bench-gateway_ingest [--quick] [--devices N] [--rounds N] [--window-ms N]\n"
    "  full: 20 publishing devices, 5 rounds of 5 s; --quick: 3 rounds of 2 s\n";

}  // namespace
}  // namespace recmesh::bench

int main(int argc, char** argv) {
  recmesh::bench::Options options;
  const recmesh::bench::BenchCommandLine command_line =
      recmesh::bench::BenchCommandLine("recmesh-bench-gateway_ingest", recmesh::bench::kUsage)
          .on_quick([&] {
            options.quick = true;
            options.rounds = 3;
            options.window = std::chrono::milliseconds(2000);
          })
          .integer("--devices", 1, 999, [&](int n) { options.devices = n; })
          .integer("--rounds", 1, INT_MAX, [&](int n) { options.rounds = n; })
          .integer("--window-ms", 100, INT_MAX,
                   [&](int n) { options.window = std::chrono::milliseconds(n); });
  if (const auto exit_code = command_line.parse(argc, argv)) {
    return *exit_code;
  }
  return command_line.run([&] { return recmesh::bench::GatewayIngestBench(options).run(); });
}
