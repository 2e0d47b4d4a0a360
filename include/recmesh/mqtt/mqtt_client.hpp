#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recmesh/core/result.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/mqtt/client_support.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/reconnect_backoff.hpp"

struct mosquitto;
struct mosquitto_message;
struct ssl_st;

namespace recmesh::mqtt {

// Our own identifier of a publish, unique per client for its lifetime. (libmosquitto's 16-bit
// packet id is reused and does not exist yet for a message queued while disconnected.)
using MessageId = std::uint64_t;

inline constexpr std::string_view kStatusOnline = "online";
inline constexpr std::string_view kStatusOffline = "offline";

// Settings of one client. Copyable, so that a simulator can stamp out many from one template.
struct MqttClientOptions {
  std::string host = "127.0.0.1";  // resolved on the loop thread at each attempt: prefer an address
  int port = 8883;
  std::string client_id;           // required: the broker keys the persistent session by it
  std::filesystem::path cafile;    // bundle that verifies the broker's certificate
  std::filesystem::path certfile;  // this client's chain: leaf, then intermediates
  std::filesystem::path keyfile;   // PEM private key, plain or encrypted PKCS#8
  // For an encrypted keyfile. Without it an encrypted key fails to load (never a tty prompt).
  std::shared_ptr<const Secret> key_passphrase;
  std::chrono::seconds keepalive{30};  // 5 .. 65535 s
  bool clean_session = false;  // SPEC §4: the broker keeps subscriptions and QoS>=1 backlog
  int default_qos = 1;         // for publish()/subscribe() calls that name none
  bool tcp_nodelay = true;     // small messages go out at once (MOSQ_OPT_TCP_NODELAY)
  // SPEC §4.1 status flag: `online` retained QoS 1 after each connect, the same `offline` as the
  // Last Will and before a clean disconnect. Empty: no status flag.
  std::string status_topic;
  BackoffPolicy reconnect;
  // One attempt (TCP connect, TLS handshake, CONNECT/CONNACK) fails if it takes longer.
  std::chrono::milliseconds connect_timeout{10000};
  // How long stop() waits for the broker to acknowledge what is in flight before DISCONNECT.
  std::chrono::milliseconds stop_timeout{3000};
  // Publishes held at once: QoS>=1 ones handed to the connection and not yet acknowledged, plus
  // everything queued while disconnected. A publish beyond it is refused and counted.
  std::size_t max_pending_messages = 1000;
  int max_inflight_messages = 20;  // QoS>=1 publishes on the wire awaiting PUBACK
  // Writes the acknowledgement (PUBACK) of a received QoS 1 message only after on_message and
  // on_messages_received have returned. Without it libmosquitto 2.0 writes the PUBACK before it
  // calls on_message (lib/handle_publish.c), so the broker forgets a message the client may not
  // have stored yet. With it libmosquitto only queues outgoing packets (its "threaded" mode) and
  // the event loop writes them when the socket is next writable.
  bool acknowledge_after_handling = false;
  // BatchedMqttClient only: a packet from the broker whose remaining length (all after its fixed
  // header) is larger closes the connection before any of it is buffered. (libmosquitto accepts
  // MQTT's maximum, 256 MiB.)
  std::size_t max_incoming_packet_bytes = 268435455;

  // Throws Error(kInvalidArgument) naming the field and its allowed range.
  void validate() const;
};

// A message as it arrived; the views are valid only during the callback.
struct IncomingMessage {
  std::string_view topic;
  std::string_view payload;
  int qos = 0;
  bool retain = false;
};

// All callbacks run on the loop thread. They may call publish(), subscribe(), stop() and
// abort() of their client. Only on_stopped may destroy it; from the others, post the
// destruction. What they throw is caught and logged once per callback.
struct MqttClientCallbacks {
  std::function<void()> on_connect;  // CONNACK accepted; subscriptions and queue already sent
  // An established connection ended without stop(); a reconnection is scheduled.
  std::function<void(const Status& reason)> on_disconnect;
  // An attempt failed before CONNACK (refused, TLS, timeout); a retry is scheduled.
  std::function<void(const Status& reason)> on_connect_failed;
  std::function<void(const IncomingMessage& message)> on_message;
  // After a read from the socket delivered messages through on_message, before any of their
  // acknowledgements is written when acknowledge_after_handling is set: where a batch of
  // received messages is made durable at once.
  std::function<void()> on_messages_received;
  // SUBACK for `filter`; granted_qos 128 means the broker refused the subscription.
  std::function<void(const std::string& filter, int granted_qos)> on_subscribe;
  std::function<void(MessageId id)> on_delivered;  // the broker acknowledged a QoS>=1 publish
  std::function<void()> on_stopped;                // stop() has finished (not called after abort())
};

// Counters since construction. Nothing is dropped without being counted here.
struct MqttClientStats {
  std::uint64_t connect_attempts = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t connections = 0;         // accepted CONNACKs
  std::uint64_t connection_losses = 0;   // established connections that ended without stop()
  std::uint64_t published = 0;           // handed to the connection
  std::uint64_t delivered = 0;           // QoS>=1 acknowledged by the broker
  std::uint64_t queued = 0;              // held while disconnected
  std::uint64_t dropped_queue_full = 0;  // refused: max_pending_messages reached
  std::uint64_t dropped_at_stop = 0;     // unacknowledged or queued when the client stopped
  std::uint64_t received = 0;
  std::uint64_t subscriptions_refused = 0;
};

// An MQTT 3.1.1 client over mutual TLS 1.3 on libmosquitto, driven by an EventLoop in
// libmosquitto's external-loop mode: no thread of its own, so one loop thread serves thousands
// of clients. Not thread-safe: every call happens on the loop's thread; other threads post.
//
// It reconnects by itself with jittered exponential backoff, re-subscribes on every connect,
// keeps the status flag, and holds publishes made while disconnected in a bounded queue.
class MqttClient {
 public:
  enum class State {
    kIdle,         // constructed, start() not called
    kWaiting,      // backing off before the next attempt
    kConnecting,   // TCP connect in progress
    kHandshaking,  // TLS handshake and CONNECT/CONNACK
    kConnected,
    kStopping,  // stop(): waiting for acknowledgements, then DISCONNECT
    kStopped,
  };

