// The MQTT client layer against real Mosquitto brokers rendered by `recmesh broker-config`, with
// certificates of our PKI: mutual TLS, the status flag and its Last Will, reconnection with
// backoff after a broker restart, the bounded queue while disconnected, connection failures
// that libmosquitto alone would spin on, and a thousand clients on one loop thread (SPEC §4, §8).
// Every behaviour is tested for both clients, MqttClient (libmosquitto) and BatchedMqttClient
// (our wire codec); a scripted TLS broker sends the batched client what no honest broker would.
#include "recmesh/mqtt/mqtt_client.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <ostream>
#include <poll.h>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "recmesh/core/loopback.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/mqtt/batched_mqtt_client.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/pki/pki.hpp"

#include "free_port.hpp"
#include "mosquitto_broker.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
#include "scripted_broker.hpp"
#include "tcp_proxy.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh::mqtt {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pki::IdentityKind;

constexpr auto kEventually = 20s;

struct ClientFiles {
  std::string common_name;
  fs::path chain;
  fs::path key;
  fs::path cafile;
};

// What a client's callbacks saw. Touched only on the loop thread; tests read it through on_loop().
struct Observed {
  int connects = 0;
  int stopped = 0;
  std::vector<testing::ReceivedMessage> messages;
  std::vector<Status> connect_failures;
  std::vector<Status> disconnects;
  std::vector<std::pair<std::string, int>> subacks;
  std::vector<MessageId> delivered;
  std::set<std::thread::id> threads;
};

MqttClientCallbacks observe(Observed& seen) {
  MqttClientCallbacks callbacks;
  const auto note_thread = [&seen] { seen.threads.insert(std::this_thread::get_id()); };
  callbacks.on_connect = [&seen, note_thread] {
    note_thread();
    ++seen.connects;
  };
  callbacks.on_connect_failed = [&seen, note_thread](const Status& reason) {
    note_thread();
    seen.connect_failures.push_back(reason);
  };
  callbacks.on_disconnect = [&seen, note_thread](const Status& reason) {
    note_thread();
    seen.disconnects.push_back(reason);
  };
  callbacks.on_message = [&seen, note_thread](const IncomingMessage& message) {
    note_thread();
    seen.messages.push_back(
        {std::string(message.topic), std::string(message.payload), message.qos, message.retain});
  };
  callbacks.on_subscribe = [&seen, note_thread](const std::string& filter, int qos) {
    note_thread();
    seen.subacks.emplace_back(filter, qos);
  };
  callbacks.on_delivered = [&seen, note_thread](MessageId id) {
    note_thread();
    seen.delivered.push_back(id);
  };
  callbacks.on_stopped = [&seen, note_thread] {
    note_thread();
    ++seen.stopped;
  };
  return callbacks;
}

// A TCP listener on 127.0.0.1 that speaks no TLS: it accepts every connection and closes it
// (with FIN at once, with RST at once, or with RST a while after the ClientHello), or never
// accepts (the kernel still completes the TCP handshake).
class RawListener {
 public:
  enum class Mode { kCloseAtOnce, kResetAtOnce, kResetAfterHello, kSilent };

  explicit RawListener(Mode mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback_address(0);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(address.sin_port);
    if (mode != Mode::kSilent) {
      acceptor_ = std::thread([this, mode] {
        while (!done_.load()) {
          pollfd entry{fd_, POLLIN, 0};
          if (::poll(&entry, 1, 20) == 1) {
            const int client = ::accept(fd_, nullptr, nullptr);
            if (client >= 0) {
              if (mode == Mode::kResetAfterHello) {
                pollfd hello{client, POLLIN, 0};
                ::poll(&hello, 1, 1000);
                // Late enough that the client is surely waiting for the ServerHello.
                std::this_thread::sleep_for(100ms);
              }
              if (mode != Mode::kCloseAtOnce) {
                const linger abort_on_close{1, 0};
                ::setsockopt(client, SOL_SOCKET, SO_LINGER, &abort_on_close,
                             sizeof(abort_on_close));
              }
              ::close(client);
              accepted_.fetch_add(1);
            }
          }
        }
      });
    }
  }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;
  ~RawListener() {
    done_.store(true);
    if (acceptor_.joinable()) {
      acceptor_.join();
    }
    ::close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> done_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
};

std::string_view mode_name(RawListener::Mode mode) {
  switch (mode) {
    case RawListener::Mode::kCloseAtOnce:
      return "FinAtOnce";
    case RawListener::Mode::kResetAtOnce:
      return "RstAtOnce";
    case RawListener::Mode::kResetAfterHello:
      return "RstAfterClientHello";
    case RawListener::Mode::kSilent:
      return "Silent";
  }
  return "?";
}

// Holds the loop thread in a task until destroyed: its clients notice nothing meanwhile.
class LoopPause {
 public:
  explicit LoopPause(EventLoop& loop) : state_(std::make_shared<State>()) {
    auto paused = state_->paused.get_future();
    loop.post([state = state_, released = state_->release.get_future().share()] {
      state->paused.set_value();
      released.wait_for(120s);
    });
    paused.wait();
  }
  LoopPause(const LoopPause&) = delete;
  LoopPause& operator=(const LoopPause&) = delete;
  ~LoopPause() { state_->release.set_value(); }

 private:
  struct State {
    std::promise<void> paused;
    std::promise<void> release;
  };
  std::shared_ptr<State> state_;
};

template <typename Client>
class MqttClientTest : public ::testing::Test {
 protected:
  struct Peer {
    Client* client = nullptr;
    Observed* seen = nullptr;
  };

  void SetUp() override {
    testing::let_mosquitto_through(tmp_.path());
    pki::Pki pki = pki::Pki::create(pki_dir(), Secret(testing::kTestPassphrase));
    pki.add_rec("r1");
    pki.add_member("r1", "m1");
    pki.add_member("r1", "m2");
    root_ca_ = pki.authority_cert_path("root");
  }

  void TearDown() override {
    stop_loop();
    clients_.clear();  // on this thread, now that the loop no longer runs
  }

  fs::path pki_dir() const { return tmp_ / "pki"; }

  ClientFiles issue(IdentityKind kind, const std::string& member, const std::string& name,
                    const Secret* key_passphrase = nullptr) {
    pki::Pki pki =
        pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(testing::kTestPassphrase));
    pki::IssueRequest request;
    request.identity = pki::Identity::make(kind, "r1", member, name);
    request.key_passphrase = key_passphrase;
    const pki::IssuedCertificate issued = pki.issue(request);
    return {issued.record.common_name, issued.files.chain, issued.files.key, issued.files.cafile};
  }
  ClientFiles device(const std::string& name, const std::string& member = "m1") {
    return issue(IdentityKind::kDevice, member, name);
  }
  ClientFiles gateway() { return issue(IdentityKind::kGateway, "m1", ""); }

  // `recmesh broker-config --local` for r1/m1, persistence on, recmesh-guard seeded with the
  // matrix of SPEC §6 plus custom rules for what these tests do beyond it: one device
  // certificate stands in for many devices, and it writes the gateway's command topic.
  fs::path render_broker() {
    const fs::path out = tmp_ / "local-r1-m1";
    const std::string policy = testing::write_signed_policy(
        tmp_ / "policy.jws", pki_dir(), policy::BrokerId::local("r1", "m1"),
        {{"r1", "m1", {"meter"}}},
        {testing::grant_for("rec_r1_m1_meter",
                            {"/device/+/metrics/#", "/device/+/status", "/platform/control"}, {}),
         testing::grant_for("rec_r1_m1_gateway", {}, {"/device/+/metrics/#", "/device/+/status"})});
    const testing::CommandResult result = testing::run_recmesh(
        {"broker-config", "--pki", pki_dir().string(), "--local", "--rec", "r1", "--member", "m1",
         "--member-port", std::to_string(member_port_), "--bridge-port",
         std::to_string(bridge_port_), "--out", out.string(), "--policy", policy});
    if (result.exit_code != 0) {
      throw std::runtime_error("recmesh broker-config failed: " + result.err);
    }
    return out / "mosquitto.conf";
  }
  std::unique_ptr<testing::MosquittoBroker> start_broker() {
    if (broker_config_.empty()) {
      broker_config_ = render_broker();
    }
    return std::make_unique<testing::MosquittoBroker>(broker_config_,
                                                      std::vector<int>{member_port_, bridge_port_});
  }
  // A TLS server with the broker certificate of r1/m1, which the clients trust, that plays a
  // broker by `script`.
  std::unique_ptr<testing::ScriptedBroker> scripted_broker(testing::ScriptedBroker::Script script) {
    if (broker_config_.empty()) {
      broker_config_ = render_broker();
    }
    const fs::path dir = broker_config_.parent_path();
    return std::make_unique<testing::ScriptedBroker>(dir / "server.crt", dir / "server.key",
                                                     std::move(script));
  }
  fs::path broker_persistence_file() const {
    return broker_config_.parent_path() / "data" / "mosquitto.db";
  }

