// The MQTT client layer against real Mosquitto brokers rendered by `recmesh broker-config`, with
// certificates of our PKI: mutual TLS, the status flag and its Last Will, reconnection with
// backoff after a broker restart, the bounded queue while disconnected, connection failures
// that libmosquitto alone would spin on, and a thousand clients on one loop thread (SPEC §4, §8).
#include "recmesh/mqtt/mqtt_client.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
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
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/pki/pki.hpp"

#include "free_port.hpp"
#include "mosquitto_broker.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
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

// For gtest's names of the parameterised tests.
void PrintTo(RawListener::Mode mode, std::ostream* out) {
  *out << mode_name(mode);
}

class MqttClientTest : public ::testing::Test {
 protected:
  struct Peer {
    MqttClient* client = nullptr;
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

  Peer add_client(const MqttClientOptions& options) {
    observed_.push_back(std::make_unique<Observed>());
    Observed* seen = observed_.back().get();
    MqttClient* client = on_loop([&] {
      clients_.push_back(std::make_unique<MqttClient>(loop_, options, observe(*seen)));
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
  std::vector<std::unique_ptr<Observed>> observed_;   // outlives the clients below
  std::vector<std::unique_ptr<MqttClient>> clients_;  // touched on the loop thread only
};

// --- mutual TLS, QoS 1 --------------------------------------------------------------------------

TEST_F(MqttClientTest, ExchangesQos1MessagesOverMutualTls) {
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");
  auto broker = start_broker();
  start_loop();
  const Peer subscriber = add_client(options_for(gw, gw.common_name));
  const Peer publisher = add_client(options_for(meter, meter.common_name));
  on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(eventually([&] { return !subscriber.seen->subacks.empty(); })) << broker->log();
  EXPECT_EQ(on_loop([&] { return subscriber.seen->subacks.front(); }),
            (std::pair<std::string, int>{"/device/+/metrics/#", 1}));

  on_loop([&] { publisher.client->start(); });
  ASSERT_TRUE(eventually([&] { return publisher.client->connected(); })) << broker->log();
  constexpr int kMessages = 20;
  const std::vector<MessageId> ids = on_loop([&] {
    std::vector<MessageId> sent;
    for (int i = 0; i < kMessages; ++i) {
      const Result<MessageId> id =
          publisher.client->publish("/device/meter/metrics/power", std::to_string(i), 1);
      EXPECT_TRUE(id.ok());
      sent.push_back(id.ok() ? *id : 0);
    }
    return sent;
  });

  ASSERT_TRUE(eventually([&] { return subscriber.seen->messages.size() == kMessages; }))
      << broker->log();
  ASSERT_TRUE(eventually([&] { return publisher.seen->delivered.size() == kMessages; }));
  on_loop([&] {
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

TEST_F(MqttClientTest, ConnectsWithAnEncryptedKeyAndItsPassphrase) {
  const Secret passphrase("device key passphrase");
  const ClientFiles meter = issue(IdentityKind::kDevice, "m1", "meter", &passphrase);
  auto broker = start_broker();
  start_loop();
  MqttClientOptions options = options_for(meter, meter.common_name);
  options.key_passphrase = std::make_shared<const Secret>(Secret("device key passphrase"));
  const Peer client = add_client(options);
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] { return client.client->connected(); }))
      << on_loop([&] { return client.client->last_error(); });
}

TEST_F(MqttClientTest, EncryptedKeyWithoutTheRightPassphraseFailsWithAReason) {
  const Secret passphrase("device key passphrase");
  const ClientFiles meter = issue(IdentityKind::kDevice, "m1", "meter", &passphrase);
  auto broker = start_broker();
  start_loop();
  MqttClientOptions wrong = options_for(meter, "meter-wrong");
  wrong.key_passphrase = std::make_shared<const Secret>(Secret("not the passphrase"));
  const MqttClientOptions none = options_for(meter, "meter-none");  // must not prompt on a tty
  const Peer with_wrong = add_client(wrong);
  const Peer with_none = add_client(none);
  on_loop([&] {
    with_wrong.client->start();
    with_none.client->start();
  });
  for (const Peer& peer : {with_wrong, with_none}) {
    ASSERT_TRUE(eventually([&] { return !peer.seen->connect_failures.empty(); }));
    const Status reason = on_loop([&] { return peer.seen->connect_failures.front(); });
    EXPECT_EQ(reason.code, ErrorCode::kPermissionDenied) << reason.message;
    EXPECT_NE(reason.message.find("Unable to load client key file"), std::string::npos)
        << reason.message;
    EXPECT_EQ(on_loop([&] { return peer.client->stats().connections; }), 0U);
  }
}

// --- status flag (SPEC §4.1) --------------------------------------------------------------------

TEST_F(MqttClientTest, PublishesRetainedOnlineStatusOnConnect) {
  const ClientFiles meter = device("meter");
  const ClientFiles gw = gateway();
  auto broker = start_broker();
  start_loop();
  const Peer client = add_client(options_for(meter, meter.common_name, "/device/meter/status"));
  on_loop([&] { client.client->start(); });
  // Connected, and the broker acknowledged the status flag.
  ASSERT_TRUE(eventually([&] {
    return client.client->connected() && client.client->pending_messages() == 0;
  })) << broker->log();

  auto status = watcher(gw, "status-watcher", "/device/meter/status");
  ASSERT_NE(status, nullptr);
  const auto flag = status->wait_for_message(5s);
  ASSERT_TRUE(flag.has_value());
  EXPECT_EQ(flag->payload, "online");
  EXPECT_TRUE(flag->retain);
  EXPECT_EQ(flag->qos, 1);
}

TEST_F(MqttClientTest, AbruptConnectionLossPublishesTheOfflineLastWill) {
  const ClientFiles meter = device("meter");
  const ClientFiles gw = gateway();
  auto broker = start_broker();
  start_loop();
  const Peer client = add_client(options_for(meter, meter.common_name, "/device/meter/status"));
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually(
      [&] { return client.client->connected() && client.client->pending_messages() == 0; }));
  auto status = watcher(gw, "status-watcher", "/device/meter/status");
  ASSERT_NE(status, nullptr);
  const auto online = status->wait_for_message(5s);
  ASSERT_TRUE(online.has_value());
  ASSERT_EQ(online->payload, "online");

  // The socket closes without DISCONNECT, as when the device crashes.
  on_loop([&] { client.client->abort(); });

  const auto will = status->wait_for_message(10s);
  ASSERT_TRUE(will.has_value()) << broker->log();
  EXPECT_EQ(will->payload, "offline");
  EXPECT_TRUE(broker->wait_for_log("Client " + meter.common_name + " closed its connection", 5s))
      << broker->log();
  // Retained: whoever subscribes later sees the device offline.
  auto late = watcher(gw, "late-watcher", "/device/meter/status");
  ASSERT_NE(late, nullptr);
  const auto retained = late->wait_for_message(5s);
  ASSERT_TRUE(retained.has_value());
  EXPECT_EQ(retained->payload, "offline");
  EXPECT_TRUE(retained->retain);
  EXPECT_EQ(on_loop([&] { return client.client->state(); }), MqttClient::State::kStopped);
}

TEST_F(MqttClientTest, CleanStopPublishesOfflineThenDisconnects) {
  const ClientFiles meter = device("meter");
  const ClientFiles gw = gateway();
  auto broker = start_broker();
  start_loop();
  const Peer client = add_client(options_for(meter, meter.common_name, "/device/meter/status"));
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually(
      [&] { return client.client->connected() && client.client->pending_messages() == 0; }));

  on_loop([&] { client.client->stop(); });
  ASSERT_TRUE(eventually([&] { return client.seen->stopped == 1; })) << broker->log();
  // DISCONNECT made the broker discard the Will, so `offline` is the client's own publish.
  EXPECT_TRUE(broker->wait_for_log("Client " + meter.common_name + " disconnected.", 5s))
      << broker->log();
  auto late = watcher(gw, "late-watcher", "/device/meter/status");
  ASSERT_NE(late, nullptr);
  const auto retained = late->wait_for_message(5s);
  ASSERT_TRUE(retained.has_value());
  EXPECT_EQ(retained->payload, "offline");
  EXPECT_TRUE(retained->retain);
  on_loop([&] {
    EXPECT_EQ(client.client->state(), MqttClient::State::kStopped);
    EXPECT_EQ(client.client->stats().dropped_at_stop, 0U);
    EXPECT_TRUE(client.seen->disconnects.empty()) << "a requested stop is not a loss";
    EXPECT_FALSE(client.client->publish("/device/meter/metrics/power", "1").ok());
  });
}

// --- reconnection -------------------------------------------------------------------------------

TEST_F(MqttClientTest, ReconnectsAfterBrokerRestartAndReceivesWhatWasPublishedMeanwhile) {
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");
  auto broker = start_broker();
  start_loop();
  const Peer client = add_client(options_for(gw, gw.common_name, "/smart-gateway/status"));
  on_loop([&] {
    ASSERT_TRUE(client.client->subscribe("/platform/control", 1));
    client.client->start();
  });
  ASSERT_TRUE(eventually([&] { return client.seen->subacks.size() == 1; })) << broker->log();

  {
    // While the loop is held the client cannot reconnect, so the publish below surely happens
    // while it is away.
    LoopPause pause(loop_);
    broker->stop();  // Mosquitto writes the persistent session to disk on SIGTERM
    broker = start_broker();
    testing::MqttTestClient publisher(meter.common_name);
    const testing::ConnectOutcome connected =
        publisher.connect(member_port_, meter.cafile, meter.chain, meter.key);
    ASSERT_TRUE(connected.accepted()) << connected;
    ASSERT_TRUE(publisher.publish("/platform/control", "while-away", 1)) << publisher.last_error();
  }

  ASSERT_TRUE(eventually([&] { return !client.seen->messages.empty(); }, 30s)) << broker->log();
  on_loop([&] {
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
TEST_F(MqttClientTest, HeldWritesKeepTheAcknowledgementOfAReceivedMessageUntilReleased) {
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");
  auto broker = start_broker();
  start_loop();
  MqttClientOptions options = options_for(gw, gw.common_name);
  options.acknowledge_after_handling = true;
  // One session (the same client id, clean_session false) on successive connections.
  const auto connect_receiver = [&] {
    const Peer peer = add_client(options);
    on_loop([&] {
      EXPECT_TRUE(peer.client->subscribe("/device/+/metrics/#", 1));
      peer.client->start();
    });
    EXPECT_TRUE(eventually([&] { return !peer.seen->subacks.empty(); })) << broker->log();
    return peer;
  };
  testing::MqttTestClient publisher(meter.common_name);
  const testing::ConnectOutcome connected =
      publisher.connect(member_port_, meter.cafile, meter.chain, meter.key);
  ASSERT_TRUE(connected.accepted()) << connected;
  const auto payloads = [&](const Peer& peer) {
    return on_loop([&] {
      std::vector<std::string> out;
      for (const auto& message : peer.seen->messages) {
        out.push_back(message.payload);
      }
      return out;
    });
  };

  const Peer first = connect_receiver();
  on_loop([&] { first.client->hold_writes(true); });
  ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", "held", 1));
  ASSERT_TRUE(eventually([&] { return first.seen->messages.size() == 1; })) << broker->log();
  EXPECT_TRUE(on_loop([&] { return first.client->writes_held(); }));
  on_loop([&] { first.client->abort(); });  // as a crash: the held PUBACK never leaves

  const Peer second = connect_receiver();
  ASSERT_TRUE(eventually([&] { return !second.seen->messages.empty(); })) << broker->log();
  EXPECT_EQ(payloads(second).front(), "held") << "the broker was acknowledged a held message";
  on_loop([&] { second.client->hold_writes(true); });
  ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", "released", 1));
  ASSERT_TRUE(eventually([&] { return second.seen->messages.back().payload == "released"; }))
      << broker->log();
  on_loop([&] {
    second.client->hold_writes(false);
    second.client->stop();  // DISCONNECT follows the released PUBACKs
  });
  ASSERT_TRUE(eventually([&] { return second.seen->stopped == 1; }));

  const Peer third = connect_receiver();
  ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", "marker", 1));
  ASSERT_TRUE(eventually([&] { return !third.seen->messages.empty(); })) << broker->log();
  // Sent again, the released messages would come before the marker.
  EXPECT_EQ(payloads(third).front(), "marker");
}

// --- batched TLS input and output ---------------------------------------------------------------

TEST_F(MqttClientTest, ResumedReadingDeliversWhatWasReadAheadWithoutNewTraffic) {
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");
  auto broker = start_broker();
  start_loop();
  // The subscriber stops reading at its first message, from inside the library's read.
  observed_.push_back(std::make_unique<Observed>());
  Observed* seen = observed_.back().get();
  MqttClient* subscriber = on_loop([&] {
    MqttClientCallbacks callbacks = observe(*seen);
    callbacks.on_message = [seen, client = &subscriber](const IncomingMessage& message) {
      seen->messages.push_back(
          {std::string(message.topic), std::string(message.payload), message.qos, message.retain});
      (*client)->pause_reading(true);
    };
    clients_.push_back(
        std::make_unique<MqttClient>(loop_, options_for(gw, gw.common_name), callbacks));
    return clients_.back().get();
  });
  on_loop([&] {
    ASSERT_TRUE(subscriber->subscribe("/device/+/metrics/#", 1));
    subscriber->start();
  });
  ASSERT_TRUE(eventually([&] { return !seen->subacks.empty(); })) << broker->log();

  // All of them reach the subscriber's socket while its loop is held, so that its first read
  // takes them all at once: one recv() holds the whole burst.
  constexpr int kMessages = 40;
  testing::MqttTestClient publisher(meter.common_name);
  const testing::ConnectOutcome connected =
      publisher.connect(member_port_, meter.cafile, meter.chain, meter.key);
  ASSERT_TRUE(connected.accepted()) << connected;
  {
    const LoopPause pause(loop_);
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(publisher.publish("/device/meter/metrics/power", std::to_string(i), 1));
    }
    std::this_thread::sleep_for(300ms);  // the broker's writes to the subscriber land
  }
  ASSERT_TRUE(eventually([&] { return seen->messages.size() == 1; })) << broker->log();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(on_loop([&] { return seen->messages.size(); }), 1U) << "read on while paused";

  // Nothing more arrives on the socket: the rest is already inside the TLS layer.
  on_loop([&] {
    subscriber->pause_reading(false);
    // Resumed from here on: the callback pauses at every message otherwise.
  });
  for (int expected = 2; expected <= kMessages; ++expected) {
    ASSERT_TRUE(eventually([&] {
      return seen->messages.size() >= static_cast<std::size_t>(expected);
    })) << "stuck at "
        << expected - 1 << " of " << kMessages << "\n"
        << broker->log();
    on_loop([&] { subscriber->pause_reading(false); });
  }
  on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      EXPECT_EQ(seen->messages[static_cast<std::size_t>(i)].payload, std::to_string(i));
    }
  });
}

TEST_F(MqttClientTest, ABurstLargerThanTheSocketBuffersArrivesWholeAndInOrder) {
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");
  auto broker = start_broker();
  start_loop();
  const Peer subscriber = add_client(options_for(gw, gw.common_name));
  on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(eventually([&] { return !subscriber.seen->subacks.empty(); })) << broker->log();
  MqttClientOptions options = options_for(meter, meter.common_name);
  constexpr int kMessages = 160;
  options.max_inflight_messages = kMessages;  // all of it on the wire at once
  const Peer publisher = add_client(options);
  on_loop([&] { publisher.client->start(); });
  ASSERT_TRUE(eventually([&] { return publisher.client->connected(); })) << broker->log();

  // 10 MiB in one round: the socket refuses most of it, and the rest waits for writability.
  const auto payload = [](int i) {
    std::string text(64 * 1024, static_cast<char>('a' + i % 26));
    text.replace(0, std::to_string(i).size(), std::to_string(i));
    return text;
  };
  on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(publisher.client->publish("/device/meter/metrics/power", payload(i), 1).ok());
    }
  });
  ASSERT_TRUE(eventually([&] { return publisher.seen->delivered.size() == kMessages; }, 60s))
      << publisher.seen->delivered.size() << " of " << kMessages << " acknowledged\n"
      << broker->log();
  ASSERT_TRUE(eventually([&] { return subscriber.seen->messages.size() == kMessages; }, 60s))
      << subscriber.seen->messages.size() << " of " << kMessages << " received";
  on_loop([&] {
    for (int i = 0; i < kMessages; ++i) {
      EXPECT_EQ(subscriber.seen->messages[static_cast<std::size_t>(i)].payload, payload(i))
          << "message " << i;
    }
    EXPECT_EQ(publisher.client->pending_messages(), 0U);
  });
}

