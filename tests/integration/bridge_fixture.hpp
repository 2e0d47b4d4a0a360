#pragma once

// What the bridge's integration tests share: a PKI, a local and a central Mosquitto rendered by
// `recmesh broker-config`, `recmesh bridge` as a process (optionally behind a TcpProxy that
// plays the backbone), and MqttClients on an event loop thread that play the member's gateway
// (publisher on the local member listener) and the EMS engine (subscriber on the central EMS
// listener).

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "recmesh/core/secret.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/pki/pki.hpp"

#include "child_process.hpp"
#include "free_port.hpp"
#include "http_probe.hpp"
#include "mosquitto_broker.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
#include "tcp_proxy.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"
#include "tls_identity.hpp"

namespace recmesh::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Polls `condition` every 20 ms until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

// Keys of the bridge's YAML that a test changes.
struct BridgeOptions {
  std::int64_t store_max_messages = 100000;
  std::string overflow = "block";
  std::int64_t max_payload_bytes = 65536;
  std::int64_t max_inflight = 100;
  std::string write_behind = "5ms";  // store.write_behind
  std::string window_wait = "250ms";
  bool through_proxy = false;  // reach the central broker through the TcpProxy
  int local_port = 0;          // 0: the local broker's bridge listener
};

class BridgeWorld {
 public:
  BridgeWorld() {
    if (::geteuid() == 0) {
      fs::permissions(tmp_.path(),
                      fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    }
    pki::Pki pki = pki::Pki::create(tmp_ / "pki", Secret(kTestPassphrase));
    pki.add_rec("r1");
    pki.add_member("r1", "m1");
    bridge_ = tls_files(pki.issue(issue_request(pki::IdentityKind::kBridge, "r1", "m1", "")));
    gateway_ = tls_files(pki.issue(issue_request(pki::IdentityKind::kGateway, "r1", "m1", "")));
    device_ = tls_files(pki.issue(issue_request(pki::IdentityKind::kDevice, "r1", "m1", "d1")));
    engine_ = tls_files(pki.issue(issue_request(pki::IdentityKind::kService, "", "", "engine")));
    // recmesh-guard is loaded with the rules of SPEC §6 and a custom rule opening every topic
    // to the identities of these tests: they exercise the bridge's own checks (mapping, topic
    // grammar, sizes), which must hold even where a broker lets a message through.
    const std::vector<policy::MemberRegistration> members{{"r1", "m1", {"d1"}}};
    std::vector<policy::Grant> open;
    for (const std::string cn :
         {"bridge_r1_m1", "rec_r1_m1_gateway", "rec_r1_m1_d1", "ems_engine"}) {
      open.push_back(grant_for(cn, {"#"}, {"#"}));
    }
    render("--local",
           {"--rec", "r1", "--member", "m1", "--member-port", std::to_string(member_port_),
            "--bridge-port", std::to_string(local_bridge_port_), "--policy",
            write_signed_policy(tmp_ / "local.jws", tmp_ / "pki",
                                policy::BrokerId::local("r1", "m1"), members, open)},
           tmp_ / "local");
    render("--central",
           {"--ems-port", std::to_string(ems_port_), "--bridge-port",
            std::to_string(central_bridge_port_), "--policy",
            write_signed_policy(tmp_ / "central.jws", tmp_ / "pki", policy::BrokerId::central(),
                                members, open)},
           tmp_ / "central");
    start_central();
    start_local();
    proxy_ = std::make_unique<TcpProxy>(central_bridge_port_);
    runner_ = std::thread([this] { loop_.run(); });
  }

  ~BridgeWorld() {
    stop_bridge();
    on_loop([this] {
      for (auto& client : clients_) {
        client->abort();
      }
      return 0;
    });
    loop_.stop();
    runner_.join();
    clients_.clear();
  }

  BridgeWorld(const BridgeWorld&) = delete;
  BridgeWorld& operator=(const BridgeWorld&) = delete;

  // --- brokers ---
  void start_local() {
    local_ = std::make_unique<MosquittoBroker>(tmp_ / "local" / "mosquitto.conf",
                                               std::vector<int>{member_port_, local_bridge_port_});
  }
  void start_central() {
    central_ = std::make_unique<MosquittoBroker>(tmp_ / "central" / "mosquitto.conf",
                                                 std::vector<int>{ems_port_, central_bridge_port_});
  }
  // SIGTERM (Mosquitto saves its persistent sessions), then the same config again.
  void restart_local(std::chrono::milliseconds down = 1s) {
    local_.reset();
    std::this_thread::sleep_for(down);
    start_local();
  }
  void restart_central(std::chrono::milliseconds down = 1s) {
    central_.reset();
    std::this_thread::sleep_for(down);
    start_central();
  }
  TcpProxy& backbone() { return *proxy_; }

  // --- the bridge process ---
  fs::path write_bridge_config(const BridgeOptions& options) {
    const fs::path config = tmp_ / "bridge.yaml";
    std::ofstream out(config);
    const int central_port = options.through_proxy ? proxy_->port() : central_bridge_port_;
    out << "rec: r1\nmember: m1\n"
        << bridge_endpoint_yaml(
               "local", options.local_port != 0 ? options.local_port : local_bridge_port_, bridge_)
        << bridge_endpoint_yaml("central", central_port, bridge_)
        << fmt::format(
               "store:\n  path: bridge-store.db\n  max_messages: {}\n  overflow: {}\n"
               "  write_behind: {}\n"
               "max_payload_bytes: {}\nmax_inflight: {}\nwindow_wait: {}\n"
               "status_interval: 300ms\nkeepalive: 5s\n"
               "reconnect:\n  initial: 100ms\n  max: 1s\n"
               "metrics:\n  enabled: true\n  port: {}\n"
               "logging:\n  format: json\n",
               options.store_max_messages, options.overflow, options.write_behind,
               options.max_payload_bytes, options.max_inflight, options.window_wait, metrics_port_);
    return config;
  }
  void start_bridge(const BridgeOptions& options = {}) {
    const fs::path config = write_bridge_config(options);
    bridge_process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{recmesh_binary(), "bridge", "--config", config.string()},
        tmp_ / "bridge.log");
  }
  // The bridge as a crash would end it.
  void kill_bridge() {
    ASSERT_TRUE(bridge_process_);
    bridge_process_->signal_and_wait(SIGKILL, 5s);
    bridge_process_.reset();
  }
  // SIGTERM: the exit code, or nothing when it did not stop in time.
  std::optional<int> stop_bridge() {
    if (!bridge_process_) {
      return std::nullopt;
    }
    auto code = bridge_process_->signal_and_wait(SIGTERM, 15s);
    bridge_process_.reset();
    return code;
  }
  std::string bridge_log() const {
    std::ifstream in(tmp_ / "bridge.log");
    std::ostringstream text;
    text << in.rdbuf();  // through rdbuf: GCC 12 -O3 warns falsely on istreambuf_iterator
    return text.str();
  }
  // The value of a metric series line such as `recmesh_bridge_forwarded_total{direction="out"}`.
  std::optional<double> metric(const std::string& series) const {
    HttpReply reply;
    try {
      reply = http_get(metrics_port_, "/metrics");
    } catch (const std::exception&) {
      return std::nullopt;  // not listening yet, or any more
    }
    if (reply.status != 200) {
      return std::nullopt;
    }
    const auto at = reply.body.find("\n" + series + " ");
    if (at == std::string::npos) {
      return std::nullopt;
    }
    return std::stod(reply.body.substr(at + series.size() + 2));
  }
  double metric_or_zero(const std::string& series) const { return metric(series).value_or(0); }

