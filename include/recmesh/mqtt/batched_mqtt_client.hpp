#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recmesh/mqtt/client_support.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/mqtt/reconnect_backoff.hpp"

struct ssl_ctx_st;
struct ssl_st;

namespace recmesh::mqtt {

namespace wire {
struct ServerPacket;
}

// An MQTT 3.1.1 client of QoS 0 and 1 over mutual TLS 1.3 whose wire codec is our own
// (wire_codec.hpp), for connections that carry a stream: the recmesh bridge's two links.
//
// It behaves as MqttClient does (the same options, callbacks, counters and calls; see there),
// but everything a loop round produces — publishes, acknowledgements, pings — is gathered in one
// buffer and handed to OpenSSL in one SSL_write at the end of the round: one TLS record per
// round instead of one per packet, so the broker at the other end decrypts and reads a batch
// at once too. Reading takes whatever the socket holds and decodes every packet in it without
// copying. libmosquitto's per-packet allocations, locks and wake-up writes are gone.
//
// Differences from MqttClient: QoS 2 is refused (publish, subscribe; a QoS 2 packet from the
// broker closes the connection as malformed), and max_incoming_packet_bytes is enforced.
// Not thread-safe: every call happens on the loop's thread.
class BatchedMqttClient {
 public:
  using State = MqttClient::State;

  // Throws Error(kInvalidArgument) for invalid options or unusable certificate files (they are
  // loaded here, once), kPermissionDenied for a wrong key passphrase.
  BatchedMqttClient(EventLoop& loop, MqttClientOptions options, MqttClientCallbacks callbacks,
                    UniformRandom random = {});
  BatchedMqttClient(const BatchedMqttClient&) = delete;
  BatchedMqttClient& operator=(const BatchedMqttClient&) = delete;
  ~BatchedMqttClient();  // like abort()

  void start();
  Result<MessageId> publish(std::string_view topic, std::string_view payload);
  Result<MessageId> publish(std::string_view topic, std::string_view payload, int qos,
                            bool retain = false);
  Result<Done> subscribe(std::string_view filter);
  Result<Done> subscribe(std::string_view filter, int qos);
  Result<Done> unsubscribe(std::string_view filter);
  void stop();
  void abort();
  void pause_reading(bool paused);
  // Writes what the round gathered now instead of at the end of the round.
  void flush();
  void hold_writes(bool held);
  bool reading_paused() const { return reading_paused_; }
  bool writes_held() const { return writes_held_; }

  State state() const { return state_; }
  bool connected() const { return state_ == State::kConnected; }
  const MqttClientStats& stats() const { return stats_; }
  const std::string& client_id() const { return options_.client_id; }
  const std::string& last_error() const { return last_error_; }
  std::size_t pending_messages() const { return in_flight_.size() + waiting_.size(); }

 private:
  struct Outgoing {
    MessageId id = 0;  // 0: the status flag, not the caller's
    std::string topic;
    std::string payload;
    int qos = 0;
    bool retain = false;
  };
  struct InFlight {
    Outgoing message;
    std::uint64_t order = 0;  // sending order, kept when sent again after a reconnect
  };
  using Subscription = detail::Subscription;
  struct ContextDeleter {
    void operator()(ssl_ctx_st* context) const;
  };
  struct SessionDeleter {
    void operator()(ssl_st* session) const;
  };

  void begin_attempt();
  void on_socket_event(FdEvents events);
  void continue_handshake();
  void read_socket();
  bool dispatch_packets();  // false once the connection is gone
  void handle_connack(bool session_present, int return_code);
  void handle_publish(const wire::ServerPacket& packet);
  void handle_puback(std::uint16_t packet_id);
  void handle_suback(std::uint16_t packet_id, std::string_view granted);
  void write_socket();
  void request_write();
  void post_read();
  // A task for the loop that runs `work` unless the client is gone or the connection it was
  // asked for has ended; `asked` is true until it runs, so that it is asked for once.
  template <typename F>
  EventLoop::Task once_on_this_connection(bool& asked, F work);
  void update_interest();
  void schedule_misc();
  void on_misc_timer();
  void on_connect_timeout();
  bool reading_stopped() const;  // paused, and connected (a CONNACK is always read)
  bool holding_writes() const;   // held, and connected (never a CONNECT or a DISCONNECT)
  bool window_open(int qos) const;

  void send_publish(Outgoing message);
  void send_waiting();
  void resend_in_flight();
  void send_subscribe(const Subscription& subscription);
  void acknowledge_received();
  std::uint16_t next_packet_id();

  // Ends the attempt or the connection as its state requires.
  void connection_failed(const Status& reason);
  void fail_attempt(Status reason);
  void lose_connection(Status reason);
  void close_connection();
  void schedule_reconnect();
  void check_stop_progress();
  void send_disconnect();
  void finish_stop();
  Status tls_failure(int ssl_error, int saved_errno) const;  // drains OpenSSL's errors
  std::string endpoint() const;

  EventLoop& loop_;
  MqttClientOptions options_;
  MqttClientCallbacks callbacks_;
  ReconnectBackoff backoff_;
  std::unique_ptr<ssl_ctx_st, ContextDeleter> tls_context_;
  std::unique_ptr<ssl_st, SessionDeleter> tls_;

  State state_ = State::kIdle;
  int socket_ = -1;
  std::uint64_t connection_ = 0;  // counts connections closed: work for an old one is void
  bool handshake_done_ = false;
  bool handshake_wants_write_ = false;
  bool watch_read_ = false;
  bool watch_write_ = false;
  bool socket_full_ = false;  // the last SSL_write stopped at a full socket
  bool reading_paused_ = false;
  bool writes_held_ = false;
  bool write_posted_ = false;
  bool read_posted_ = false;
  bool disconnect_sent_ = false;
  EventLoop::TimerId reconnect_timer_ = 0;
  EventLoop::TimerId connect_timer_ = 0;
  EventLoop::TimerId misc_timer_ = 0;
  EventLoop::TimerId stop_timer_ = 0;
  MonotonicClock::TimePoint connected_at_{};
  MonotonicClock::TimePoint last_sent_{};
  MonotonicClock::TimePoint ping_sent_at_{};
  bool ping_outstanding_ = false;

  std::vector<char> input_;  // bytes read from TLS; [input_begin_, input_end_) undecoded
  std::size_t input_begin_ = 0;
  std::size_t input_end_ = 0;
  std::string output_;              // packets gathered for the next SSL_write
  std::size_t output_written_ = 0;  // the part of output_ OpenSSL took before the socket filled
  std::vector<std::uint16_t> acknowledgements_;  // PUBACKs owed, written after handling

  std::vector<Subscription> subscriptions_;
  std::unordered_map<std::uint16_t, std::string> pending_subacks_;
  std::set<std::string> refused_filters_;
  std::deque<Outgoing> waiting_;  // not yet on the wire: disconnected, or the window is full
  std::unordered_map<std::uint16_t, InFlight> in_flight_;  // QoS 1 awaiting PUBACK
  std::uint64_t next_order_ = 1;
  std::uint16_t last_packet_id_ = 0;
  MessageId next_id_ = 1;
  detail::QueueFullReport queue_full_;
  std::string last_failure_logged_;
  std::string last_error_;
  detail::CallbackRunner notify_{options_.client_id};
  MqttClientStats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace recmesh::mqtt