TEST_F(MqttClientTest, BacksOffWhileTheBrokerIsDownAndResubscribesWhenItLostItsState) {
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");
  auto broker = start_broker();
  start_loop();
  const Peer client = add_client(options_for(gw, gw.common_name));
  on_loop([&] {
    ASSERT_TRUE(client.client->subscribe("/platform/control", 1));
    client.client->start();
  });
  ASSERT_TRUE(eventually([&] { return client.seen->subacks.size() == 1; })) << broker->log();

  broker->stop();
  // A broker that comes back without its state knows nothing of the subscription.
  fs::remove(broker_persistence_file());
  ASSERT_TRUE(eventually([&] { return client.seen->connect_failures.size() >= 3; }));
  on_loop([&] {
    EXPECT_EQ(client.seen->disconnects.size(), 1U);
    for (const Status& failure : client.seen->connect_failures) {
      EXPECT_EQ(failure.code, ErrorCode::kUnavailable);
      EXPECT_NE(failure.message.find("Connection refused"), std::string::npos) << failure.message;
    }
  });

  broker = start_broker();
  ASSERT_TRUE(eventually([&] { return client.seen->subacks.size() == 2; }, 30s)) << broker->log();
  testing::MqttTestClient publisher(meter.common_name);
  ASSERT_TRUE(publisher.connect(member_port_, meter.cafile, meter.chain, meter.key).accepted());
  ASSERT_TRUE(publisher.publish("/platform/control", "after-restart", 1));
  ASSERT_TRUE(eventually([&] { return !client.seen->messages.empty(); })) << broker->log();
  EXPECT_EQ(on_loop([&] { return client.seen->messages.front().payload; }), "after-restart");
}