  MqttClientOptions options_for(const ClientFiles& files, const std::string& client_id,
                                const std::string& status_topic = {}) const {
    MqttClientOptions options;
    options.host = "127.0.0.1";
    options.port = member_port_;
    options.client_id = client_id;
    options.cafile = files.cafile;
    options.certfile = files.chain;
    options.keyfile = files.key;
    options.status_topic = status_topic;
    options.reconnect.initial = 100ms;
    options.reconnect.max = 1000ms;
    options.connect_timeout = 5s;
    options.stop_timeout = 3s;
    return options;
  }

  // --- the loop thread ---

  void start_loop() {
    runner_ = std::thread([this] { loop_.run(); });
  }
  void stop_loop() {
    if (runner_.joinable()) {
      loop_.stop();
      runner_.join();
    }
  }

  // Runs `f` on the loop thread (or here, before the loop runs) and returns its result.
  template <typename F>
  auto on_loop(F&& f) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    if (!runner_.joinable()) {
      return f();
    }
    std::packaged_task<R()> task(std::forward<F>(f));
    auto future = task.get_future();
    loop_.post([&task] { task(); });
    if (future.wait_for(120s) != std::future_status::ready) {
      std::fprintf(stderr, "the loop thread did not run a task within 120 s\n");
      std::abort();  // `task` lives on this stack: returning would leave the loop a dangling task
    }
    return future.get();
  }

  template <typename Predicate>
  bool eventually(Predicate predicate, std::chrono::milliseconds timeout = kEventually) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!on_loop(predicate)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  Peer add_client(const MqttClientOptions& options) {
    observed_.push_back(std::make_unique<Observed>());
    Observed* seen = observed_.back().get();
    Client* client = on_loop([&] {
      clients_.push_back(std::make_unique<Client>(loop_, options, observe(*seen)));
      return clients_.back().get();
    });
    return {client, seen};
  }

  // A subscriber outside the loop, with the gateway's certificate and a clean session.
  std::unique_ptr<testing::MqttTestClient> watcher(const ClientFiles& files,
                                                   const std::string& client_id,
                                                   const std::string& filter) {
    auto client = std::make_unique<testing::MqttTestClient>(client_id);
    const testing::ConnectOutcome outcome =
        client->connect(member_port_, files.cafile, files.chain, files.key);
    if (!outcome.accepted()) {
      ADD_FAILURE() << "watcher " << client_id << ": " << outcome;
      return nullptr;
    }
    if (!client->subscribe(filter, 1)) {
      ADD_FAILURE() << "watcher " << client_id << ": " << client->last_error();
      return nullptr;
    }
    return client;
  }

  testing::TempDir tmp_;
  fs::path root_ca_;
  int member_port_ = testing::free_tcp_port();
  int bridge_port_ = testing::free_tcp_port();
  fs::path broker_config_;
  EventLoop loop_;
  std::thread runner_;
  std::vector<std::unique_ptr<Observed>> observed_;  // outlives the clients below
  std::vector<std::unique_ptr<Client>> clients_;     // touched on the loop thread only
};

// Every test of both clients runs once for each: MqttClientTest/MqttClient.* (libmosquitto) and
// MqttClientTest/BatchedMqttClient.* (our own wire codec).
using Clients = ::testing::Types<MqttClient, BatchedMqttClient>;
struct ClientName {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MqttClient> ? "MqttClient" : "BatchedMqttClient";
  }
};
TYPED_TEST_SUITE(MqttClientTest, Clients, ClientName);

// Where the two differ by design (docs/mqtt-client.md), each has its own tests.
using LibmosquittoClientTest = MqttClientTest<MqttClient>;
using BatchedMqttClientTest = MqttClientTest<BatchedMqttClient>;

// --- mutual TLS, QoS 1 --------------------------------------------------------------------------

TYPED_TEST(MqttClientTest, ExchangesQos1MessagesOverMutualTls) {
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  const auto subscriber = this->add_client(this->options_for(gw, gw.common_name));
  const auto publisher = this->add_client(this->options_for(meter, meter.common_name));
  this->on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(this->eventually([&] { return !subscriber.seen->subacks.empty(); })) << broker->log();
  EXPECT_EQ(this->on_loop([&] { return subscriber.seen->subacks.front(); }),
            (std::pair<std::string, int>{"/device/+/metrics/#", 1}));

  this->on_loop([&] { publisher.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return publisher.client->connected(); })) << broker->log();
  constexpr int kMessages = 20;
  const std::vector<MessageId> ids = this->on_loop([&] {
    std::vector<MessageId> sent;
    for (int i = 0; i < kMessages; ++i) {
      const Result<MessageId> id =
          publisher.client->publish("/device/meter/metrics/power", std::to_string(i), 1);
      EXPECT_TRUE(id.ok());
      sent.push_back(id.ok() ? *id : 0);
    }
    return sent;
  });

  ASSERT_TRUE(this->eventually([&] { return subscriber.seen->messages.size() == kMessages; }))
      << broker->log();
  ASSERT_TRUE(this->eventually([&] { return publisher.seen->delivered.size() == kMessages; }));
  this->on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      const auto& message = subscriber.seen->messages[static_cast<std::size_t>(i)];
      EXPECT_EQ(message.topic, "/device/meter/metrics/power");
      EXPECT_EQ(message.payload, std::to_string(i));
      EXPECT_EQ(message.qos, 1);
      EXPECT_FALSE(message.retain);
    }
    std::vector<MessageId> delivered = publisher.seen->delivered;
    std::sort(delivered.begin(), delivered.end());
    EXPECT_EQ(delivered, ids);
    EXPECT_EQ(publisher.client->stats().delivered, static_cast<std::uint64_t>(kMessages));
    EXPECT_EQ(publisher.client->pending_messages(), 0U);
    EXPECT_TRUE(publisher.seen->connect_failures.empty());
  });
}

TYPED_TEST(MqttClientTest, ConnectsWithAnEncryptedKeyAndItsPassphrase) {
  const Secret passphrase("device key passphrase");
  const ClientFiles meter = this->issue(IdentityKind::kDevice, "m1", "meter", &passphrase);
  auto broker = this->start_broker();
  this->start_loop();
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  options.key_passphrase = std::make_shared<const Secret>(Secret("device key passphrase"));
  const auto client = this->add_client(options);
  this->on_loop([&] { client.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return client.client->connected(); }))
      << this->on_loop([&] { return client.client->last_error(); });
}

// libmosquitto reads the key at connect: the attempt fails, with its own words.
TEST_F(LibmosquittoClientTest, EncryptedKeyWithoutTheRightPassphraseFailsAtConnectWithAReason) {
  const Secret passphrase("device key passphrase");
  const ClientFiles meter = issue(IdentityKind::kDevice, "m1", "meter", &passphrase);
  auto broker = start_broker();
  start_loop();
  MqttClientOptions wrong = options_for(meter, "meter-wrong");
  wrong.key_passphrase = std::make_shared<const Secret>(Secret("not the passphrase"));
  const MqttClientOptions none = options_for(meter, "meter-none");  // must not prompt on a tty
  const auto with_wrong = add_client(wrong);
  const auto with_none = add_client(none);
  on_loop([&] {
    with_wrong.client->start();
    with_none.client->start();
  });
  for (const auto& peer : {with_wrong, with_none}) {
    ASSERT_TRUE(eventually([&] { return !peer.seen->connect_failures.empty(); }));
    const Status reason = on_loop([&] { return peer.seen->connect_failures.front(); });
    EXPECT_EQ(reason.code, ErrorCode::kPermissionDenied) << reason.message;
    EXPECT_NE(reason.message.find("Unable to load client key file"), std::string::npos)
        << reason.message;
    EXPECT_EQ(on_loop([&] { return peer.client->stats().connections; }), 0U);
  }
}

