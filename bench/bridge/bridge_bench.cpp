// recmesh bridge against Mosquitto's built-in bridge, on the same brokers, certificates and
// payloads in the same run (docs/benchmarks.md, section "bridge"): the highest QoS 1 rate a
// device can publish with 0 loss at an EMS-side subscriber (local broker -> bridge -> central
// broker), p50/p99 latency at 5k msg/s, and loss under a flood at twice the lossless rate.
// Payloads are sealed end to end (src/e2e, AES-256-GCM) by the producer and opened by the
// consumer, as the gateway and the EMS engine do; the bridges only ever see envelopes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/clock.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/e2e/key_schedule.hpp"
#include "recmesh/e2e/session.hpp"
#include "recmesh/e2e/settings.hpp"
#include "recmesh/mqtt/batched_mqtt_client.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/pki/pki.hpp"

#include "bench_process.hpp"
#include "bench_stats.hpp"
#include "cpu_steal.hpp"
#include "loop_thread.hpp"
#include "tcp_proxy.hpp"
#include "tls_identity.hpp"

namespace recmesh::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::LoopThread;
using testing::TlsFiles;

constexpr std::string_view kRec = "bench";
constexpr std::string_view kMember = "m1";
constexpr std::string_view kTopic = "/platform/metrics/bench";
constexpr std::string_view kCentralFilter = "/bench/m1/metrics/#";
// The topic the envelope authenticates: the platform's name of the flow, the same on both ends.
constexpr std::string_view kE2eTopic = "/bench/m1/metrics/bench";
// A step counts only if the local broker acknowledged the producer, and the EMS side received,
// at this share of the offered rate: a bridge that falls behind leaves the backlog in the local
// broker's memory, which hides it for a step of seconds but not in a day's stream.
constexpr double kAchievedShare = 0.95;
constexpr int kLatencyRate = 5000;
// A latency run during which the hypervisor took more than this share of the machine's CPU time
// measured the neighbours' load: it is made again (cpu_steal.hpp), up to max_latency_attempts.
constexpr double kMaxStealShare = 0.02;

struct Options {
  bool quick = false;
  std::string recmesh = "recmesh";
  std::chrono::milliseconds step{4000};     // one rate step of the lossless search
  std::chrono::milliseconds latency{5000};  // one latency run at 5k msg/s
  int repetitions = 7;                      // latency runs of each variant, medians taken
  int max_latency_attempts = 4;             // of one latency run, while much CPU time is stolen
  // For profiling one part: "lossless", "latency" or "flood" alone; empty: everything.
  std::string only;
  int flood_base = 1000;        // the lossless rate the flood doubles when the ladder did not run
  std::string variant;          // "recmesh" or "builtin" alone; empty: both
  int ladder_from = 0;          // skip the ladder's rungs below this rate
  int ladder_to = 0;            // and above this one (0: none)
  std::string bridge_settings;  // YAML lines appended to the recmesh bridge's configuration
};

// --- the world: PKI, broker configurations ------------------------------------------------------

struct World {
  fs::path dir;
  int member_port = free_tcp_port();
  int local_bridge_port = free_tcp_port();
  int ems_port = free_tcp_port();
  int central_bridge_port = free_tcp_port();
  int relay_port = free_tcp_port();  // the TCP relay in front of the central bridge listener
  TlsFiles gateway;
  TlsFiles engine;
  TlsFiles bridge;
};

TlsFiles issue(pki::Pki& pki, pki::IdentityKind kind, std::string_view rec, std::string_view member,
               std::string_view name) {
  return testing::tls_files(pki.issue(
      testing::issue_request(kind, std::string(rec), std::string(member), std::string(name))));
}

World make_world(const fs::path& dir) {
  World world;
  world.dir = dir;
  pki::Pki pki = pki::Pki::create(dir / "pki", Secret("bench-bridge-passphrase"));
  pki.add_rec(std::string(kRec));
  pki.add_member(std::string(kRec), std::string(kMember));
  world.gateway = issue(pki, pki::IdentityKind::kGateway, kRec, kMember, "");
  world.engine = issue(pki, pki::IdentityKind::kService, "", "", "engine");
  world.bridge = issue(pki, pki::IdentityKind::kBridge, kRec, kMember, "");
  broker::CentralBrokerOptions central;
  central.ems_port = world.ems_port;
  central.bridge_port = world.central_bridge_port;
  broker::render_central_broker(pki, central, dir / "central");
  broker::LocalBrokerOptions local;
  local.rec = kRec;
  local.member = kMember;
  local.member_port = world.member_port;
  local.bridge_port = world.local_bridge_port;
  broker::render_local_broker(pki, local, dir / "local-recmesh");
  local.bridge_to = broker::BuiltinBridge{"127.0.0.1", world.central_bridge_port};
  broker::render_local_broker(pki, local, dir / "local-builtin");
  local.bridge_to = broker::BuiltinBridge{"127.0.0.1", world.relay_port};
  broker::render_local_broker(pki, local, dir / "local-relay");
  return world;
}

