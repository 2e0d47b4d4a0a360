#include "mqtt_probe.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <set>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <mosquitto.h>
#include <openssl/ssl.h>

#include "free_port.hpp"

namespace recmesh::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kKeepAliveSeconds = 30;
constexpr int kVerifyPeer = 1;  // SSL_VERIFY_PEER, as mosquitto_tls_opts_set expects it
constexpr int kSubscriptionRefused = 0x80;
constexpr auto kLoopSlice = std::chrono::milliseconds(50);
// Each mosquitto_loop call handles at most one packet or waits up to one slice; this caps the
// rounds of any wait even if the loop keeps returning at once.
constexpr long kMaxLoopRounds = 100000;
constexpr std::size_t kMaxLogLines = 16;

void ensure_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    mosquitto_lib_init();
    std::atexit([] { mosquitto_lib_cleanup(); });
  });
}

void require_ok(int rc, const char* what) {
  if (rc != MOSQ_ERR_SUCCESS) {
    throw std::runtime_error(std::string(what) + ": " + mosquitto_strerror(rc));
  }
}

// True when the socket failed to connect, was reset, or the peer closed its side: before the
// TLS handshake has completed, each of these means it never will.
bool socket_failed(int fd) {
  if (fd < 0) {
    return true;
  }
  pollfd entry{fd, POLLIN | POLLOUT | POLLRDHUP, 0};
  return ::poll(&entry, 1, 0) == 1 &&
         (entry.revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP)) != 0;
}

std::string describe(int rc, int saved_errno) {
  if (rc == MOSQ_ERR_ERRNO) {
    return std::string("system error: ") + std::strerror(saved_errno);
  }
  return mosquitto_strerror(rc);
}

}  // namespace

std::string_view to_string(ConnectResult result) {
  switch (result) {
    case ConnectResult::kAccepted:
      return "accepted";
    case ConnectResult::kRefused:
      return "refused";
    case ConnectResult::kUnreachable:
      return "unreachable";
    case ConnectResult::kTimedOut:
      return "timed out";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& out, const ConnectOutcome& outcome) {
  out << to_string(outcome.result);
  if (!outcome.detail.empty()) {
    out << " (" << outcome.detail << ')';
  }
  return out;
}

// What the callbacks learn; the libmosquitto handle points back here as its user data.
struct MqttTestClient::Session {
  std::unique_ptr<mosquitto, decltype(&mosquitto_destroy)> handle{nullptr, &mosquitto_destroy};
  bool connack = false;
  int connack_code = -1;
  bool connected = false;
  bool lost = false;  // disconnected, or the loop reported an error
  bool handshake_done = false;
  std::string last_error;
  std::vector<std::string> log_lines;  // libmosquitto's errors and warnings
  std::set<int> completed_publishes;
  std::map<int, int> granted_qos;
  std::deque<ReceivedMessage> inbox;

  static Session& of(void* user_data) { return *static_cast<Session*>(user_data); }

  static void on_connect(mosquitto*, void* user_data, int rc) {
    Session& s = of(user_data);
    s.connack = true;
    s.handshake_done = true;
    s.connack_code = rc;
    s.connected = rc == 0;
    if (rc != 0) {
      s.last_error = std::string("CONNACK: ") + mosquitto_connack_string(rc);
    }
  }
  static void on_disconnect(mosquitto*, void* user_data, int rc) {
    Session& s = of(user_data);
    s.connected = false;
    s.lost = true;
    if (rc != 0 && s.last_error.empty()) {
      s.last_error = std::string("disconnected: ") + mosquitto_strerror(rc);
    }
  }
  static void on_publish(mosquitto*, void* user_data, int mid) {
    of(user_data).completed_publishes.insert(mid);
  }
  static void on_subscribe(mosquitto*, void* user_data, int mid, int count, const int* granted) {
    of(user_data).granted_qos[mid] = count > 0 ? granted[0] : kSubscriptionRefused;
  }
  static void on_message(mosquitto*, void* user_data, const mosquitto_message* message) {
    ReceivedMessage received;
    received.topic = message->topic;
    if (message->payloadlen > 0) {
      received.payload.assign(static_cast<const char*>(message->payload),
                              static_cast<std::size_t>(message->payloadlen));
    }
    received.qos = message->qos;
    received.retain = message->retain;
    of(user_data).inbox.push_back(std::move(received));
  }
  static void on_log(mosquitto*, void* user_data, int level, const char* text) {
    Session& s = of(user_data);
    if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) != 0 && s.log_lines.size() < kMaxLogLines) {
      s.log_lines.emplace_back(text);
    }
  }

  void note_handshake() {
    const auto* ssl = static_cast<const SSL*>(mosquitto_ssl_get(handle.get()));
    if (ssl != nullptr && SSL_is_init_finished(ssl) == 1) {
      handshake_done = true;
    }
  }

  // Runs the network loop until `done` holds, the connection is lost or `timeout` passes.
  bool pump(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (long round = 0; round < kMaxLoopRounds; ++round) {
      if (done()) {
        return true;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (lost || left.count() <= 0) {
        return false;
      }
      const int rc =
          mosquitto_loop(handle.get(), static_cast<int>(std::min(left, kLoopSlice).count()), 1);
      const int saved_errno = errno;
      note_handshake();
      if (rc != MOSQ_ERR_SUCCESS) {
        lost = true;
        connected = false;
        if (last_error.empty()) {
          last_error = describe(rc, saved_errno);
        }
        return done();
      }
      // Asynchronously connected, libmosquitto keeps retrying a handshake on a dead socket and
      // reports success each time; notice the failure here instead.
      if (!handshake_done && socket_failed(mosquitto_socket(handle.get()))) {
        lost = true;
        if (last_error.empty()) {
          last_error = "connection closed before the TLS handshake completed";
        }
        return done();
      }
    }
    return done();
  }

  std::string detail() const {
    std::string text = last_error;
    // Unknown when the handshake and the failure both happen inside one mosquitto_loop call.
    if (handshake_done) {
      text += "; after the TLS handshake completed";
    }
    for (const auto& line : log_lines) {
      text += "; " + line;
    }
    return text;
  }
};