// --- publishes while disconnected ---------------------------------------------------------------

TEST_F(MqttClientTest, QueuesWhileDisconnectedCountsOverflowAndDeliversAfterConnect) {
  const ClientFiles meter = device("meter");
  const ClientFiles gw = gateway();
  start_loop();
  MqttClientOptions options = options_for(meter, meter.common_name);
  options.max_pending_messages = 5;
  const Peer client = add_client(options);
  on_loop([&] { client.client->start(); });  // nothing listens yet
  ASSERT_TRUE(eventually([&] { return !client.seen->connect_failures.empty(); }));

  on_loop([&] {
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
    LoopPause pause(loop_);  // the subscriber must be there before the client connects
    broker = start_broker();
    metrics = watcher(gw, "metrics-watcher", "/device/+/metrics/#");
    ASSERT_NE(metrics, nullptr);
  }
  for (int i = 0; i < 5; ++i) {
    const auto message = metrics->wait_for_message(10s);
    ASSERT_TRUE(message.has_value()) << "message " << i << "\n" << broker->log();
    EXPECT_EQ(message->payload, std::to_string(i));
    EXPECT_EQ(message->qos, 1);
  }
  ASSERT_TRUE(eventually([&] { return client.client->pending_messages() == 0; }));
  EXPECT_EQ(on_loop([&] { return client.client->stats().delivered; }), 5U);
}

// --- failed connections: reported, and never a busy loop -----------------------------------------

TEST_F(MqttClientTest, WrongCaFailsWithAClearReasonAndBacksOffWithoutSpinning) {
  const ClientFiles meter = device("meter");
  // A CA of another hierarchy: it did not sign the broker's certificate.
  const fs::path stranger_ca =
      pki::Pki::create(tmp_ / "other-pki", Secret(testing::kTestPassphrase))
          .authority_cert_path("root");
  auto broker = start_broker();
  start_loop();
  MqttClientOptions options = options_for(meter, meter.common_name);
  options.cafile = stranger_ca;
  options.reconnect.initial = 50ms;
  options.reconnect.max = 200ms;
  const Peer client = add_client(options);

  const std::uint64_t wakeups_before = loop_.wakeups();
  on_loop([&] { client.client->start(); });
  std::this_thread::sleep_for(1500ms);
  const std::uint64_t wakeups = loop_.wakeups() - wakeups_before;

  on_loop([&] {
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

TEST_F(MqttClientTest, BrokerRefusingTheClientCertificateIsReportedAsSuch) {
  // A device of member m2 on m1's member listener: the broker, not the client, says no.
  const ClientFiles stranger = device("meter", "m2");
  auto broker = start_broker();
  start_loop();
  MqttClientOptions options = options_for(stranger, stranger.common_name);
  options.cafile = root_ca_;  // the client accepts the broker; only the broker's verdict counts
  const Peer client = add_client(options);
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] { return client.seen->connect_failures.size() >= 2; }));
  on_loop([&] {
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
class ClosingListenerTest : public MqttClientTest,
                            public ::testing::WithParamInterface<RawListener::Mode> {};

TEST_P(ClosingListenerTest, ListenerClosingDuringTheTlsHandshakeIsAFailureNotASpin) {
  const ClientFiles meter = device("meter");
  RawListener listener(GetParam());
  start_loop();
  MqttClientOptions options = options_for(meter, meter.common_name);
  options.port = listener.port();
  options.reconnect.initial = 50ms;
  options.reconnect.max = 200ms;
  const Peer client = add_client(options);

  const std::uint64_t wakeups_before = loop_.wakeups();
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] { return client.seen->connect_failures.size() >= 3; }, 5s))
      << "accepted " << listener.accepted() << " connection(s)";
  const std::uint64_t wakeups = loop_.wakeups() - wakeups_before;
  on_loop([&] {
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

INSTANTIATE_TEST_SUITE_P(Close, ClosingListenerTest,
                         ::testing::Values(RawListener::Mode::kCloseAtOnce,
                                           RawListener::Mode::kResetAtOnce,
                                           RawListener::Mode::kResetAfterHello),
                         [](const ::testing::TestParamInfo<RawListener::Mode>& param) {
                           return std::string(mode_name(param.param));
                         });

TEST_F(MqttClientTest, SilentListenerTimesOutAndRetries) {
  const ClientFiles meter = device("meter");
  RawListener listener(RawListener::Mode::kSilent);
  start_loop();
  MqttClientOptions options = options_for(meter, meter.common_name);
  options.port = listener.port();
  options.connect_timeout = 300ms;
  options.reconnect.initial = 50ms;
  options.reconnect.max = 100ms;
  const Peer client = add_client(options);
  on_loop([&] { client.client->start(); });
  ASSERT_TRUE(eventually([&] { return client.seen->connect_failures.size() >= 2; }, 10s));
  on_loop([&] {
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

TEST_F(MqttClientTest, ThousandClientsOnOneLoopThreadEachDeliverAQos1Message) {
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
  const ClientFiles gw = gateway();
  const ClientFiles meter = device("meter");  // one certificate, distinct client ids
  auto broker = start_broker();
  start_loop();
  const std::thread::id loop_thread = on_loop([] { return std::this_thread::get_id(); });
  const std::size_t threads_before = thread_count();

  const Peer subscriber = add_client(options_for(gw, gw.common_name));
  on_loop([&] {
    ASSERT_TRUE(subscriber.client->subscribe("/device/+/metrics/#", 1));
    subscriber.client->start();
  });
  ASSERT_TRUE(eventually([&] { return subscriber.seen->subacks.size() == 1; }));

  std::vector<Peer> devices;
  for (int i = 0; i < kClients; ++i) {
    MqttClientOptions options =
        options_for(meter, fmt::format("meter-{:04}", i), fmt::format("/device/d{:04}/status", i));
    options.connect_timeout = 30s;  // a thousand handshakes at once queue up at the broker
    devices.push_back(add_client(options));
  }
  on_loop([&] {
    for (int i = 0; i < kClients; ++i) {
      const Peer& peer = devices[static_cast<std::size_t>(i)];
      // Queued now, sent once connected.
      ASSERT_TRUE(peer.client->publish(fmt::format("/device/d{:04}/metrics/power", i),
                                       std::to_string(i), 1));
      peer.client->start();
    }
  });

  const bool all_received = eventually(
      [&] { return subscriber.seen->messages.size() >= static_cast<std::size_t>(kClients); }, 240s);
  const auto [connected, delivered, failures] = on_loop([&] {
    std::size_t up = 0;
    std::size_t acked = 0;
    std::uint64_t failed = 0;
    for (const Peer& peer : devices) {
      up += peer.client->connected() ? 1U : 0U;
      acked += peer.client->stats().delivered;
      failed += peer.client->stats().connect_failures;
    }
    return std::tuple{up, acked, failed};
  });
  ASSERT_TRUE(all_received) << on_loop([&] { return subscriber.seen->messages.size(); }) << " of "
                            << kClients << " messages; " << connected << " connected; " << failures
                            << " failed attempts";
  std::set<std::string> payloads;
  on_loop([&] {
    for (const auto& message : subscriber.seen->messages) {
      payloads.insert(message.payload);
      EXPECT_EQ(message.qos, 1);
    }
  });
  EXPECT_EQ(payloads.size(), static_cast<std::size_t>(kClients)) << "each client's message once";
  EXPECT_EQ(connected, static_cast<std::size_t>(kClients));
  ASSERT_TRUE(eventually([&] {
    std::size_t acked = 0;
    for (const Peer& peer : devices) {
      acked += peer.client->stats().delivered;
    }
    return acked == static_cast<std::size_t>(kClients);
  }));
  // No thread per connection: every callback ran on the one loop thread, and the process did
  // not grow threads.
  on_loop([&] {
    for (const Peer& peer : devices) {
      EXPECT_EQ(peer.seen->threads, std::set<std::thread::id>{loop_thread});
    }
  });
  EXPECT_LE(thread_count(), threads_before + 1);
  std::printf("%d clients: %zu delivered, %llu failed attempts on the way\n", kClients, delivered,
              static_cast<unsigned long long>(failures));
}

}  // namespace
}  // namespace recmesh::mqtt