  // --- clients on the event loop ---
  template <typename F>
  auto on_loop(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    loop_.post([&task] { task(); });
    return result.get();
  }

  mqtt::MqttClient& add_client(const std::string& client_id, int port, const TlsFiles& tls,
                               mqtt::MqttClientCallbacks callbacks, bool clean_session = false) {
    const mqtt::MqttClientOptions options = tls_client_options(client_id, port, tls, clean_session);
    return *on_loop([&]() -> mqtt::MqttClient* {
      clients_.push_back(std::make_unique<mqtt::MqttClient>(loop_, options, std::move(callbacks)));
      clients_.back()->start();
      return clients_.back().get();
    });
  }

  mqtt::EventLoop& loop() { return loop_; }
  int member_port() const { return member_port_; }
  int ems_port() const { return ems_port_; }
  int local_bridge_port() const { return local_bridge_port_; }
  int central_bridge_port() const { return central_bridge_port_; }
  const TlsFiles& gateway() const { return gateway_; }
  const TlsFiles& device() const { return device_; }
  const TlsFiles& engine() const { return engine_; }
  const TlsFiles& bridge_identity() const { return bridge_; }
  const TempDir& dir() const { return tmp_; }

 private:
  void render(const std::string& kind, std::vector<std::string> args, const fs::path& out) {
    std::vector<std::string> argv{"broker-config", "--pki", (tmp_ / "pki").string(), kind};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--out", out.string()});
    const CommandResult rendered = run_recmesh(argv);
    if (rendered.exit_code != 0) {
      throw std::runtime_error("broker-config failed: " + rendered.err);
    }
  }