// kRelay is the built-in bridge through a plain TCP relay (tests/support/tcp_proxy, a thread of
// this benchmark): one more hop with none of the TLS and MQTT work a bridge does, the least an
// extra hop costs on this machine whatever the bridge does.
enum class Variant { kRecmesh, kBuiltin, kRelay };

struct VariantNames {
  std::string_view shown;
  std::string_view local_dir;  // its local broker's rendered configuration, in the world's dir
};

VariantNames names_of(Variant variant) {
  constexpr VariantNames kNames[] = {{"recmesh bridge", "local-recmesh"},
                                     {"mosquitto bridge", "local-builtin"},
                                     {"mosquitto+relay", "local-relay"}};
  return kNames[static_cast<std::size_t>(variant)];
}

std::string_view name_of(Variant variant) {
  return names_of(variant).shown;
}

// Both brokers and the bridge of one variant, fresh for each measurement.
class Deployment {
 public:
  Deployment(const World& world, Variant variant, const Options& options) {
    const fs::path central_dir = world.dir / "central";
    reset_data(central_dir);
    central_ = std::make_unique<BrokerProcess>(
        central_dir / "mosquitto.conf",
        std::vector<int>{world.ems_port, world.central_bridge_port});
    if (variant == Variant::kRelay) {
      relay_ = std::make_unique<testing::TcpProxy>(world.central_bridge_port, world.relay_port);
    }
    const fs::path local_dir = world.dir / names_of(variant).local_dir;
    reset_data(local_dir);
    local_ = std::make_unique<BrokerProcess>(
        local_dir / "mosquitto.conf", std::vector<int>{world.member_port, world.local_bridge_port});
    if (variant == Variant::kRecmesh) {
      const fs::path config = world.dir / "bridge.yaml";
      std::error_code ignored;
      for (const char* suffix : {"", "-wal", "-shm"}) {
        fs::remove(world.dir / (std::string("bridge-store.db") + suffix), ignored);
      }
      std::ofstream out(config);
      out << "rec: " << kRec << "\nmember: " << kMember << "\n"
          << testing::bridge_endpoint_yaml("local", world.local_bridge_port, world.bridge)
          << testing::bridge_endpoint_yaml("central", world.central_bridge_port, world.bridge)
          << "store:\n  path: bridge-store.db\nstatus_interval: 10s\n"
             "logging:\n  level: warn\n";
      out << options.bridge_settings;
      out.close();
      bridge_ = std::make_unique<Process>(
          std::vector<std::string>{options.recmesh, "bridge", "--config", config.string()},
          world.dir / "bridge.log");
    }
  }

  const Process* bridge() const { return bridge_.get(); }
  // What moving the messages costs: both brokers and the bridge process, if any.
  double bridging_cpu_seconds() const {
    return local_->cpu_seconds() + central_->cpu_seconds() +
           (bridge_ != nullptr ? bridge_->cpu_seconds() : 0.0);
  }
  // The recmesh bridge process alone; 0 for Mosquitto's bridge, which runs inside a broker.
  double bridge_process_cpu_seconds() const {
    return bridge_ != nullptr ? bridge_->cpu_seconds() : 0.0;
  }
  const BrokerProcess& local() const { return *local_; }
  const BrokerProcess& central() const { return *central_; }

 private:
  static void reset_data(const fs::path& broker_dir) {
    std::error_code ignored;
    fs::remove(broker_dir / "data" / "mosquitto.db", ignored);
  }

  std::unique_ptr<BrokerProcess> central_;
  std::unique_ptr<testing::TcpProxy> relay_;
  std::unique_ptr<BrokerProcess> local_;
  std::unique_ptr<Process> bridge_;
};

// --- load: a device publishing, the EMS side counting -------------------------------------------

mqtt::MqttClientOptions client_options(const std::string& id, int port, const TlsFiles& tls) {
  mqtt::MqttClientOptions options = testing::tls_client_options(id, port, tls, true);
  options.max_inflight_messages = 1000;
  return options;
}

