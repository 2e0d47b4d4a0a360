// Shared by the recmesh-guard integration tests: a PKI, brokers rendered with the plugin, a
// threaded libmosquitto client that can set a Will and a keep-alive, and the Security Manager's
// side (GuardPublisher) pushing bundles.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <mosquitto.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/guard_publisher.hpp"
#include "recmesh/policy/policy_matcher.hpp"

#include "child_process.hpp"
#include "forged_certificate.hpp"
#include "free_port.hpp"
#include "mosquitto_broker.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"

namespace recmesh::guard_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Cert {
  std::string cn;
  fs::path chain;
  fs::path key;
};

struct Received {
  std::string topic;
  std::string payload;
  bool retain = false;
};

struct ClientOptions {
  int keepalive = 30;
  std::optional<std::pair<std::string, std::string>> will;  // topic, payload
  bool will_retain = false;
  std::string username;
};

// A libmosquitto client on its own network thread (mosquitto_loop_start).
class GuardClient {
 public:
  using Options = ClientOptions;

  explicit GuardClient(std::string id) : id_(std::move(id)) {
    static std::once_flag once;
    std::call_once(once, [] { mosquitto_lib_init(); });
    mosq_ = mosquitto_new(id_.c_str(), true, this);
    if (mosq_ == nullptr) {
      throw std::runtime_error("mosquitto_new failed");
    }
    mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
      static_cast<GuardClient*>(self)->on_connect(rc);
    });
    mosquitto_disconnect_callback_set(mosq_, [](mosquitto*, void* self, int) {
      static_cast<GuardClient*>(self)->on_disconnect();
    });
    mosquitto_subscribe_callback_set(mosq_, [](mosquitto*, void* self, int mid, int, const int* q) {
      static_cast<GuardClient*>(self)->on_subscribe(mid, q[0]);
    });
    mosquitto_publish_callback_set(mosq_, [](mosquitto*, void* self, int mid) {
      static_cast<GuardClient*>(self)->on_publish(mid);
    });
    mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
      static_cast<GuardClient*>(self)->on_message(m);
    });
  }
  GuardClient(const GuardClient&) = delete;
  GuardClient& operator=(const GuardClient&) = delete;
  ~GuardClient() {
    if (started_) {
      mosquitto_disconnect(mosq_);
      mosquitto_loop_stop(mosq_, true);
    }
    mosquitto_destroy(mosq_);
  }

  // True when the broker accepted the CONNECT.
  bool connect(int port, const fs::path& cafile, const Cert& cert, const Options& options = {},
               std::chrono::milliseconds timeout = 5s) {
    mosquitto_tls_set(mosq_, cafile.c_str(), nullptr, cert.chain.c_str(), cert.key.c_str(),
                      nullptr);
    mosquitto_tls_opts_set(mosq_, 1, "tlsv1.3", nullptr);
    if (options.will) {
      mosquitto_will_set(mosq_, options.will->first.c_str(),
                         static_cast<int>(options.will->second.size()), options.will->second.data(),
                         1, options.will_retain);
    }
    if (!options.username.empty()) {
      mosquitto_username_pw_set(mosq_, options.username.c_str(), nullptr);
    }
    if (mosquitto_connect_async(mosq_, "127.0.0.1", port, options.keepalive) != MOSQ_ERR_SUCCESS) {
      return false;
    }
    started_ = mosquitto_loop_start(mosq_) == MOSQ_ERR_SUCCESS;
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return connack_.has_value() || disconnected_; });
    return connack_ == 0 && !disconnected_;
  }

  // True when the SUBACK grants the subscription.
  bool subscribe(const std::string& filter, int qos = 1, std::chrono::milliseconds timeout = 5s) {
    int mid = 0;
    if (mosquitto_subscribe(mosq_, &mid, filter.c_str(), qos) != MOSQ_ERR_SUCCESS) {
      return false;
    }
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return subacks_.contains(mid); });
    return subacks_.contains(mid) && subacks_[mid] != 0x80;
  }

  // QoS 1: true once the broker acknowledged it (a denied publish is acknowledged too).
  bool publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retain = false, std::chrono::milliseconds timeout = 5s) {
    int mid = 0;
    if (mosquitto_publish(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                          payload.data(), qos, retain) != MOSQ_ERR_SUCCESS) {
      return false;
    }
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return published_.contains(mid) || disconnected_; });
    return published_.contains(mid);
  }
  // Fire and forget (floods).
  bool publish_async(const std::string& topic, const std::string& payload, int qos = 0,
                     bool retain = false) {
    return mosquitto_publish(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                             payload.data(), qos, retain) == MOSQ_ERR_SUCCESS;
  }

  std::optional<Received> wait_message(std::chrono::milliseconds timeout = 3s) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !messages_.empty(); });
    if (messages_.empty()) {
      return std::nullopt;
    }
    Received m = std::move(messages_.front());
    messages_.pop_front();
    return m;
  }
  std::vector<Received> take_all() {
    std::lock_guard lock(mutex_);
    std::vector<Received> out(messages_.begin(), messages_.end());
    messages_.clear();
    return out;
  }
  bool wait_disconnected(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return disconnected_; });
    return disconnected_;
  }
  bool disconnected() {
    std::lock_guard lock(mutex_);
    return disconnected_;
  }
  // Drops the TCP connection without DISCONNECT, so the broker sends the Will.
  void drop() {
    mosquitto_loop_stop(mosq_, true);
    started_ = false;
    // Shutting the socket down makes the broker see the connection fail.
    const int fd = mosquitto_socket(mosq_);
    if (fd >= 0) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  const std::string& id() const { return id_; }

 private:
  void on_connect(int rc) {
    std::lock_guard lock(mutex_);
    connack_ = rc;
    if (rc != 0) {
      disconnected_ = true;
    }
    cv_.notify_all();
  }
  void on_disconnect() {
    std::lock_guard lock(mutex_);
    disconnected_ = true;
    cv_.notify_all();
    mosquitto_reconnect_delay_set(mosq_, 3600, 3600, false);  // no automatic reconnect
  }
  void on_subscribe(int mid, int granted) {
    std::lock_guard lock(mutex_);
    subacks_[mid] = granted;
    cv_.notify_all();
  }
  void on_publish(int mid) {
    std::lock_guard lock(mutex_);
    published_.insert({mid, true});
    cv_.notify_all();
  }
  void on_message(const mosquitto_message* m) {
    std::lock_guard lock(mutex_);
    messages_.push_back(
        {m->topic,
         std::string(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen)),
         m->retain});
    cv_.notify_all();
  }

  std::string id_;
  mosquitto* mosq_ = nullptr;
  bool started_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<int> connack_;
  bool disconnected_ = false;
  std::map<int, int> subacks_;
  std::map<int, bool> published_;
  std::deque<Received> messages_;
};