  TempDir tmp_;
  int member_port_ = free_tcp_port();
  int local_bridge_port_ = free_tcp_port();
  int ems_port_ = free_tcp_port();
  int central_bridge_port_ = free_tcp_port();
  int metrics_port_ = free_tcp_port();
  TlsFiles bridge_;
  TlsFiles gateway_;
  TlsFiles device_;
  TlsFiles engine_;
  std::unique_ptr<MosquittoBroker> local_;
  std::unique_ptr<MosquittoBroker> central_;
  std::unique_ptr<TcpProxy> proxy_;
  std::unique_ptr<ChildProcess> bridge_process_;
  mqtt::EventLoop loop_;
  std::thread runner_;
  std::vector<std::unique_ptr<mqtt::MqttClient>> clients_;
};

// How a SequenceStream writes and reads its payloads; both run on the loop thread.
struct StreamCodec {
  // The payload of the stream's n-th message and the number it is counted by.
  std::function<std::pair<std::string, std::int64_t>(std::int64_t n)> encode;
  // The number of a received payload, or nothing when the consumer refuses it (a replay).
  std::function<std::optional<std::int64_t>(std::string_view payload)> decode;
};

// Payload "<n>", counted by n.
inline StreamCodec plain_codec() {
  return {[](std::int64_t n) {
            return std::pair{std::to_string(n), n};
          },
          [](std::string_view payload) -> std::optional<std::int64_t> {
            return std::stoll(std::string(payload));
          }};
}

// A steady QoS 1 stream: the gateway publishes `/platform/metrics/seq` at `rate_per_s`; the
// EMS engine's persistent session counts what crosses. A message counts as acknowledged once
// the local broker's PUBACK reached the publisher.
class SequenceStream {
 public:
  SequenceStream(BridgeWorld& world, int rate_per_s, StreamCodec codec = plain_codec())
      : world_(world), rate_(rate_per_s), codec_(std::move(codec)) {
    mqtt::MqttClientCallbacks sub;
    sub.on_message = [this](const mqtt::IncomingMessage& message) {
      std::lock_guard lock(mutex_);
      ++received_total_;
      const std::optional<std::int64_t> seq = codec_.decode(message.payload);
      if (!seq) {
        ++refused_;
        return;
      }
      received_.insert(*seq);
      ++accepted_[*seq];
    };
    sub.on_subscribe = [this](const std::string&, int) { subscribed_ = true; };
    subscriber_ = &world_.add_client("ems_engine", world_.ems_port(), world_.engine(), sub);
    world_.on_loop([this] { return subscriber_->subscribe("/r1/m1/metrics/#", 1).ok(); });
    mqtt::MqttClientCallbacks pub;
    pub.on_delivered = [this](mqtt::MessageId id) {
      std::lock_guard lock(mutex_);
      if (auto it = pending_.find(id); it != pending_.end()) {
        acked_.insert(it->second);
        pending_.erase(it);
      }
    };
    publisher_ =
        &world_.add_client("rec_r1_m1_gateway", world_.member_port(), world_.gateway(), pub);
  }