struct RunResult {
  double target_rate = 0;
  double achieved_rate = 0;   // acknowledged by the local broker per second
  double delivered_rate = 0;  // received at the EMS side per second, first send to last receipt
  std::uint64_t acked = 0;
  std::uint64_t lost = 0;  // acknowledged and never received
  std::uint64_t duplicates = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double bridge_cpu_s = 0;
};

// One payload: 8 bytes sequence, 8 bytes send time (ns, steady clock), then filler.
std::string make_payload(std::uint64_t seq, std::size_t size) {
  std::string payload(std::max<std::size_t>(size, 16), 'x');
  const auto now = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  std::memcpy(payload.data(), &seq, 8);
  std::memcpy(payload.data() + 8, &now, 8);
  return payload;
}

double thread_cpu_seconds() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// The member's sending session or the platform's receiving one, from one shared secret.
e2e::Session session(e2e::Direction send_direction) {
  static const std::string shared(32, '\x42');
  e2e::E2eSettings settings;
  settings.rotate_after_messages = std::uint64_t{1} << 32;
  settings.replay_window = 4096;
  return e2e::Session(
      e2e::derive_session_keys(shared, "i", "r", 1, e2e::Suite::kAes256Gcm, send_direction),
      settings, SystemClock::instance());
}

// The device and the EMS side, the same for every variant, with the MQTT client `Client`:
// - near the machine's limit (the lossless ladder and the flood) the client that costs least per
//   message (mqtt::BatchedMqttClient, one TLS record per loop round), so that the two cores go
//   to the brokers and the bridge under test: with libmosquitto at both ends the EMS-side
//   subscriber itself tops out near 65k msg/s here;
// - at 5k msg/s (latency), far from that limit, the client the gateway and the EMS engine use
//   (mqtt::MqttClient, libmosquitto), so that the latency is the one they see.
template <typename Client>
class Load {
 public:
  explicit Load(const World& world)
      : world_(world),
        sender_(session(e2e::Direction::kMemberToPlatform)),
        receiver_(session(e2e::Direction::kPlatformToMember)) {
    mqtt::MqttClientCallbacks sub;
    sub.on_message = [this](const mqtt::IncomingMessage& message) { on_received(message); };
    sub.on_subscribe = [this](const std::string&, int) { subscribed_ = true; };
    consumer_.run([&] {
      consumer_client_ = std::make_unique<Client>(
          consumer_.loop(), client_options("ems_engine", world.ems_port, world.engine), sub);
      (void)consumer_client_->subscribe(kCentralFilter, 1);
      consumer_client_->start();
    });
    mqtt::MqttClientCallbacks pub;
    pub.on_delivered = [this](mqtt::MessageId id) {
      std::lock_guard lock(mutex_);
      if (first_id_ != kUnarmed && id >= first_id_ && id - first_id_ < acked_.size()) {
        acked_[id - first_id_] = 1;
        ++acked_count_;
      }
    };
    producer_.run([&] {
      producer_client_ = std::make_unique<Client>(
          producer_.loop(),
          client_options("rec_bench_m1_gateway", world.member_port, world.gateway), pub);
      producer_client_->start();
    });
  }
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;
  // The clients end on their loops, and the loops stop, before the state their callbacks use.
  ~Load() {
    producer_.run([this] { producer_client_->abort(); });
    consumer_.run([this] { consumer_client_->abort(); });
    producer_.stop();
    consumer_.stop();
  }