// The batched client loads its key once, in the constructor, and refuses to be made with a key
// it cannot read: the error names the file and the reason, and no tty is ever asked.
TEST_F(BatchedMqttClientTest, EncryptedKeyWithoutTheRightPassphraseIsRefusedByTheConstructor) {
  const Secret passphrase("device key passphrase");
  const ClientFiles meter = issue(IdentityKind::kDevice, "m1", "meter", &passphrase);
  MqttClientOptions wrong = options_for(meter, "meter-wrong");
  wrong.key_passphrase = std::make_shared<const Secret>(Secret("not the passphrase"));
  const MqttClientOptions none = options_for(meter, "meter-none");
  const std::vector<std::pair<MqttClientOptions, std::string>> cases = {
      {wrong, "wrong passphrase for " + meter.key.string()},
      {none, meter.key.string() + " is encrypted and no passphrase was given"}};
  for (const auto& [options, reason] : cases) {
    SCOPED_TRACE(options.client_id);
    try {
      const BatchedMqttClient client(loop_, options, {});
      ADD_FAILURE() << "constructed with a key it cannot read";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied) << e.what();
      EXPECT_NE(std::string_view(e.what()).find(reason), std::string_view::npos) << e.what();
      EXPECT_EQ(std::string_view(e.what()).find("not the passphrase"), std::string_view::npos)
          << "the passphrase leaked into the message";
    }
  }
}

// --- status flag (SPEC §4.1) --------------------------------------------------------------------

TYPED_TEST(MqttClientTest, PublishesRetainedOnlineStatusOnConnect) {
  const ClientFiles meter = this->device("meter");
  const ClientFiles gw = this->gateway();
  auto broker = this->start_broker();
  this->start_loop();
  const auto client =
      this->add_client(this->options_for(meter, meter.common_name, "/device/meter/status"));
  this->on_loop([&] { client.client->start(); });
  // Connected, and the broker acknowledged the status flag.
  ASSERT_TRUE(this->eventually([&] {
    return client.client->connected() && client.client->pending_messages() == 0;
  })) << broker->log();

  auto status = this->watcher(gw, "status-watcher", "/device/meter/status");
  ASSERT_NE(status, nullptr);
  const auto flag = status->wait_for_message(5s);
  ASSERT_TRUE(flag.has_value());
  EXPECT_EQ(flag->payload, "online");
  EXPECT_TRUE(flag->retain);
  EXPECT_EQ(flag->qos, 1);
}

TYPED_TEST(MqttClientTest, AbruptConnectionLossPublishesTheOfflineLastWill) {
  const ClientFiles meter = this->device("meter");
  const ClientFiles gw = this->gateway();
  auto broker = this->start_broker();
  this->start_loop();
  const auto client =
      this->add_client(this->options_for(meter, meter.common_name, "/device/meter/status"));
  this->on_loop([&] { client.client->start(); });
  ASSERT_TRUE(this->eventually(
      [&] { return client.client->connected() && client.client->pending_messages() == 0; }));
  auto status = this->watcher(gw, "status-watcher", "/device/meter/status");
  ASSERT_NE(status, nullptr);
  const auto online = status->wait_for_message(5s);
  ASSERT_TRUE(online.has_value());
  ASSERT_EQ(online->payload, "online");

  // The socket closes without DISCONNECT, as when the device crashes.
  this->on_loop([&] { client.client->abort(); });

  const auto will = status->wait_for_message(10s);
  ASSERT_TRUE(will.has_value()) << broker->log();
  EXPECT_EQ(will->payload, "offline");
  EXPECT_TRUE(broker->wait_for_log("Client " + meter.common_name + " closed its connection", 5s))
      << broker->log();
  // Retained: whoever subscribes later sees the device offline.
  auto late = this->watcher(gw, "late-watcher", "/device/meter/status");
  ASSERT_NE(late, nullptr);
  const auto retained = late->wait_for_message(5s);
  ASSERT_TRUE(retained.has_value());
  EXPECT_EQ(retained->payload, "offline");
  EXPECT_TRUE(retained->retain);
  EXPECT_EQ(this->on_loop([&] { return client.client->state(); }), TypeParam::State::kStopped);
}

TYPED_TEST(MqttClientTest, CleanStopPublishesOfflineThenDisconnects) {
  const ClientFiles meter = this->device("meter");
  const ClientFiles gw = this->gateway();
  auto broker = this->start_broker();
  this->start_loop();
  const auto client =
      this->add_client(this->options_for(meter, meter.common_name, "/device/meter/status"));
  this->on_loop([&] { client.client->start(); });
  ASSERT_TRUE(this->eventually(
      [&] { return client.client->connected() && client.client->pending_messages() == 0; }));

  this->on_loop([&] { client.client->stop(); });
  ASSERT_TRUE(this->eventually([&] { return client.seen->stopped == 1; })) << broker->log();
  // DISCONNECT made the broker discard the Will, so `offline` is the client's own publish.
  EXPECT_TRUE(broker->wait_for_log("Client " + meter.common_name + " disconnected.", 5s))
      << broker->log();
  auto late = this->watcher(gw, "late-watcher", "/device/meter/status");
  ASSERT_NE(late, nullptr);
  const auto retained = late->wait_for_message(5s);
  ASSERT_TRUE(retained.has_value());
  EXPECT_EQ(retained->payload, "offline");
  EXPECT_TRUE(retained->retain);
  this->on_loop([&] {
    EXPECT_EQ(client.client->state(), TypeParam::State::kStopped);
    EXPECT_EQ(client.client->stats().dropped_at_stop, 0U);
    EXPECT_TRUE(client.seen->disconnects.empty()) << "a requested stop is not a loss";
    EXPECT_FALSE(client.client->publish("/device/meter/metrics/power", "1").ok());
  });
}

// --- reconnection -------------------------------------------------------------------------------

TYPED_TEST(MqttClientTest, ReconnectsAfterBrokerRestartAndReceivesWhatWasPublishedMeanwhile) {
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  const auto client =
      this->add_client(this->options_for(gw, gw.common_name, "/smart-gateway/status"));
  this->on_loop([&] {
    ASSERT_TRUE(client.client->subscribe("/platform/control", 1));
    client.client->start();
  });
  ASSERT_TRUE(this->eventually([&] { return client.seen->subacks.size() == 1; })) << broker->log();

  {
    // While the loop is held the client cannot reconnect, so the publish below surely happens
    // while it is away.
    LoopPause pause(this->loop_);
    broker->stop();  // Mosquitto writes the persistent session to disk on SIGTERM
    broker = this->start_broker();
    testing::MqttTestClient publisher(meter.common_name);
    const testing::ConnectOutcome connected =
        publisher.connect(this->member_port_, meter.cafile, meter.chain, meter.key);
    ASSERT_TRUE(connected.accepted()) << connected;
    ASSERT_TRUE(publisher.publish("/platform/control", "while-away", 1)) << publisher.last_error();
  }

  // The broker may deliver what the session kept before it answers the subscription sent again,
  // so wait for both.
  ASSERT_TRUE(this->eventually(
      [&] { return !client.seen->messages.empty() && client.seen->subacks.size() >= 2; }, 30s))
      << broker->log();
  this->on_loop([&] {
    const auto& message = client.seen->messages.front();
    EXPECT_EQ(message.topic, "/platform/control");
    EXPECT_EQ(message.payload, "while-away");
    EXPECT_EQ(message.qos, 1);
    EXPECT_EQ(client.seen->disconnects.size(), 1U);
    EXPECT_EQ(client.seen->connects, 2);
    EXPECT_EQ(client.client->stats().connection_losses, 1U);
    // Subscriptions are sent again on every connect, whatever the broker kept.
    EXPECT_EQ(client.seen->subacks.size(), 2U);
  });
}