inline std::string guard_plugin_path() {
  return RECMESH_GUARD_PLUGIN;
}

// A PKI with r1/{m1,m2}, brokers rendered with recmesh-guard, certificates on demand.
class GuardFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::let_mosquitto_through(tmp_.path());
    pki::Pki pki = pki::Pki::create(pki_dir(), Secret(testing::kTestPassphrase));
    pki.add_rec("r1");
    pki.add_member("r1", "m1");
    pki.add_member("r1", "m2");
    root_ca_ = pki.authority_cert_path("root");
  }

  fs::path pki_dir() const { return tmp_ / "pki"; }
  const fs::path& root_ca() const { return root_ca_; }

  Cert issue(pki::IdentityKind kind, const std::string& rec, const std::string& member,
             const std::string& name) {
    pki::Pki pki =
        pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(testing::kTestPassphrase));
    pki::IssueRequest request;
    request.identity = pki::Identity::make(kind, rec, member, name);
    for (const auto& record : pki.certificates()) {
      if (record.common_name == request.identity.common_name() &&
          record.status == pki::CertificateStatus::kValid) {
        const auto files = pki.files_of(record);
        return {record.common_name, files.chain, files.key};
      }
    }
    const pki::IssuedCertificate issued = pki.issue(request);
    return {issued.record.common_name, issued.files.chain, issued.files.key};
  }
  // A copy of the current files of `cert` (renewal rewrites them in place).
  Cert keep_copy(const Cert& cert, const std::string& tag) {
    const fs::path dir = tmp_ / ("kept-" + tag);
    fs::create_directories(dir);
    fs::copy_file(cert.chain, dir / "chain.pem");
    fs::copy_file(cert.key, dir / "key.pem");
    fs::permissions(dir / "key.pem", fs::perms::owner_read | fs::perms::owner_write);
    return {cert.cn, dir / "chain.pem", dir / "key.pem"};
  }
  Cert renew(const std::string& cn) {
    pki::Pki pki =
        pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(testing::kTestPassphrase));
    const auto issued = pki.renew(cn);
    return {cn, issued.files.chain, issued.files.key};
  }
  Cert device(const std::string& member, const std::string& name) {
    return issue(pki::IdentityKind::kDevice, "r1", member, name);
  }
  Cert gateway(const std::string& member) {
    return issue(pki::IdentityKind::kGateway, "r1", member, "");
  }
  Cert bridge(const std::string& member) {
    return issue(pki::IdentityKind::kBridge, "r1", member, "");
  }
  Cert service(const std::string& name) { return issue(pki::IdentityKind::kService, "", "", name); }
  // The Security Manager's certificate, issued by broker-config; its key is in the PKI.
  Cert secmgr() {
    pki::Pki pki = pki::Pki::open(pki_dir(), pki::Pki::Access::kReadOnly);
    const auto record = pki.find_by_common_name("ems_secmgr");
    const auto files = pki.files_of(record);
    return {record.common_name, files.chain, files.key};
  }

  // A certificate the member CA of `member` signs with an arbitrary CN (what a compromised or
  // careless member CA could do): made with the openssl tool and the CA's own key.
  Cert forge_member_certificate(const std::string& member, const std::string& cn) {
    const auto forged =
        testing::forge_client_certificate(pki_dir() / "ca" / ("member_r1_" + member),
                                          testing::kTestPassphrase, cn, tmp_ / ("forged-" + cn));
    return {cn, forged.cert, forged.key};
  }

  void run_ok(const std::vector<std::string>& argv) {
    const auto result = testing::run_command(argv);
    if (result.exit_code != 0) {
      throw std::runtime_error(argv.front() + " failed: " + result.err);
    }
  }

  void recmesh_ok(const std::vector<std::string>& args) {
    const testing::CommandResult result = testing::run_recmesh(args);
    if (result.exit_code != 0) {
      throw std::runtime_error("recmesh " + args.front() + " failed: " + result.err);
    }
  }

  struct LocalBroker {
    int member = 0, bridge = 0, management = 0;
    fs::path dir;
    std::unique_ptr<testing::MosquittoBroker> process;
  };
  struct CentralBroker {
    int ems = 0, bridge = 0;
    fs::path dir;
    std::unique_ptr<testing::MosquittoBroker> process;
  };

  LocalBroker local_broker(const std::string& member = "m1") {
    LocalBroker b;
    b.member = testing::free_tcp_port();
    b.bridge = testing::free_tcp_port();
    b.management = testing::free_tcp_port();
    b.dir = tmp_ / ("local-" + member);
    recmesh_ok({"broker-config", "--pki", pki_dir().string(), "--local", "--rec", "r1", "--member",
                member, "--member-port", std::to_string(b.member), "--bridge-port",
                std::to_string(b.bridge), "--mgmt-port", std::to_string(b.management), "--out",
                b.dir.string(), "--guard-plugin", guard_plugin_path()});
    start(b);
    return b;
  }
  void start(LocalBroker& b) {
    b.process = std::make_unique<testing::MosquittoBroker>(
        b.dir / "mosquitto.conf", std::vector<int>{b.member, b.bridge, b.management});
  }

  CentralBroker central_broker() {
    CentralBroker b;
    b.ems = testing::free_tcp_port();
    b.bridge = testing::free_tcp_port();
    b.dir = tmp_ / "central";
    recmesh_ok({"broker-config", "--pki", pki_dir().string(), "--central", "--ems-port",
                std::to_string(b.ems), "--bridge-port", std::to_string(b.bridge), "--out",
                b.dir.string(), "--guard-plugin", guard_plugin_path()});
    b.process = std::make_unique<testing::MosquittoBroker>(b.dir / "mosquitto.conf",
                                                           std::vector<int>{b.ems, b.bridge});
    return b;
  }

  // The Security Manager's publisher to a broker's guard at `port`.
  std::unique_ptr<policy::GuardPublisher> publisher(int port, const std::string& client_id) {
    const Cert cert = secmgr();
    mqtt::MqttClientOptions options;
    options.port = port;
    options.client_id = client_id;
    options.cafile = root_ca_;
    options.certfile = cert.chain;
    options.keyfile = cert.key;
    return std::make_unique<policy::GuardPublisher>(
        policy::BundleSigner(crypto::JwsSigner::from_files(cert.chain, cert.key)), options);
  }

  // The derived matrix of `broker`, as a bundle with `sequence`.
  static policy::PolicyBundle matrix_bundle(const policy::BrokerId& broker,
                                            const std::vector<policy::MemberRegistration>& members,
                                            std::uint64_t sequence) {
    auto bundle = policy::derived_bundle(broker, members, sequence, 1);
    if (!bundle) {
      throw std::runtime_error(bundle.status().message);
    }
    return std::move(bundle).value();
  }

  static void push_ok(policy::GuardPublisher& publisher, const policy::PolicyBundle& bundle) {
    auto response = publisher.push(bundle);
    ASSERT_TRUE(response.ok()) << response.status().message;
    ASSERT_TRUE(response->accepted) << response->reason;
  }

  testing::TempDir tmp_;
  fs::path root_ca_;
};

// Waits, bounded, until `done` holds.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

}  // namespace recmesh::guard_test