  // True once both clients are connected and a probe message crosses.
  bool ready(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      bool connected = false;
      producer_.run([&] { connected = producer_client_->connected(); });
      if (connected && subscribed_) {
        RunResult probe = run(100, 300ms, 64, 3s);
        if (probe.acked > 0 && probe.lost == 0) {
          return true;
        }
      }
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // CPU time spent in seal and open, and the envelope overhead, since construction.
  double e2e_cpu_seconds() {
    std::lock_guard lock(mutex_);
    return seal_seconds_ + open_seconds_;
  }
  std::size_t e2e_overhead_bytes() {
    std::lock_guard lock(mutex_);
    return overhead_bytes_;
  }

  // Publishes at `rate` for `duration`, waits for the stream to settle, and counts.
  RunResult run(int rate, std::chrono::milliseconds duration, std::size_t payload_bytes,
                std::chrono::milliseconds settle_max = 20s) {
    const auto total = static_cast<std::size_t>(static_cast<double>(rate) *
                                                std::chrono::duration<double>(duration).count());
    {
      std::lock_guard lock(mutex_);
      base_seq_ = next_seq_;
      next_seq_ += total;
      acked_.assign(total, 0);
      received_.assign(total, 0);
      acked_count_ = 0;
      received_count_ = 0;
      duplicates_ = 0;
      latencies_.clear();
      latencies_.reserve(total);
      first_id_ = kUnarmed;
      last_received_at_ = Clock::time_point{};
    }
    std::size_t sent = 0;
    std::uint64_t refused = 0;
    const auto start = Clock::now();
    bool first = true;
    while (sent < total) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const auto due =
          std::min(total, static_cast<std::size_t>(elapsed * static_cast<double>(rate)) + 1);
      if (due > sent) {
        producer_.run([&] {
          while (sent < due) {
            const std::string plain = make_payload(base_seq_ + sent, payload_bytes);
            const double before = thread_cpu_seconds();
            auto sealed = sender_.seal(kE2eTopic, plain);
            const double spent = thread_cpu_seconds() - before;
            if (!sealed.ok()) {
              throw std::runtime_error("e2e seal failed");
            }
            {
              std::lock_guard lock(mutex_);
              seal_seconds_ += spent;
              overhead_bytes_ = sealed.value().size() - plain.size();
            }
            const auto id = producer_client_->publish(kTopic, sealed.value(), 1, false);
            if (!id) {
              ++refused;  // the device's own queue is full: it cannot publish this fast
              break;
            }
            if (first) {
              std::lock_guard lock(mutex_);
              first_id_ = *id - sent;
              first = false;
            }
            ++sent;
          }
        });
      }
      if (refused > 0 && Clock::now() - start > duration * 3) {
        break;  // far behind schedule: this rate is beyond the device
      }
      std::this_thread::sleep_for(1ms);
    }
    const double send_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    // Settle: every publish acknowledged, then nothing more arriving for a while.
    const auto deadline = Clock::now() + settle_max;
    std::uint64_t last_received = 0;
    auto last_change = Clock::now();
    while (Clock::now() < deadline) {
      std::uint64_t acked = 0;
      std::uint64_t received = 0;
      {
        std::lock_guard lock(mutex_);
        acked = acked_count_;
        received = received_count_;
      }
      if (received != last_received) {
        last_received = received;
        last_change = Clock::now();
      }
      if (acked >= sent && received >= acked) {
        break;
      }
      if (acked >= sent && Clock::now() - last_change > 1500ms) {
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    RunResult result;
    std::lock_guard lock(mutex_);
    result.target_rate = rate;
    result.acked = acked_count_;
    result.achieved_rate = static_cast<double>(acked_count_) / std::max(send_seconds, 1e-3);
    if (received_count_ > 0) {
      const double receive_seconds =
          std::chrono::duration<double>(last_received_at_ - start).count();
      result.delivered_rate =
          static_cast<double>(received_count_) / std::max(receive_seconds, 1e-3);
    }
    for (std::size_t i = 0; i < total; ++i) {
      if (acked_[i] != 0 && received_[i] == 0) {
        ++result.lost;
      }
    }
    result.duplicates = duplicates_;
    if (!latencies_.empty()) {
      std::sort(latencies_.begin(), latencies_.end());
      const auto at = [&](double q) {
        return latencies_[std::min(
            latencies_.size() - 1,
            static_cast<std::size_t>(q * static_cast<double>(latencies_.size())))];
      };
      result.p50_ms = at(0.50);
      result.p99_ms = at(0.99);
    }
    return result;
  }

 private:
  void on_received(const mqtt::IncomingMessage& message) {
    const double before = thread_cpu_seconds();
    auto opened = receiver_.open(kE2eTopic, message.payload);
    const double spent = thread_cpu_seconds() - before;
    {
      std::lock_guard lock(mutex_);
      open_seconds_ += spent;
      if (!opened.ok()) {
        ++duplicates_;  // a replay: the consumer's e2e layer drops a message that crossed twice
        return;
      }
    }
    const std::string& plain = opened.value();
    if (plain.size() < 16) {
      return;
    }
    std::uint64_t seq = 0;
    std::uint64_t sent_ns = 0;
    std::memcpy(&seq, plain.data(), 8);
    std::memcpy(&sent_ns, plain.data() + 8, 8);
    const auto now = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
    std::lock_guard lock(mutex_);
    if (seq < base_seq_ || seq - base_seq_ >= received_.size()) {
      return;  // a late message of an earlier run
    }
    auto& flag = received_[seq - base_seq_];
    if (flag != 0) {
      ++duplicates_;
      return;
    }
    flag = 1;
    ++received_count_;
    last_received_at_ = Clock::now();
    latencies_.push_back(static_cast<double>(now - sent_ns) / 1e6);
  }

  const World& world_;
  // One e2e session per direction, keyed as after a handshake (docs/protocol/e2e.md).
  e2e::Session sender_;
  e2e::Session receiver_;
  LoopThread consumer_;
  LoopThread producer_;
  std::unique_ptr<Client> consumer_client_;  // on consumer_'s loop
  std::unique_ptr<Client> producer_client_;  // on producer_'s loop
  std::atomic<bool> subscribed_{false};
  std::mutex mutex_;
  std::uint64_t next_seq_ = 1;  // guarded by mutex_
  std::uint64_t base_seq_ = 0;  // guarded by mutex_
  static constexpr mqtt::MessageId kUnarmed = std::numeric_limits<mqtt::MessageId>::max();
  mqtt::MessageId first_id_ = kUnarmed;  // guarded by mutex_
  std::vector<std::uint8_t> acked_;      // guarded by mutex_
  std::vector<std::uint8_t> received_;   // guarded by mutex_
  std::uint64_t acked_count_ = 0;        // guarded by mutex_
  std::uint64_t received_count_ = 0;     // guarded by mutex_
  Clock::time_point last_received_at_;   // guarded by mutex_
  std::uint64_t duplicates_ = 0;         // guarded by mutex_
  std::vector<double> latencies_;        // guarded by mutex_
  double seal_seconds_ = 0;              // guarded by mutex_
  double open_seconds_ = 0;              // guarded by mutex_
  std::size_t overhead_bytes_ = 0;       // guarded by mutex_
};

// --- measurements -------------------------------------------------------------------------------

using ThroughputClient = mqtt::BatchedMqttClient;
using LatencyClient = mqtt::MqttClient;

struct Lossless {
  int rate = 0;  // highest rate with 0 loss that was both acknowledged and delivered
  std::vector<RunResult> steps;
};

Lossless find_lossless(const World& world, Variant variant, std::size_t payload,
                       const Options& options) {
  const std::vector<int> ladder =
      options.quick ? std::vector<int>{5000,  15000, 30000, 45000, 55000,  60000, 65000,
                                       70000, 75000, 80000, 90000, 100000, 120000}
                    : std::vector<int>{5000,  10000, 15000, 20000,  25000,  30000, 35000,
                                       40000, 45000, 50000, 55000,  60000,  65000, 70000,
                                       75000, 80000, 90000, 100000, 120000, 150000};
  Lossless out;
  for (const int rate : ladder) {
    if (rate < options.ladder_from || (options.ladder_to > 0 && rate > options.ladder_to)) {
      continue;
    }
    // A rate that falls short is the shared machine's noise as often as a limit: such a rung is
    // tried once more. A loss is never retried.
    bool passed = false;
    for (int attempt = 0; attempt < 2 && !passed; ++attempt) {
      Deployment deployment(world, variant, options);
      Load<ThroughputClient> load(world);
      if (!load.ready(15s)) {
        throw std::runtime_error(
            fmt::format("{}: nothing crosses; run with RECMESH_BENCH_KEEP=1 and see {}",
                        name_of(variant), world.dir.string()));
      }
      const double cpu_before = deployment.bridging_cpu_seconds();
      const double bridge_before = deployment.bridge_process_cpu_seconds();
      const RunResult r = load.run(rate, options.step, payload);
      const auto per_message_us = [&](double seconds) {
        return r.acked > 0 ? seconds * 1e6 / static_cast<double>(r.acked) : 0.0;
      };
      const double bridging_us = per_message_us(deployment.bridging_cpu_seconds() - cpu_before);
      const double bridge_us =
          per_message_us(deployment.bridge_process_cpu_seconds() - bridge_before);
      out.steps.push_back(r);
      std::fprintf(stderr,
                   "  %-16s %5zu B  %6d msg/s: achieved %7.0f, delivered %7.0f, acked %7llu, "
                   "lost %6llu, dup %llu, bridging CPU %.2f us/msg (bridge process %.2f)\n",
                   std::string(name_of(variant)).c_str(), payload, rate, r.achieved_rate,
                   r.delivered_rate, static_cast<unsigned long long>(r.acked),
                   static_cast<unsigned long long>(r.lost),
                   static_cast<unsigned long long>(r.duplicates), bridging_us, bridge_us);
      if (r.lost > 0) {
        return out;
      }
      passed =
          r.achieved_rate >= kAchievedShare * rate && r.delivered_rate >= kAchievedShare * rate;
    }
    if (!passed) {
      break;
    }
    out.rate = rate;
  }
  return out;
}

struct Latency {
  double p50_ms = 0;
  double p99_ms = 0;
  double e2e_cpu_share = 0;  // seal + open over the CPU of brokers, bridge, producer, consumer
  std::size_t e2e_overhead_bytes = 0;
  double e2e_us_per_message = 0;  // seal + open of one message
  double stolen_share = 0;        // of the machine's CPU time, by the hypervisor (cpu_steal.hpp)
};

Latency measure_latency(const World& world, Variant variant, std::size_t payload,
                        const Options& options) {
  std::vector<double> p50;
  std::vector<double> p99;
  std::vector<double> share;
  std::vector<double> per_message;
  std::vector<double> stolen_shares;
  std::size_t overhead = 0;
  for (int i = 0; i < options.repetitions; ++i) {
    for (int attempt = 1;; ++attempt) {
      Deployment deployment(world, variant, options);
      Load<LatencyClient> load(world);
      if (!load.ready(15s)) {
        throw std::runtime_error(fmt::format("{}: nothing crosses", name_of(variant)));
      }
      const auto pipeline_cpu = [&] {
        return deployment.local().cpu_seconds() + deployment.central().cpu_seconds() +
               (deployment.bridge() != nullptr ? deployment.bridge()->cpu_seconds() : 0.0) +
               process_cpu_seconds();
      };
      const double cpu_before = pipeline_cpu();
      const double e2e_before = load.e2e_cpu_seconds();
      const StealMeter steal;
      const RunResult r = load.run(kLatencyRate, options.latency, payload);
      const double stolen = steal.share();
      const bool disturbed = stolen > kMaxStealShare;
      std::fprintf(stderr,
                   "  %-16s %5zu B  5000 msg/s: p50 %.3f ms, p99 %.3f ms, lost %llu, "
                   "stolen %.1f %%%s\n",
                   std::string(name_of(variant)).c_str(), payload, r.p50_ms, r.p99_ms,
                   static_cast<unsigned long long>(r.lost), 100 * stolen,
                   disturbed && attempt < options.max_latency_attempts ? ": made again" : "");
      if (disturbed && attempt < options.max_latency_attempts) {
        continue;
      }
      const double cpu = pipeline_cpu() - cpu_before;
      const double e2e = load.e2e_cpu_seconds() - e2e_before;
      share.push_back(cpu > 0 ? e2e / cpu : 0.0);
      per_message.push_back(r.acked > 0 ? e2e * 1e6 / static_cast<double>(r.acked) : 0.0);
      overhead = load.e2e_overhead_bytes();
      p50.push_back(r.p50_ms);
      p99.push_back(r.p99_ms);
      stolen_shares.push_back(stolen);
      break;
    }
  }
  return {median(p50), median(p99),         median(share),
          overhead,    median(per_message), median(stolen_shares)};
}

// The median of each figure over the runs.
Latency median_latency(const std::vector<Latency>& runs) {
  const auto of = [&](auto field) {
    std::vector<double> values;
    for (const Latency& run : runs) {
      values.push_back(static_cast<double>(run.*field));
    }
    return median(values);
  };
  Latency out;
  out.p50_ms = of(&Latency::p50_ms);
  out.p99_ms = of(&Latency::p99_ms);
  out.e2e_cpu_share = of(&Latency::e2e_cpu_share);
  out.e2e_us_per_message = of(&Latency::e2e_us_per_message);
  out.stolen_share = of(&Latency::stolen_share);
  out.e2e_overhead_bytes = runs.empty() ? 0 : runs.back().e2e_overhead_bytes;
  return out;
}

RunResult flood(const World& world, Variant variant, int rate, std::size_t payload,
                const Options& options) {
  Deployment deployment(world, variant, options);
  Load<ThroughputClient> load(world);
  if (!load.ready(15s)) {
    throw std::runtime_error(fmt::format("{}: nothing crosses", name_of(variant)));
  }
  const RunResult r = load.run(rate, options.step, payload, 60s);
  std::fprintf(stderr, "  %-16s flood %6d msg/s: achieved %7.0f, acked %7llu, lost %llu\n",
               std::string(name_of(variant)).c_str(), rate, r.achieved_rate,
               static_cast<unsigned long long>(r.acked), static_cast<unsigned long long>(r.lost));
  return r;
}

std::string json_number(std::optional<double> value) {
  return value ? fmt::format("{:.3f}", *value) : "null";
}

int run(const Options& options) {
  const ScratchDirectory scratch("recmesh-bench-bridge", ScratchDirectory::Access::kBrokers);
  const fs::path& dir = scratch.path();
  const World world = make_world(dir);
  std::fprintf(stderr, "bridge benchmark in %s (%s)\n", dir.c_str(),
               options.quick ? "quick" : "full");

  std::fprintf(stderr, "\nhighest QoS 1 rate with 0 loss (steps of %lld ms):\n",
               static_cast<long long>(options.step.count()));
  struct SizeFigures {
    std::size_t payload;
    int recmesh = 0;
    int builtin = 0;
  };
  std::vector<SizeFigures> sizes{{64}, {1024}};
  const auto wanted = [&](std::string_view part) {
    return options.only.empty() || options.only == part;
  };
  const bool ours_wanted = options.variant.empty() || options.variant == "recmesh";
  const bool theirs_wanted = options.variant.empty() || options.variant == "builtin";
  for (auto& size : sizes) {
    if (wanted("lossless")) {
      if (ours_wanted) {
        size.recmesh = find_lossless(world, Variant::kRecmesh, size.payload, options).rate;
      }
      if (theirs_wanted) {
        size.builtin = find_lossless(world, Variant::kBuiltin, size.payload, options).rate;
      }
    }
  }

  std::fprintf(stderr, "\nlatency at %d msg/s, 64 B, median of %d runs:\n", kLatencyRate,
               options.repetitions);
  Latency ours;
  Latency theirs;
  Latency relayed;
  if (wanted("latency")) {
    // One run of each in turn, so that all see the same changes of the machine's load.
    Options once = options;
    once.repetitions = 1;
    std::vector<Latency> our_runs;
    std::vector<Latency> their_runs;
    std::vector<Latency> relayed_runs;
    for (int i = 0; i < options.repetitions; ++i) {
      if (ours_wanted) {
        our_runs.push_back(measure_latency(world, Variant::kRecmesh, 64, once));
      }
      if (theirs_wanted) {
        their_runs.push_back(measure_latency(world, Variant::kBuiltin, 64, once));
        relayed_runs.push_back(measure_latency(world, Variant::kRelay, 64, once));
      }
    }
    ours = median_latency(our_runs);
    theirs = median_latency(their_runs);
    relayed = median_latency(relayed_runs);
  }

  const int flood_rate = 2 * std::max(sizes[0].recmesh, options.flood_base);
  std::fprintf(stderr, "\nflood at 2x recmesh bridge's lossless rate (64 B):\n");
  RunResult our_flood;
  RunResult their_flood;
  if (wanted("flood")) {
    if (ours_wanted) {
      our_flood = flood(world, Variant::kRecmesh, flood_rate, 64, options);
    }
    if (theirs_wanted) {
      their_flood = flood(world, Variant::kBuiltin, flood_rate, 64, options);
    }
  }

  const auto ratio = [](double a, double b) -> std::optional<double> {
    return b > 0 ? std::optional<double>(a / b) : std::nullopt;
  };
  // The lossless ratio is the lower of the two payload sizes.
  std::optional<double> lossless_ratio;
  for (const auto& size : sizes) {
    const auto r = ratio(size.recmesh, size.builtin);
    if (r && (!lossless_ratio || *r < *lossless_ratio)) {
      lossless_ratio = r;
    }
  }
  std::printf("\nbridge: local broker -> bridge -> central broker, QoS 1, mTLS 1.3\n");
  std::printf("%-28s %14s %16s %8s\n", "", "recmesh bridge", "mosquitto bridge", "ratio");
  for (const auto& size : sizes) {
    std::printf("%-28s %14d %16d %8s\n", fmt::format("lossless msg/s, {} B", size.payload).c_str(),
                size.recmesh, size.builtin, json_number(ratio(size.recmesh, size.builtin)).c_str());
  }
  std::printf("%-28s %14.3f %16.3f %8s\n", "p50 ms at 5k msg/s, 64 B", ours.p50_ms, theirs.p50_ms,
              json_number(ratio(ours.p50_ms, theirs.p50_ms)).c_str());
  std::printf("%-28s %14.3f %16.3f %8s\n", "p99 ms at 5k msg/s, 64 B", ours.p99_ms, theirs.p99_ms,
              json_number(ratio(ours.p99_ms, theirs.p99_ms)).c_str());
  std::printf("%-28s %14s %16.3f %8s  (mosquitto bridge through a TCP relay)\n",
              "p50 ms, one more hop", "", relayed.p50_ms,
              json_number(ratio(relayed.p50_ms, theirs.p50_ms)).c_str());
  std::printf("%-28s %14s %16.3f %8s\n", "p99 ms, one more hop", "", relayed.p99_ms,
              json_number(ratio(relayed.p99_ms, theirs.p99_ms)).c_str());
  std::printf("%-28s %14.3f %16.3f %8s  (median of the kept runs)\n", "CPU stolen in latency runs",
              ours.stolen_share, theirs.stolen_share, "");
  std::printf("%-28s %14llu %16llu\n", fmt::format("lost in flood at {} msg/s", flood_rate).c_str(),
              static_cast<unsigned long long>(our_flood.lost),
              static_cast<unsigned long long>(their_flood.lost));
  std::printf("%-28s %14llu %16llu\n", "acknowledged in the flood",
              static_cast<unsigned long long>(our_flood.acked),
              static_cast<unsigned long long>(their_flood.acked));
  std::printf("%-28s %14zu\n", "e2e overhead bytes/message", ours.e2e_overhead_bytes);
  std::printf("%-28s %14.2f\n", "e2e us/message (seal+open)", ours.e2e_us_per_message);
  std::printf("%-28s %14.4f\n", "e2e share of pipeline CPU", ours.e2e_cpu_share);
  std::printf(
      "{\"benchmark\":\"bridge\",\"quick\":%s,\"lossless_rate_64\":%d,\"lossless_rate_64_builtin\":"
      "%d,"
      "\"lossless_rate_1k\":%d,\"lossless_rate_1k_builtin\":%d,\"lossless_ratio\":%s,"
      "\"p50_ms_5k\":%.3f,\"p50_ms_5k_builtin\":%.3f,\"p99_ms_5k\":%.3f,\"p99_ms_5k_builtin\":%.3f,"
      "\"p99_ratio_5k\":%s,\"p50_ms_5k_relay\":%.3f,\"p99_ms_5k_relay\":%.3f,"
      "\"p99_ratio_5k_relay\":%s,\"latency_stolen_share\":%.3f,\"flood_rate\":%d,\"flood_lost\":%"
      "llu,\"flood_lost_builtin\":%llu,"
      "\"e2e_overhead_bytes\":%zu,\"e2e_us_per_message\":%.2f,\"e2e_cpu_share\":%.4f}\n",
      options.quick ? "true" : "false", sizes[0].recmesh, sizes[0].builtin, sizes[1].recmesh,
      sizes[1].builtin, json_number(lossless_ratio).c_str(), ours.p50_ms, theirs.p50_ms,
      ours.p99_ms, theirs.p99_ms, json_number(ratio(ours.p99_ms, theirs.p99_ms)).c_str(),
      relayed.p50_ms, relayed.p99_ms, json_number(ratio(relayed.p99_ms, theirs.p99_ms)).c_str(),
      std::max({ours.stolen_share, theirs.stolen_share, relayed.stolen_share}), flood_rate,
      static_cast<unsigned long long>(our_flood.lost),
      static_cast<unsigned long long>(their_flood.lost), ours.e2e_overhead_bytes,
      ours.e2e_us_per_message, ours.e2e_cpu_share);
  return 0;
}

}  // namespace
}  // namespace recmesh::bench