  bool ready() {
    return eventually([this] {
      return subscribed_.load() && world_.on_loop([this] { return publisher_->connected(); });
    });
  }

  // Publishes for `duration` at the rate, from the loop thread's timers.
  void start() {
    world_.on_loop([this] {
      tick();
      return 0;
    });
  }
  void stop() {
    world_.on_loop([this] {
      *running_ = false;
      return 0;
    });
  }
  ~SequenceStream() {
    world_.on_loop([this] {
      *running_ = false;
      publisher_->abort();  // their callbacks point here
      subscriber_->abort();
      return 0;
    });
  }

  std::int64_t published() {
    std::lock_guard lock(mutex_);
    return next_;
  }
  std::set<std::int64_t> acked() {
    std::lock_guard lock(mutex_);
    return acked_;
  }
  std::set<std::int64_t> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::uint64_t received_total() {
    std::lock_guard lock(mutex_);
    return received_total_;
  }
  // Published and not yet acknowledged by the local broker.
  std::size_t unacknowledged() {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }
  // Received payloads the codec refused (replays the consumer dropped).
  std::uint64_t refused() {
    std::lock_guard lock(mutex_);
    return refused_;
  }
  // Numbers the consumer accepted more than once.
  std::vector<std::int64_t> accepted_twice() {
    std::lock_guard lock(mutex_);
    std::vector<std::int64_t> out;
    for (const auto& [seq, times] : accepted_) {
      if (times > 1) {
        out.push_back(seq);
      }
    }
    return out;
  }
  // Acknowledged messages that have not crossed.
  std::vector<std::int64_t> missing() {
    std::lock_guard lock(mutex_);
    std::vector<std::int64_t> out;
    for (const auto seq : acked_) {
      if (!received_.contains(seq)) {
        out.push_back(seq);
      }
    }
    return out;
  }
  bool all_acked_received(std::chrono::milliseconds timeout = 30s) {
    return eventually([this] { return missing().empty(); }, timeout);
  }

 private:
  void tick() {
    if (!*running_) {
      return;
    }
    {
      std::lock_guard lock(mutex_);
      auto [payload, seq] = codec_.encode(next_++);
      auto id = publisher_->publish("/platform/metrics/seq", payload, 1, false);
      if (id) {
        pending_[*id] = seq;
      }
    }
    world_.loop().add_timer(std::chrono::microseconds(1000000 / rate_), [this, running = running_] {
      if (*running) {
        tick();
      }
    });
  }

  BridgeWorld& world_;
  int rate_;
  StreamCodec codec_;
  std::shared_ptr<bool> running_ = std::make_shared<bool>(true);  // loop thread
  mqtt::MqttClient* publisher_ = nullptr;
  mqtt::MqttClient* subscriber_ = nullptr;
  std::atomic<bool> subscribed_{false};
  std::mutex mutex_;
  std::int64_t next_ = 0;                            // guarded by mutex_
  std::map<mqtt::MessageId, std::int64_t> pending_;  // guarded by mutex_
  std::set<std::int64_t> acked_;                     // guarded by mutex_
  std::set<std::int64_t> received_;                  // guarded by mutex_
  std::uint64_t received_total_ = 0;                 // guarded by mutex_
  std::uint64_t refused_ = 0;                        // guarded by mutex_
  std::map<std::int64_t, int> accepted_;             // guarded by mutex_
};

}  // namespace recmesh::testing