// A receiver that acknowledges a message only once it is safe (the bridge's write-behind) holds
// its client's writes meanwhile: a message received while they are held is not acknowledged, so
// the broker sends it again to the next connection of the session; once released, the
// acknowledgement goes out and the broker forgets the message.
TYPED_TEST(MqttClientTest, HeldWritesKeepTheAcknowledgementOfAReceivedMessageUntilReleased) {
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  MqttClientOptions options = this->options_for(gw, gw.common_name);
  options.acknowledge_after_handling = true;
  // One session (the same client id, clean_session false) on successive connections.
  const auto connect_receiver = [&] {
    const auto peer = this->add_client(options);
    this->on_loop([&] {
      EXPECT_TRUE(peer.client->subscribe("/device/+/metrics/#", 1));
      peer.client->start();
    });
    EXPECT_TRUE(this->eventually([&] { return !peer.seen->subacks.empty(); })) << broker->log();
    return peer;
  };
  testing::MqttTestClient publisher(meter.common_name);
  const testing::ConnectOutcome connected =
      publisher.connect(this->member_port_, meter.cafile, meter.chain, meter.key);
  ASSERT_TRUE(connected.accepted()) << connected;
  const auto payloads = [&](const auto& peer) {
    return this->on_loop([&] {
      std::vector<std::string> out;
      for (const auto& message : peer.seen->messages) {
        out.push_back(message.payload);
      }
      return out;
    });
  };

  const auto first = connect_receiver();
  this->on_loop([&] { first.client->hold_writes(true); });
  ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", "held", 1));
  ASSERT_TRUE(this->eventually([&] { return first.seen->messages.size() == 1; })) << broker->log();
  EXPECT_TRUE(this->on_loop([&] { return first.client->writes_held(); }));
  this->on_loop([&] { first.client->abort(); });  // as a crash: the held PUBACK never leaves

  const auto second = connect_receiver();
  ASSERT_TRUE(this->eventually([&] { return !second.seen->messages.empty(); })) << broker->log();
  EXPECT_EQ(payloads(second).front(), "held") << "the broker was acknowledged a held message";
  this->on_loop([&] { second.client->hold_writes(true); });
  ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", "released", 1));
  ASSERT_TRUE(this->eventually([&] { return second.seen->messages.back().payload == "released"; }))
      << broker->log();
  this->on_loop([&] {
    second.client->hold_writes(false);
    second.client->stop();  // DISCONNECT follows the released PUBACKs
  });
  ASSERT_TRUE(this->eventually([&] { return second.seen->stopped == 1; }));

  const auto third = connect_receiver();
  ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", "marker", 1));
  ASSERT_TRUE(this->eventually([&] { return !third.seen->messages.empty(); })) << broker->log();
  // Sent again, the released messages would come before the marker.
  EXPECT_EQ(payloads(third).front(), "marker");
}

// --- batched TLS input and output ---------------------------------------------------------------

TYPED_TEST(MqttClientTest, ResumedReadingDeliversWhatWasReadAheadWithoutNewTraffic) {
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  // The subscriber stops reading at its first message, from inside the library's read.
  this->observed_.push_back(std::make_unique<Observed>());
  Observed* seen = this->observed_.back().get();
  TypeParam* subscriber = this->on_loop([&] {
    MqttClientCallbacks callbacks = observe(*seen);
    callbacks.on_message = [seen, client = &subscriber](const IncomingMessage& message) {
      seen->messages.push_back(
          {std::string(message.topic), std::string(message.payload), message.qos, message.retain});
      (*client)->pause_reading(true);
    };
    this->clients_.push_back(
        std::make_unique<TypeParam>(this->loop_, this->options_for(gw, gw.common_name), callbacks));
    return this->clients_.back().get();
  });
  this->on_loop([&] {
    ASSERT_TRUE(subscriber->subscribe("/device/+/metrics/#", 1));
    subscriber->start();
  });
  ASSERT_TRUE(this->eventually([&] { return !seen->subacks.empty(); })) << broker->log();

  // All of them reach the subscriber's socket while its loop is held, so that its first read
  // takes them all at once: one recv() holds the whole burst.
  constexpr int kMessages = 40;
  testing::MqttTestClient publisher(meter.common_name);
  const testing::ConnectOutcome connected =
      publisher.connect(this->member_port_, meter.cafile, meter.chain, meter.key);
  ASSERT_TRUE(connected.accepted()) << connected;
  {
    const LoopPause pause(this->loop_);
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", std::to_string(i), 1));
    }
    std::this_thread::sleep_for(300ms);  // the broker's writes to the subscriber land
  }
  ASSERT_TRUE(this->eventually([&] { return seen->messages.size() == 1; })) << broker->log();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(this->on_loop([&] { return seen->messages.size(); }), 1U) << "read on while paused";

  // Nothing more arrives on the socket: the rest is already inside the TLS layer.
  this->on_loop([&] {
    subscriber->pause_reading(false);
    // Resumed from here on: the callback pauses at every message otherwise.
  });
  for (int expected = 2; expected <= kMessages; ++expected) {
    ASSERT_TRUE(this->eventually([&] {
      return seen->messages.size() >= static_cast<std::size_t>(expected);
    })) << "stuck at "
        << expected - 1 << " of " << kMessages << "\n"
        << broker->log();
    this->on_loop([&] { subscriber->pause_reading(false); });
  }
  this->on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      EXPECT_EQ(seen->messages[static_cast<std::size_t>(i)].payload, std::to_string(i));
    }
  });
}

TYPED_TEST(MqttClientTest, ABurstLargerThanTheSocketBuffersArrivesWholeAndInOrder) {
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  const auto subscriber = this->add_client(this->options_for(gw, gw.common_name));
  this->on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(this->eventually([&] { return !subscriber.seen->subacks.empty(); })) << broker->log();
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  constexpr int kMessages = 160;
  options.max_inflight_messages = kMessages;  // all of it on the wire at once
  const auto publisher = this->add_client(options);
  this->on_loop([&] { publisher.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return publisher.client->connected(); })) << broker->log();

  // 10 MiB in one round: the socket refuses most of it, and the rest waits for writability.
  const auto payload = [](int i) {
    std::string text(64 * 1024, static_cast<char>('a' + i % 26));
    text.replace(0, std::to_string(i).size(), std::to_string(i));
    return text;
  };
  this->on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(publisher.client->publish("/device/meter/metrics/power", payload(i), 1).ok());
    }
  });
  ASSERT_TRUE(this->eventually([&] { return publisher.seen->delivered.size() == kMessages; }, 60s))
      << publisher.seen->delivered.size() << " of " << kMessages << " acknowledged\n"
      << broker->log();
  ASSERT_TRUE(this->eventually([&] { return subscriber.seen->messages.size() == kMessages; }, 60s))
      << subscriber.seen->messages.size() << " of " << kMessages << " received";
  this->on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      EXPECT_EQ(subscriber.seen->messages[static_cast<std::size_t>(i)].payload, payload(i))
          << "message " << i;
    }
    EXPECT_EQ(publisher.client->pending_messages(), 0U);
  });
}

TYPED_TEST(MqttClientTest, BacksOffWhileTheBrokerIsDownAndResubscribesWhenItLostItsState) {
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  const auto client = this->add_client(this->options_for(gw, gw.common_name));
  this->on_loop([&] {
    ASSERT_TRUE(client.client->subscribe("/platform/control", 1));
    client.client->start();
  });
  ASSERT_TRUE(this->eventually([&] { return client.seen->subacks.size() == 1; })) << broker->log();

  broker->stop();
  // A broker that comes back without its state knows nothing of the subscription.
  fs::remove(this->broker_persistence_file());
  ASSERT_TRUE(this->eventually([&] { return client.seen->connect_failures.size() >= 3; }));
  this->on_loop([&] {
    EXPECT_EQ(client.seen->disconnects.size(), 1U);
    for (const Status& failure : client.seen->connect_failures) {
      EXPECT_EQ(failure.code, ErrorCode::kUnavailable);
      EXPECT_NE(failure.message.find("Connection refused"), std::string::npos) << failure.message;
    }
  });

  broker = this->start_broker();
  ASSERT_TRUE(this->eventually([&] { return client.seen->subacks.size() == 2; }, 30s))
      << broker->log();
  testing::MqttTestClient publisher(meter.common_name);
  ASSERT_TRUE(
      publisher.connect(this->member_port_, meter.cafile, meter.chain, meter.key).accepted());
  ASSERT_TRUE(publisher.publish("/platform/control", "after-restart", 1));
  ASSERT_TRUE(this->eventually([&] { return !client.seen->messages.empty(); })) << broker->log();
  EXPECT_EQ(this->on_loop([&] { return client.seen->messages.front().payload; }), "after-restart");
}