int main(int argc, char** argv) {
  recmesh::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      options.quick = true;
      options.step = std::chrono::milliseconds(2000);
      options.latency = std::chrono::milliseconds(2000);
      options.repetitions = 5;
      options.max_latency_attempts = 2;
    } else if (arg == "--recmesh" && i + 1 < argc) {
      options.recmesh = argv[++i];
    } else if (arg == "--only" && i + 1 < argc) {
      options.only = argv[++i];
    } else if (arg == "--flood-base" && i + 1 < argc) {
      options.flood_base = std::stoi(argv[++i]);
    } else if (arg == "--variant" && i + 1 < argc) {
      options.variant = argv[++i];
    } else if (arg == "--ladder-from" && i + 1 < argc) {
      options.ladder_from = std::stoi(argv[++i]);
    } else if (arg == "--ladder-to" && i + 1 < argc) {
      options.ladder_to = std::stoi(argv[++i]);
    } else if (arg == "--bridge-setting" && i + 1 < argc) {
      options.bridge_settings += std::string(argv[++i]) + "\n";  // e.g. "max_inflight: 256"
    } else {
      std::fprintf(stderr,
                   "usage: recmesh-bench-bridge [--quick] [--recmesh PATH] "
                   "[--only lossless|latency|flood] [--variant recmesh|builtin] "
                   "[--ladder-from MSG_PER_S] [--ladder-to MSG_PER_S] [--flood-base MSG_PER_S] "
                   "[--bridge-setting 'KEY: VALUE']...\n");
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return recmesh::bench::run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench bridge: %s\n", e.what());
    return 1;
  }
}