MqttTestClient::MqttTestClient(const std::string& client_id, bool clean_session)
    : session_(std::make_unique<Session>()) {
  ensure_library();
  session_->handle.reset(mosquitto_new(client_id.c_str(), clean_session, session_.get()));
  if (!session_->handle) {
    throw std::runtime_error("mosquitto_new failed for client " + client_id);
  }
  mosquitto* m = session_->handle.get();
  mosquitto_connect_callback_set(m, &Session::on_connect);
  mosquitto_disconnect_callback_set(m, &Session::on_disconnect);
  mosquitto_publish_callback_set(m, &Session::on_publish);
  mosquitto_subscribe_callback_set(m, &Session::on_subscribe);
  mosquitto_message_callback_set(m, &Session::on_message);
  mosquitto_log_callback_set(m, &Session::on_log);
}

MqttTestClient::~MqttTestClient() {
  disconnect();
}

ConnectOutcome MqttTestClient::connect(int port, const fs::path& cafile, const fs::path& cert,
                                       const fs::path& key, std::chrono::milliseconds timeout) {
  Session& s = *session_;
  mosquitto* m = s.handle.get();
  require_ok(mosquitto_tls_set(m, cafile.c_str(), nullptr, cert.c_str(), key.c_str(), nullptr),
             "mosquitto_tls_set");
  require_ok(mosquitto_tls_opts_set(m, kVerifyPeer, "tlsv1.3", nullptr), "mosquitto_tls_opts_set");

  ConnectOutcome outcome;
  // Asynchronous, so that the TLS handshake too runs under the deadline of pump().
  const int rc = mosquitto_connect_async(m, "127.0.0.1", port, kKeepAliveSeconds);
  const int saved_errno = errno;
  if (rc != MOSQ_ERR_SUCCESS) {
    s.last_error = describe(rc, saved_errno);
    const bool no_listener = rc == MOSQ_ERR_ERRNO && saved_errno == ECONNREFUSED;
    outcome.result = no_listener ? ConnectResult::kUnreachable : ConnectResult::kRefused;
    outcome.detail = s.detail();
    return outcome;
  }
  const bool decided = s.pump([&s] { return s.connack; }, timeout);
  if (decided && s.connack_code == 0) {
    outcome.result = ConnectResult::kAccepted;
  } else if (s.lost && !s.handshake_done && !accepts_tcp(port)) {
    // Asked only after a failure, so that successful probes leave no extra line in the log.
    s.last_error = "nothing listens on port " + std::to_string(port);
    outcome.result = ConnectResult::kUnreachable;
  } else if (decided || s.lost) {
    outcome.result = ConnectResult::kRefused;
  } else {
    s.last_error = "no CONNACK within " + std::to_string(timeout.count()) + " ms";
    outcome.result = ConnectResult::kTimedOut;
  }
  outcome.detail = s.detail();
  return outcome;
}