// --- publishes while disconnected ---------------------------------------------------------------

TYPED_TEST(MqttClientTest, QueuesWhileDisconnectedCountsOverflowAndDeliversAfterConnect) {
  const ClientFiles meter = this->device("meter");
  const ClientFiles gw = this->gateway();
  this->start_loop();
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  options.max_pending_messages = 5;
  const auto client = this->add_client(options);
  this->on_loop([&] { client.client->start(); });  // nothing listens yet
  ASSERT_TRUE(this->eventually([&] { return !client.seen->connect_failures.empty(); }));

  this->on_loop([&] {
    for (int i = 0; i < 8; ++i) {
      const Result<MessageId> id =
          client.client->publish("/device/meter/metrics/energy", std::to_string(i), 1);
      if (i < 5) {
        EXPECT_TRUE(id.ok()) << i;
      } else {
        ASSERT_FALSE(id.ok()) << i;
        EXPECT_EQ(id.status().code, ErrorCode::kUnavailable);
        EXPECT_NE(id.status().message.find("full"), std::string::npos) << id.status().message;
      }
    }
    EXPECT_EQ(client.client->stats().queued, 5U);
    EXPECT_EQ(client.client->stats().dropped_queue_full, 3U);
    EXPECT_EQ(client.client->pending_messages(), 5U);
  });

  std::unique_ptr<testing::MosquittoBroker> broker;
  std::unique_ptr<testing::MqttTestClient> metrics;
  {
    LoopPause pause(this->loop_);  // the subscriber must be there before the client connects
    broker = this->start_broker();
    metrics = this->watcher(gw, "metrics-watcher", "/device/+/metrics/#");
    ASSERT_NE(metrics, nullptr);
  }
  for (int i = 0; i < 5; ++i) {
    const auto message = metrics->wait_for_message(10s);
    ASSERT_TRUE(message.has_value()) << "message " << i << "\n" << broker->log();
    EXPECT_EQ(message->payload, std::to_string(i));
    EXPECT_EQ(message->qos, 1);
  }
  ASSERT_TRUE(this->eventually([&] { return client.client->pending_messages() == 0; }));
  EXPECT_EQ(this->on_loop([&] { return client.client->stats().delivered; }), 5U);
}

// --- the window of unacknowledged publishes
// -------------------------------------------------------

// What a scripted broker saw and did, in order; written on its thread, read by the test.
class ScriptLog {
 public:
  void add(std::string event) {
    const std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() const {
    const std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
};

constexpr int kConnectPacket = 1;
constexpr int kPublishPacket = 3;
constexpr int kSubscribePacket = 8;

// A broker that acknowledges one publish at a time: after each PUBACK exactly one more publish
// may arrive, the oldest waiting one, and nothing beyond the window meanwhile.
TYPED_TEST(MqttClientTest, PublishesBeyondTheWindowWaitAndLeaveInOrderAsAcknowledgementsArrive) {
  constexpr int kWindow = 3;
  constexpr int kMessages = 10;
  const ClientFiles meter = this->device("meter");
  ScriptLog log;
  const auto broker =
      this->scripted_broker([&log](testing::ScriptedBroker::Connection& connection, int number) {
        if (number > 1 || !connection.read_until(kConnectPacket, 10s)) {
          return;
        }
        connection.write(testing::mqtt_bytes::connack());
        std::deque<std::uint16_t> unacknowledged;
        int received = 0;
        // The `due` publishes the window allows now, then whatever else comes at once: a
        // publish beyond the window shows up before the next PUBACK.
        const auto read_publishes = [&](int due) {
          for (int i = 0;; ++i) {
            const auto packet = connection.read_until(kPublishPacket, i < due ? 10000ms : 300ms);
            if (!packet) {
              return;
            }
            log.add("publish " + packet->publish_payload());
            unacknowledged.push_back(packet->publish_packet_id());
            ++received;
          }
        };
        read_publishes(kWindow);
        while (!unacknowledged.empty()) {
          log.add("puback");
          connection.write(testing::mqtt_bytes::puback(unacknowledged.front()));
          unacknowledged.pop_front();
          read_publishes(received < kMessages ? 1 : 0);
        }
        connection.drain_until_closed(2s);
      });
  this->start_loop();
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  options.port = broker->port();
  options.max_inflight_messages = kWindow;
  const auto client = this->add_client(options);
  this->on_loop([&] { client.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return client.client->connected(); }))
      << this->on_loop([&] { return client.client->last_error(); });
  const std::vector<MessageId> ids = this->on_loop([&] {
    std::vector<MessageId> sent;
    for (int i = 0; i < kMessages; ++i) {
      const Result<MessageId> id =
          client.client->publish("/device/meter/metrics/power", std::to_string(i), 1);
      EXPECT_TRUE(id.ok());
      sent.push_back(id.ok() ? *id : 0);
    }
    EXPECT_EQ(client.client->pending_messages(), static_cast<std::size_t>(kMessages));
    return sent;
  });
  ASSERT_TRUE(this->eventually([&] { return client.seen->delivered.size() == kMessages; }, 60s))
      << "the broker saw: " << ::testing::PrintToString(log.events());

  std::vector<std::string> expected;
  for (int i = 0; i < kWindow; ++i) {
    expected.push_back("publish " + std::to_string(i));
  }
  for (int i = kWindow; i < kMessages; ++i) {
    expected.emplace_back("puback");
    expected.push_back("publish " + std::to_string(i));
  }
  for (int i = 0; i < kWindow; ++i) {
    expected.emplace_back("puback");
  }
  EXPECT_EQ(log.events(), expected);
  this->on_loop([&] {
    EXPECT_EQ(client.seen->delivered, ids) << "acknowledged in the order sent";
    EXPECT_EQ(client.client->pending_messages(), 0U);
    EXPECT_EQ(client.client->stats().delivered, static_cast<std::uint64_t>(kMessages));
    EXPECT_TRUE(client.seen->disconnects.empty());
  });
}

// The broker dies with a full window unacknowledged and more waiting behind it: after the
// reconnection every message reaches the subscriber (some maybe twice), in the order published.
TYPED_TEST(MqttClientTest, UnacknowledgedPublishesAreSentAgainAfterTheBrokerDied) {
  constexpr int kWindow = 5;
  constexpr int kMessages = 12;
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");
  auto broker = this->start_broker();
  this->start_loop();
  const auto subscriber = this->add_client(this->options_for(gw, gw.common_name));
  this->on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(this->eventually([&] { return subscriber.seen->subacks.size() == 1; }))
      << broker->log();

  // The publisher reaches the broker through a link that can lose what it carries.
  testing::TcpProxy link(this->member_port_);
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  options.port = link.port();
  options.max_inflight_messages = kWindow;
  options.connect_timeout = 2s;
  const auto publisher = this->add_client(options);
  this->on_loop([&] { publisher.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return publisher.client->connected(); })) << broker->log();

  link.cut(testing::TcpProxy::Cut::kBlackhole);  // the publishes go, nothing comes back
  this->on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(
          publisher.client->publish("/device/meter/metrics/power", std::to_string(i), 1).ok());
    }
  });
  std::this_thread::sleep_for(300ms);
  this->on_loop([&] {
    EXPECT_EQ(publisher.client->stats().delivered, 0U);
    EXPECT_EQ(publisher.client->pending_messages(), static_cast<std::size_t>(kMessages));
  });

  broker->stop();  // its end of the link closes: the publisher sees the connection drop
  ASSERT_TRUE(this->eventually([&] { return !publisher.seen->disconnects.empty(); }));
  broker = this->start_broker();
  ASSERT_TRUE(this->eventually([&] { return subscriber.seen->subacks.size() == 2; }, 30s))
      << broker->log();
  link.restore();

  ASSERT_TRUE(this->eventually(
      [&] { return publisher.client->stats().delivered == static_cast<std::uint64_t>(kMessages); },
      30s))
      << this->on_loop([&] { return publisher.client->stats().delivered; }) << " of " << kMessages
      << " acknowledged\n"
      << broker->log();
  std::vector<std::string> first_seen;
  ASSERT_TRUE(this->eventually([&] {
    first_seen.clear();
    for (const auto& message : subscriber.seen->messages) {
      if (std::find(first_seen.begin(), first_seen.end(), message.payload) == first_seen.end()) {
        first_seen.push_back(message.payload);
      }
    }
    return first_seen.size() == kMessages;
  })) << first_seen.size()
      << " of " << kMessages << " received";
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(first_seen[static_cast<std::size_t>(i)], std::to_string(i));
  }
  EXPECT_EQ(this->on_loop([&] { return publisher.client->pending_messages(); }), 0U);
}