  // Throws Error(kInvalidArgument) for invalid options or unreadable certificate files.
  // `random` drives the backoff jitter; empty: a generator seeded from std::random_device.
  MqttClient(EventLoop& loop, MqttClientOptions options, MqttClientCallbacks callbacks,
             UniformRandom random = {});
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;
  // Like abort(): the broker sees the connection drop and publishes the Last Will.
  ~MqttClient();

  // Starts the first attempt now.
  void start();

  // Publishes now when connected, else queues. Fails (and counts) when max_pending_messages
  // are held; fails for an invalid topic, QoS or payload size, and once stopping.
  Result<MessageId> publish(std::string_view topic, std::string_view payload);
  Result<MessageId> publish(std::string_view topic, std::string_view payload, int qos,
                            bool retain = false);
  // Remembered and sent on every connect; sent now too when connected.
  Result<Done> subscribe(std::string_view filter);
  Result<Done> subscribe(std::string_view filter, int qos);
  Result<Done> unsubscribe(std::string_view filter);

  // Clean shutdown: publishes `offline` (if a status topic is set), waits up to stop_timeout
  // for acknowledgements, sends DISCONNECT (so the broker discards the Will), then calls
  // on_stopped. Without a connection it stops at once. What is still unacknowledged or queued
  // is counted in dropped_at_stop.
  void stop();
  // Drops the connection without DISCONNECT, as a crash would, and does not reconnect; the
  // broker publishes the Will. For fault injection and shutdown without a broker.
  void abort();

  // Stops (true) or resumes (false) reading from the connection: back-pressure that leaves
  // unread messages with the broker. CONNACK is still read after a reconnect. A long pause
  // also leaves PINGRESP unread, so the connection drops after about two keepalives and is
  // made again.
  void pause_reading(bool paused);
  // Writes now what libmosquitto holds for the socket (with acknowledge_after_handling it only
  // queues), instead of at the loop's next writable event: one poll round less per message.
  // Does nothing from inside this client's own callbacks, where the loop writes it later.
  void flush();
  // Holds (true) or releases (false) everything libmosquitto has queued for the socket, the
  // acknowledgements of received messages among it, as a receiver does that acknowledges a
  // message only once it is safe (durable or passed on). Releasing writes at once. Applies
  // only while connected, so a reconnect is never held, and only with
  // acknowledge_after_handling (otherwise libmosquitto writes from inside its own calls).
  void hold_writes(bool held);
  bool reading_paused() const { return reading_paused_; }
  bool writes_held() const { return writes_held_; }

  State state() const { return state_; }
  bool connected() const { return state_ == State::kConnected; }
  const MqttClientStats& stats() const { return stats_; }
  const std::string& client_id() const { return options_.client_id; }
  // Why the last attempt failed or the last connection ended; empty before any failure.
  const std::string& last_error() const { return last_error_; }
  // Messages held: unacknowledged on the connection plus queued.
  std::size_t pending_messages() const { return in_flight_.size() + queue_.size(); }

 private:
  struct Outgoing {
    MessageId id = 0;
    std::string topic;
    std::string payload;
    int qos = 0;
    bool retain = false;
  };
  using Subscription = detail::Subscription;
  struct LibraryDeleter {
    void operator()(mosquitto* handle) const;
  };