bool MqttTestClient::subscribe(const std::string& topic_filter, int qos,
                               std::chrono::milliseconds timeout) {
  Session& s = *session_;
  int mid = 0;
  const int rc = mosquitto_subscribe(s.handle.get(), &mid, topic_filter.c_str(), qos);
  if (rc != MOSQ_ERR_SUCCESS) {
    s.last_error = "subscribe " + topic_filter + ": " + mosquitto_strerror(rc);
    return false;
  }
  if (!s.pump([&s, mid] { return s.granted_qos.contains(mid); }, timeout)) {
    s.last_error =
        "no SUBACK for " + topic_filter + (s.last_error.empty() ? "" : ": ") + s.last_error;
    return false;
  }
  if (s.granted_qos[mid] == kSubscriptionRefused) {
    s.last_error = "subscription to " + topic_filter + " refused";
    return false;
  }
  return true;
}

bool MqttTestClient::publish(const std::string& topic, const std::string& payload, int qos,
                             std::chrono::milliseconds timeout) {
  return publish(topic, payload, qos, false, timeout);
}

bool MqttTestClient::publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, std::chrono::milliseconds timeout) {
  Session& s = *session_;
  int mid = 0;
  const int rc = mosquitto_publish(s.handle.get(), &mid, topic.c_str(),
                                   static_cast<int>(payload.size()), payload.data(), qos, retain);
  if (rc != MOSQ_ERR_SUCCESS) {
    s.last_error = "publish " + topic + ": " + mosquitto_strerror(rc);
    return false;
  }
  if (!s.pump([&s, mid] { return s.completed_publishes.contains(mid); }, timeout)) {
    s.last_error = "publish " + topic + " not acknowledged" + (s.last_error.empty() ? "" : ": ") +
                   s.last_error;
    return false;
  }
  return true;
}

std::optional<ReceivedMessage> MqttTestClient::wait_for_message(std::chrono::milliseconds timeout) {
  Session& s = *session_;
  if (!s.pump([&s] { return !s.inbox.empty(); }, timeout)) {
    return std::nullopt;
  }
  ReceivedMessage message = std::move(s.inbox.front());
  s.inbox.pop_front();
  return message;
}

void MqttTestClient::disconnect() {
  Session& s = *session_;
  if (!s.connected) {
    return;
  }
  if (mosquitto_disconnect(s.handle.get()) == MOSQ_ERR_SUCCESS) {
    s.pump([&s] { return s.lost; }, std::chrono::seconds(1));
  }
  s.connected = false;
}

bool MqttTestClient::connected() const {
  return session_->connected;
}

const std::string& MqttTestClient::last_error() const {
  return session_->last_error;
}

ConnectOutcome try_connect(int port, const fs::path& cafile, const fs::path& cert,
                           const fs::path& key, const std::string& client_id,
                           std::chrono::milliseconds timeout) {
  MqttTestClient client(client_id);
  return client.connect(port, cafile, cert, key, timeout);
}

}  // namespace recmesh::testing