// --- what only the batched client does -----------------------------------------------------------

TEST_F(BatchedMqttClientTest, RefusesQos2PublishesAndSubscriptions) {
  const ClientFiles gw = gateway();
  auto broker = start_broker();
  start_loop();
  MqttClientOptions options = options_for(gw, gw.common_name);
  options.default_qos = 2;
  const auto client = add_client(options);
  on_loop([&] {
    const auto refused_as_qos2 = [](const Status& status) {
      EXPECT_EQ(status.code, ErrorCode::kInvalidArgument) << status.message;
      EXPECT_NE(status.message.find("QoS 2 is not supported"), std::string::npos) << status.message;
    };
    const Result<MessageId> explicit_qos = client.client->publish("/platform/control", "x", 2);
    ASSERT_FALSE(explicit_qos.ok());
    refused_as_qos2(explicit_qos.status());
    const Result<MessageId> default_qos = client.client->publish("/platform/control", "x");
    ASSERT_FALSE(default_qos.ok());
    refused_as_qos2(default_qos.status());
    const Result<Done> subscribed = client.client->subscribe("/device/+/status", 2);
    ASSERT_FALSE(subscribed.ok());
    refused_as_qos2(subscribed.status());
    const Result<Done> by_default = client.client->subscribe("/device/+/status");
    ASSERT_FALSE(by_default.ok());
    refused_as_qos2(by_default.status());
    EXPECT_EQ(client.client->pending_messages(), 0U);
    EXPECT_EQ(client.client->stats().queued, 0U);
    // A refused subscription is not remembered for the connection.
    ASSERT_TRUE(client.client->subscribe("/device/+/metrics/#", 1));
    client.client->start();
  });
  ASSERT_TRUE(eventually([&] {
    return client.client->connected() && !client.seen->subacks.empty();
  })) << broker->log();
  std::this_thread::sleep_for(200ms);
  on_loop([&] {
    EXPECT_EQ(client.seen->subacks,
              (std::vector<std::pair<std::string, int>>{{"/device/+/metrics/#", 1}}));
    EXPECT_EQ(client.client->stats().published, 0U);
  });
}

// Every packet one loop round produces leaves in as few TLS records as its bytes need (up to
// 16 KiB each), not in one record per packet: the broker reads and decrypts them together.
TEST_F(BatchedMqttClientTest, ThePacketsOfOneLoopRoundLeaveInAsFewTlsRecordsAsTheirBytesNeed) {
  struct Burst {
    int messages;
    std::size_t payload;
  };
  constexpr Burst kSmall{50, 8};      // 2 KiB in all: one record
  constexpr Burst kLarge{200, 1024};  // some 210 KiB: 13 records of 16 KiB
  const std::string topic = "/device/meter/metrics/power";
  const ClientFiles meter = device("meter");
  struct Seen {
    std::atomic<std::uint64_t> records{0};
    std::atomic<std::size_t> bytes{0};
    std::atomic<bool> whole{false};  // every publish arrived
  };
  Seen small;
  Seen large;
  const auto broker =
      scripted_broker([&](testing::ScriptedBroker::Connection& connection, int number) {
        if (number > 1 || !connection.read_until(kConnectPacket, 10s)) {
          return;
        }
        connection.write(testing::mqtt_bytes::connack());
        for (const auto& [burst, seen] : {std::pair{kSmall, &small}, std::pair{kLarge, &large}}) {
          const std::uint64_t before = connection.records_read();
          std::string pubacks;
          std::size_t bytes = 0;
          for (int i = 0; i < burst.messages; ++i) {
            const auto packet = connection.read_until(kPublishPacket, 10s);
            if (!packet) {
              return;
            }
            bytes += 1 + testing::mqtt_bytes::remaining_length(packet->body.size()).size() +
                     packet->body.size();
            pubacks += testing::mqtt_bytes::puback(packet->publish_packet_id());
          }
          seen->records = connection.records_read() - before;
          seen->bytes = bytes;
          seen->whole = true;
          connection.write(pubacks);
        }
        connection.drain_until_closed(2s);
      });
  start_loop();
  MqttClientOptions options = options_for(meter, meter.common_name);
  options.port = broker->port();
  options.max_inflight_messages = kLarge.messages;  // the whole burst on the wire at once
  const auto client = add_client(options);
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] { return client.client->connected(); }))
      << on_loop([&] { return client.client->last_error(); });
  for (const Burst& burst : {kSmall, kLarge}) {
    on_loop([&] {  // one round
      for (int i = 0; i < burst.messages; ++i) {
        EXPECT_TRUE(client.client->publish(topic, std::string(burst.payload, 'p'), 1).ok());
      }
    });
    ASSERT_TRUE(eventually([&] { return client.client->pending_messages() == 0; }));
  }
  ASSERT_TRUE(small.whole && large.whole);
  constexpr std::size_t kRecordBytes = 16 * 1024;
  EXPECT_EQ(small.records, 1U) << small.bytes << " bytes";
  const std::size_t needed = (large.bytes + kRecordBytes - 1) / kRecordBytes;
  EXPECT_GE(large.records, needed);
  EXPECT_LE(large.records, needed + 1) << large.bytes << " bytes";
}

// A broker packet larger than max_incoming_packet_bytes ends the connection as soon as its
// fixed header announces it, before any of it is buffered; one of exactly the limit is taken.
TEST_F(BatchedMqttClientTest, APacketLargerThanTheClientAcceptsEndsTheConnectionAndItReconnects) {
  constexpr std::size_t kLimit = 1024;
  const std::string topic = "/platform/control";
  const auto publish_of_size = [&topic](std::size_t remaining_length, char fill) {
    return testing::mqtt_bytes::publish(topic,
                                        std::string(remaining_length - 2 - topic.size(), fill), 0);
  };
  const ClientFiles gw = gateway();
  const auto broker =
      scripted_broker([&](testing::ScriptedBroker::Connection& connection, int number) {
        if (!connection.read_until(kConnectPacket, 10s)) {
          return;
        }
        std::string bytes = testing::mqtt_bytes::connack();
        if (number == 1) {
          bytes += publish_of_size(kLimit, 'a');      // taken
          bytes += publish_of_size(kLimit + 1, 'b');  // one byte too many
        } else if (number == 2) {
          // Only the fixed header of a 200 MiB packet: the client must not wait for the rest.
          bytes += std::string(1, '\x30') + testing::mqtt_bytes::remaining_length(200U << 20U);
        } else {
          bytes += testing::mqtt_bytes::publish(topic, "after", 0);
        }
        connection.write(bytes);
        connection.drain_until_closed(number == 2 ? 30s : 2s);
      });
  start_loop();
  MqttClientOptions options = options_for(gw, gw.common_name);
  options.port = broker->port();
  options.max_incoming_packet_bytes = kLimit;
  options.keepalive = 60s;  // only the client's own check may end the second connection
  const auto client = add_client(options);
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] {
    return !client.seen->messages.empty() && client.seen->messages.back().payload == "after";
  })) << on_loop([&] { return client.client->last_error(); });
  on_loop([&] {
    ASSERT_EQ(client.seen->messages.size(), 2U);
    EXPECT_EQ(client.seen->messages.front().payload, std::string(kLimit - 2 - topic.size(), 'a'));
    ASSERT_EQ(client.seen->disconnects.size(), 2U);
    for (const Status& reason : client.seen->disconnects) {
      EXPECT_NE(reason.message.find("malformed packet (packet larger than this client accepts)"),
                std::string::npos)
          << reason.message;
    }
    EXPECT_NE(client.client->last_error().find("malformed"), std::string::npos);
    EXPECT_EQ(client.client->stats().connections, 3U);
    EXPECT_TRUE(client.client->connected());
  });
}