  // libmosquitto callbacks; `user_data` is the client.
  static void on_connect_cb(mosquitto*, void* user_data, int rc);
  static void on_disconnect_cb(mosquitto*, void* user_data, int rc);
  static void on_publish_cb(mosquitto*, void* user_data, int mid);
  static void on_subscribe_cb(mosquitto*, void* user_data, int mid, int count, const int* granted);
  static void on_message_cb(mosquitto*, void* user_data, const mosquitto_message* message);
  static void on_log_cb(mosquitto*, void* user_data, int level, const char* text);
  static int password_cb(char* buf, int size, int rwflag, void* user_data);

  void configure_library();
  void begin_attempt();
  void on_socket_event(FdEvents events);
  void read_socket();
  void write_socket();
  // Once connected, writes wait for the end of the round (request_write()) and leave through
  // the TLS write buffer (tls_batching.hpp) in one go; input that OpenSSL read ahead is read
  // without waiting for the socket.
  void request_write();
  bool writes_ready() const;
  void flush_tls();
  void read_buffered_tls_input();
  bool tls_input_held() const;  // OpenSSL holds input read from the socket, maybe partial
  ssl_st* tls_session() const;  // libmosquitto's TLS session of this connection, or null
  // A task for the loop that runs `work` unless the client is gone; `asked` is true until it
  // runs, so that callers ask for it once however often they need it.
  template <typename F>
  EventLoop::Task once_asked(bool& asked, F work);
  void on_connect_timeout();
  void handle_connack(int rc);
  void handle_library_disconnect(int rc, int saved_errno);
  void fail_attempt(Status reason);
  void lose_connection(Status reason);
  void schedule_reconnect();
  void finish_stop();
  void release_socket();
  void send_disconnect();
  void check_stop_progress();
  void schedule_misc();

  // Every libmosquitto call that can touch the socket goes through here.
  template <typename F>
  int call_library(F&& f);
  void after_library_call(int rc, int saved_errno);
  void update_interest();
  bool holding_writes() const;  // held, and connected (never during a connect)

  Result<MessageId> hand_over(Outgoing message);
  void send_subscribe(const Subscription& subscription);
  void publish_status(std::string_view value);
  void flush_queue();
  Status describe_failure(int rc, int saved_errno) const;
  std::string attempt_detail() const;
  std::string endpoint() const;
  bool tls_handshake_done() const;
  int connect_error() const;

  EventLoop& loop_;
  MqttClientOptions options_;
  MqttClientCallbacks callbacks_;
  ReconnectBackoff backoff_;
  std::unique_ptr<mosquitto, LibraryDeleter> handle_;

  State state_ = State::kIdle;
  bool first_attempt_ = true;
  int socket_ = -1;  // the descriptor we watch, or -1
  bool watch_read_ = false;
  bool watch_write_ = false;
  bool reading_paused_ = false;
  bool writes_held_ = false;
  bool tls_write_blocked_ = false;      // the TLS write buffer waits for the socket
  bool library_write_blocked_ = false;  // libmosquitto's own packets wait for the socket
  bool write_posted_ = false;
  bool writing_ = false;
  bool tls_read_posted_ = false;
  bool reading_resumed_in_call_ = false;  // pause_reading(false) from inside a library call
  EventLoop::TimerId reconnect_timer_ = 0;
  EventLoop::TimerId connect_timer_ = 0;
  EventLoop::TimerId misc_timer_ = 0;
  EventLoop::TimerId stop_timer_ = 0;
  MonotonicClock::TimePoint connected_at_{};
  bool disconnect_sent_ = false;
  int library_depth_ = 0;        // > 0 while inside a libmosquitto call
  int library_errno_ = 0;        // errno right after the last libmosquitto call
  int connect_errno_hint_ = 0;   // errno after this attempt's mosquitto_(re)connect_async
  bool destroy_handle_ = false;  // abort() or stop() asked from inside a libmosquitto call

  // What this attempt learnt from libmosquitto, for the failure reason.
  std::optional<int> connack_rc_;
  bool handshake_done_ = false;           // this attempt's TLS handshake completed
  std::vector<std::string> attempt_log_;  // libmosquitto's errors during this attempt

  std::vector<Subscription> subscriptions_;
  std::unordered_map<int, std::string> pending_subacks_;  // SUBSCRIBE packet id -> filter
  std::set<std::string> refused_filters_;                 // logged once each
  std::deque<Outgoing> queue_;                            // while disconnected
  std::unordered_map<int, MessageId> in_flight_;          // QoS>=1 packet id -> our id
  MessageId next_id_ = 1;
  detail::QueueFullReport queue_full_;
  std::string last_failure_logged_;
  std::string last_error_;
  detail::CallbackRunner notify_{options_.client_id};
  MqttClientStats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted tasks check it
};

std::string_view to_string(MqttClient::State state);

}  // namespace recmesh::mqtt