// A broker that resets the connection while the client has paused reading: the poll reports the
// dead socket in every round whatever is asked of it, so the client must end the connection at
// once rather than wait for the resume (or two keepalives) and spin meanwhile.
TEST_F(BatchedMqttClientTest, AConnectionResetWhileReadingIsPausedEndsAtOnceWithoutSpinning) {
  std::atomic<bool> unread_sent{false};
  const ClientFiles gw = gateway();
  const auto broker =
      scripted_broker([&unread_sent](testing::ScriptedBroker::Connection& connection, int number) {
        if (!connection.read_until(kConnectPacket, 10s)) {
          return;
        }
        connection.write(testing::mqtt_bytes::connack());
        if (number == 1) {
          // The client's publish stays unread: closing then sends a reset, not a FIN.
          for (int i = 0; i < 500 && !unread_sent.load(); ++i) {
            std::this_thread::sleep_for(10ms);
          }
          std::this_thread::sleep_for(200ms);
          return;
        }
        connection.drain_until_closed(5s);
      });
  start_loop();
  MqttClientOptions options = options_for(gw, gw.common_name);
  options.port = broker->port();
  options.keepalive = 60s;  // only the reset may end the connection within the test
  const auto client = add_client(options);
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] { return client.client->connected(); }));
  on_loop([&] {
    client.client->pause_reading(true);
    ASSERT_TRUE(client.client->publish("/platform/metrics/x", "never read", 1));
  });
  const std::uint64_t wakeups_before = loop_.wakeups();
  unread_sent = true;
  ASSERT_TRUE(eventually([&] { return !client.seen->disconnects.empty(); }, 10s))
      << "a reset connection went unnoticed while reading was paused";
  const std::uint64_t wakeups = loop_.wakeups() - wakeups_before;
  on_loop([&] {
    EXPECT_NE(client.seen->disconnects.front().message.find("lost"), std::string::npos)
        << client.seen->disconnects.front().message;
  });
  EXPECT_LT(wakeups, 500U) << "the loop spun";
  // Still paused, it connects again: a CONNACK is always read.
  EXPECT_TRUE(eventually([&] { return broker->connections() >= 2 && client.client->connected(); }));
}

// What no honest broker sends, each on the first connection of a scripted broker that is
// honest from the second on: the client ends the connection saying why, never crashes, and
// carries on with the next one.
struct MalformedCase {
  std::string name;
  std::string before_connack;  // written before the CONNACK
  std::string after_connack;   // written after it (after the SUBACK is asked for)
  std::string reason;          // what last_error() says within "malformed packet (...)"
};

void PrintTo(const MalformedCase& c, std::ostream* out) {
  *out << c.name;
}

class BatchedMalformedPacketTest : public BatchedMqttClientTest,
                                   public ::testing::WithParamInterface<MalformedCase> {};

TEST_P(BatchedMalformedPacketTest, EndsTheConnectionAsMalformedAndReconnects) {
  const MalformedCase& hostile = GetParam();
  const ClientFiles gw = gateway();
  const auto broker =
      scripted_broker([&hostile](testing::ScriptedBroker::Connection& connection, int number) {
        if (!connection.read_until(kConnectPacket, 10s)) {
          return;
        }
        if (number == 1) {
          connection.write(hostile.before_connack + testing::mqtt_bytes::connack());
          const auto subscribe = connection.read_until(kSubscribePacket, 10s);
          if (subscribe && !hostile.after_connack.empty()) {
            connection.write(hostile.after_connack);
          }
        } else {
          connection.write(testing::mqtt_bytes::connack());
          const auto subscribe = connection.read_until(kSubscribePacket, 10s);
          if (subscribe) {
            const auto id =
                static_cast<std::uint16_t>((static_cast<unsigned char>(subscribe->body[0]) << 8) |
                                           static_cast<unsigned char>(subscribe->body[1]));
            connection.write(testing::mqtt_bytes::suback(id, 1) +
                             testing::mqtt_bytes::publish("/platform/control", "alive", 1, 7));
          }
        }
        connection.drain_until_closed(2s);
      });
  start_loop();
  MqttClientOptions options = options_for(gw, gw.common_name);
  options.port = broker->port();
  const auto client = add_client(options);
  on_loop([&] {
    ASSERT_TRUE(client.client->subscribe("/platform/control", 1));
    client.client->start();
  });
  ASSERT_TRUE(eventually([&] { return !client.seen->messages.empty(); }))
      << on_loop([&] { return client.client->last_error(); });
  on_loop([&] {
    ASSERT_EQ(client.seen->messages.size(), 1U) << "something of the hostile connection passed";
    EXPECT_EQ(client.seen->messages.front().payload, "alive");
    const std::string expected = "malformed packet (" + hostile.reason + ")";
    EXPECT_NE(client.client->last_error().find(expected), std::string::npos)
        << client.client->last_error();
    // Before CONNACK it is a failed attempt, after it a lost connection.
    const std::vector<Status>& ended =
        hostile.before_connack.empty() ? client.seen->disconnects : client.seen->connect_failures;
    ASSERT_EQ(ended.size(), 1U);
    EXPECT_EQ(ended.front().code, ErrorCode::kUnavailable);
    EXPECT_NE(ended.front().message.find(expected), std::string::npos) << ended.front().message;
    EXPECT_EQ(client.seen->disconnects.size() + client.seen->connect_failures.size(), 1U);
    EXPECT_TRUE(client.client->connected());
    EXPECT_EQ(client.seen->subacks,
              (std::vector<std::pair<std::string, int>>{{"/platform/control", 1}}));
  });
}

std::vector<MalformedCase> malformed_cases() {
  using testing::mqtt_bytes::packet;
  using testing::mqtt_bytes::publish;
  const std::string topic_body = std::string("\0\x11/platform/control\0\x01x", 22);
  return {
      {"RemainingLengthOfFiveBytes", "", std::string("\x30\xff\xff\xff\xff\x7f", 6),
       "remaining length longer than four bytes"},
      {"PublishWithQos3", "", packet(0x36, topic_body), "PUBLISH with QoS 3"},
      {"PublishWithQos2", "", packet(0x34, topic_body), "PUBLISH with QoS 2 to a QoS 0/1 client"},
      {"PublishWithAWildcardInItsTopic", "", publish("/device/+/metrics", "x", 1, 1),
       "PUBLISH topic is not a valid topic name"},
      {"PublishWithAnEmptyTopic", "", publish("", "x", 0),
       "PUBLISH topic is not a valid topic name"},
      {"PacketBeforeConnack", publish("/platform/control", "early", 0), "",
       "a packet before CONNACK"},
      {"SecondConnack", "", testing::mqtt_bytes::connack(), "a second CONNACK"},
      {"SubackWithReturnCode3", "", testing::mqtt_bytes::suback(1, 0x03),
       "SUBACK return code other than 0, 1, 2 or 0x80"},
      {"TruncatedPublish", "", packet(0x30, std::string("\0\x20/platform", 11)),
       "PUBLISH shorter than its topic and packet identifier"},
  };
}

INSTANTIATE_TEST_SUITE_P(Hostile, BatchedMalformedPacketTest,
                         ::testing::ValuesIn(malformed_cases()),
                         [](const ::testing::TestParamInfo<MalformedCase>& param) {
                           return param.param.name;
                         });

// --- failed connections: reported, and never a busy loop -----------------------------------------

TYPED_TEST(MqttClientTest, WrongCaFailsWithAClearReasonAndBacksOffWithoutSpinning) {
  const ClientFiles meter = this->device("meter");
  // A CA of another hierarchy: it did not sign the broker's certificate.
  const fs::path stranger_ca =
      pki::Pki::create(this->tmp_ / "other-pki", Secret(testing::kTestPassphrase))
          .authority_cert_path("root");
  auto broker = this->start_broker();
  this->start_loop();
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  options.cafile = stranger_ca;
  options.reconnect.initial = 50ms;
  options.reconnect.max = 200ms;
  const auto client = this->add_client(options);

  const std::uint64_t wakeups_before = this->loop_.wakeups();
  this->on_loop([&] { client.client->start(); });
  std::this_thread::sleep_for(1500ms);
  const std::uint64_t wakeups = this->loop_.wakeups() - wakeups_before;

  this->on_loop([&] {
    const MqttClientStats& stats = client.client->stats();
    // Waits of at least 25, 50, 100, then 100 ms each: about 16 attempts fit in 1.5 s.
    EXPECT_GE(stats.connect_attempts, 3U);
    EXPECT_LE(stats.connect_attempts, 20U);
    EXPECT_EQ(stats.connections, 0U);
    ASSERT_FALSE(client.seen->connect_failures.empty());
    for (const Status& failure : client.seen->connect_failures) {
      EXPECT_EQ(failure.code, ErrorCode::kPermissionDenied);
      EXPECT_NE(failure.message.find("certificate verify failed"), std::string::npos)
          << failure.message;
    }
  });
  EXPECT_LT(wakeups, 1000U) << "the loop spun";
}

TYPED_TEST(MqttClientTest, BrokerRefusingTheClientCertificateIsReportedAsSuch) {
  // A device of member m2 on m1's member listener: the broker, not the client, says no.
  const ClientFiles stranger = this->device("meter", "m2");
  auto broker = this->start_broker();
  this->start_loop();
  MqttClientOptions options = this->options_for(stranger, stranger.common_name);
  options.cafile =
      this->root_ca_;  // the client accepts the broker; only the broker's verdict counts
  const auto client = this->add_client(options);
  this->on_loop([&] { client.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return client.seen->connect_failures.size() >= 2; }));
  this->on_loop([&] {
    for (const Status& failure : client.seen->connect_failures) {
      // The broker's TLS alert names the reason, unless its close overtook the alert.
      const bool alert = failure.code == ErrorCode::kPermissionDenied &&
                         failure.message.find("alert") != std::string::npos;
      const bool closed =
          failure.code == ErrorCode::kUnavailable &&
          failure.message.find("after the TLS handshake, before CONNACK") != std::string::npos;
      EXPECT_TRUE(alert || closed) << failure.message;
    }
    EXPECT_EQ(client.client->stats().connections, 0U);
  });
}

// libmosquitto 2.0 takes SSL_ERROR_SYSCALL during the handshake (a reset connection) for "try
// again" and reports success on every call: the client must see the dead socket itself.
TYPED_TEST(MqttClientTest, ListenerClosingDuringTheTlsHandshakeIsAFailureNotASpin) {
  const ClientFiles meter = this->device("meter");
  this->start_loop();
  for (const RawListener::Mode mode :
       {RawListener::Mode::kCloseAtOnce, RawListener::Mode::kResetAtOnce,
        RawListener::Mode::kResetAfterHello}) {
    SCOPED_TRACE(mode_name(mode));
    RawListener listener(mode);
    MqttClientOptions options = this->options_for(meter, meter.common_name);
    options.port = listener.port();
    options.reconnect.initial = 50ms;
    options.reconnect.max = 200ms;
    const auto client = this->add_client(options);

    const std::uint64_t wakeups_before = this->loop_.wakeups();
    this->on_loop([&] { client.client->start(); });
    ASSERT_TRUE(this->eventually([&] { return client.seen->connect_failures.size() >= 3; }, 5s))
        << "accepted " << listener.accepted() << " connection(s)";
    const std::uint64_t wakeups = this->loop_.wakeups() - wakeups_before;
    this->on_loop([&] {
      client.client->abort();
      for (const Status& failure : client.seen->connect_failures) {
        EXPECT_EQ(failure.code, ErrorCode::kUnavailable);
        // Which one depends on whether the close arrives before the connect is seen to finish.
        const bool during_handshake =
            failure.message.find("closed the connection during the TLS handshake") !=
            std::string::npos;
        const bool reset = failure.message.find("Connection reset by peer") != std::string::npos;
        EXPECT_TRUE(during_handshake || reset) << failure.message;
      }
    });
    EXPECT_LT(wakeups, 500U) << "the loop spun";
  }
}

TYPED_TEST(MqttClientTest, SilentListenerTimesOutAndRetries) {
  const ClientFiles meter = this->device("meter");
  RawListener listener(RawListener::Mode::kSilent);
  this->start_loop();
  MqttClientOptions options = this->options_for(meter, meter.common_name);
  options.port = listener.port();
  options.connect_timeout = 300ms;
  options.reconnect.initial = 50ms;
  options.reconnect.max = 100ms;
  const auto client = this->add_client(options);
  this->on_loop([&] { client.client->start(); });
  ASSERT_TRUE(this->eventually([&] { return client.seen->connect_failures.size() >= 2; }, 10s));
  this->on_loop([&] {
    const Status& failure = client.seen->connect_failures.front();
    EXPECT_EQ(failure.code, ErrorCode::kUnavailable);
    EXPECT_NE(failure.message.find("within 300 ms (waiting for the TLS handshake)"),
              std::string::npos)
        << failure.message;
  });
}

// --- scale ---------------------------------------------------------------------------------------

std::size_t thread_count() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/task")) {
    ++count;
  }
  return count;
}

TYPED_TEST(MqttClientTest, ThousandClientsOnOneLoopThreadEachDeliverAQos1Message) {
  constexpr int kClients = 1000;
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  files.rlim_cur = files.rlim_max;  // the broker, a child, inherits it too
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
  // Per client: its socket and libmosquitto's unused socket pair; the broker needs one each.
  if (files.rlim_cur < 4 * kClients + 200) {
    GTEST_SKIP() << "RLIMIT_NOFILE " << files.rlim_cur << " is too low for " << kClients
                 << " clients";
  }
  const ClientFiles gw = this->gateway();
  const ClientFiles meter = this->device("meter");  // one certificate, distinct client ids
  auto broker = this->start_broker();
  this->start_loop();
  const std::thread::id loop_thread = this->on_loop([] { return std::this_thread::get_id(); });
  const std::size_t threads_before = thread_count();

  const auto subscriber = this->add_client(this->options_for(gw, gw.common_name));
  this->on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(this->eventually([&] { return subscriber.seen->subacks.size() == 1; }));

  std::vector<typename TestFixture::Peer> devices;
  for (int i = 0; i < kClients; ++i) {
    MqttClientOptions options = this->options_for(meter, fmt::format("meter-{:04}", i),
                                                  fmt::format("/device/d{:04}/status", i));
    options.connect_timeout = 30s;  // a thousand handshakes at once queue up at the broker
    devices.push_back(this->add_client(options));
  }
  this->on_loop([&] {
    for (int i = 0; i < kClients; ++i) {
      const auto& peer = devices[static_cast<std::size_t>(i)];
      // Queued now, sent once connected.
      ASSERT_TRUE(peer.client->publish(fmt::format("/device/d{:04}/metrics/power", i),
                                       std::to_string(i), 1));
      peer.client->start();
    }
  });

  const bool all_received = this->eventually(
      [&] { return subscriber.seen->messages.size() >= static_cast<std::size_t>(kClients); }, 240s);
  const auto [connected, delivered, failures] = this->on_loop([&] {
    std::size_t up = 0;
    std::size_t acked = 0;
    std::uint64_t failed = 0;
    for (const auto& peer : devices) {
      up += peer.client->connected() ? 1U : 0U;
      acked += peer.client->stats().delivered;
      failed += peer.client->stats().connect_failures;
    }
    return std::tuple{up, acked, failed};
  });
  ASSERT_TRUE(all_received) << this->on_loop([&] { return subscriber.seen->messages.size(); })
                            << " of " << kClients << " messages; " << connected << " connected; "
                            << failures << " failed attempts";
  std::set<std::string> payloads;
  this->on_loop([&] {
    for (const auto& message : subscriber.seen->messages) {
      payloads.insert(message.payload);
      EXPECT_EQ(message.qos, 1);
    }
  });
  EXPECT_EQ(payloads.size(), static_cast<std::size_t>(kClients)) << "each client's message once";
  EXPECT_EQ(connected, static_cast<std::size_t>(kClients));
  ASSERT_TRUE(this->eventually([&] {
    std::size_t acked = 0;
    for (const auto& peer : devices) {
      acked += peer.client->stats().delivered;
    }
    return acked == static_cast<std::size_t>(kClients);
  }));
  // No thread per connection: every callback ran on the one loop thread, and the process did
  // not grow threads.
  this->on_loop([&] {
    for (const auto& peer : devices) {
      EXPECT_EQ(peer.seen->threads, std::set<std::thread::id>{loop_thread});
    }
  });
  EXPECT_LE(thread_count(), threads_before + 1);
  std::printf("%d clients: %zu delivered, %llu failed attempts on the way\n", kClients, delivered,
              static_cast<unsigned long long>(failures));
}

}  // namespace
}  // namespace recmesh::mqtt
