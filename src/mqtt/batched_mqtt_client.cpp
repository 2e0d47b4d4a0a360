#include "recmesh/mqtt/batched_mqtt_client.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include <climits>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/mqtt/wire_codec.hpp"

#include "tls_client_context.hpp"

namespace recmesh::mqtt {
namespace {

constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
// Read per round before the loop's other connections get their turn.
constexpr std::size_t kMaxReadPerRound = std::size_t{1024} * 1024;
constexpr auto kMiscInterval = std::chrono::seconds(1);  // keepalive bookkeeping
constexpr int kConnackServerUnavailable = 3;
constexpr unsigned char kSubscriptionRefused = 0x80;

// The pending error of a socket whose non-blocking connect finished (0: it connected).
int socket_error(int fd) {
  int error = 0;
  socklen_t length = sizeof(error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
    return errno;
  }
  return error;
}

// OpenSSL writes to the socket with write(): a broker that closed its side must be an error
// here, not the end of the process.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { (void)std::signal(SIGPIPE, SIG_IGN); });
}

const MqttClientOptions& validated(const MqttClientOptions& options) {
  options.validate();
  return options;
}

using AddressList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

// What SSL_get_error reads must be this connection's. (ERR_clear_error walks the whole queue
// even when it is empty, as it almost always is: a few percent of a busy bridge.)
void clear_tls_errors() {
  if (ERR_peek_error() != 0) {
    ERR_clear_error();
  }
}

}  // namespace

void BatchedMqttClient::ContextDeleter::operator()(ssl_ctx_st* context) const {
  SSL_CTX_free(context);
}

void BatchedMqttClient::SessionDeleter::operator()(ssl_st* session) const {
  SSL_free(session);
}

BatchedMqttClient::BatchedMqttClient(EventLoop& loop, MqttClientOptions options,
                                     MqttClientCallbacks callbacks, UniformRandom random)
    : loop_(loop),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      backoff_(validated(options_).reconnect, std::move(random)) {
  ignore_sigpipe();
  tls_context_.reset(make_tls_client_context({options_.cafile, options_.certfile, options_.keyfile,
                                              options_.key_passphrase})
                         .release());
}

BatchedMqttClient::~BatchedMqttClient() {
  for (EventLoop::TimerId* timer :
       {&reconnect_timer_, &connect_timer_, &misc_timer_, &stop_timer_}) {
    if (*timer != 0) {
      loop_.cancel_timer(*timer);
    }
  }
  close_connection();
}

std::string BatchedMqttClient::endpoint() const {
  return options_.host + ":" + std::to_string(options_.port);
}

bool BatchedMqttClient::reading_stopped() const {
  return reading_paused_ && state_ == State::kConnected;
}

bool BatchedMqttClient::holding_writes() const {
  return writes_held_ && state_ == State::kConnected;
}

// --- connection life cycle --------------------------------------------------------------------

void BatchedMqttClient::start() {
  assert(loop_.in_loop_thread());
  if (state_ == State::kIdle) {
    begin_attempt();
  }
}

void BatchedMqttClient::begin_attempt() {
  reconnect_timer_ = 0;
  if (state_ != State::kIdle && state_ != State::kWaiting) {
    return;
  }
  state_ = State::kConnecting;
  ++stats_.connect_attempts;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(options_.port);
  if (const int rc = ::getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    fail_attempt({ErrorCode::kUnavailable, "cannot connect to " + endpoint() +
                                               ": cannot resolve host: " + gai_strerror(rc)});
    return;
  }
  const AddressList addresses(found, &::freeaddrinfo);
  const int fd =
      ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) {
    fail_attempt(
        {ErrorCode::kUnavailable, "cannot connect to " + endpoint() + ": " + std::strerror(errno)});
    return;
  }
  socket_ = fd;
  if (options_.tcp_nodelay) {
    const int on = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  }
  if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0 && errno != EINPROGRESS) {
    fail_attempt(
        {ErrorCode::kUnavailable, "cannot connect to " + endpoint() + ": " + std::strerror(errno)});
    return;
  }
  // Writable once the TCP connect has finished, either way: on_socket_event() tells which.
  const std::uint64_t connection = connection_;
  const Result<Done> watched = loop_.watch(fd, false, true, [this, connection](FdEvents events) {
    if (connection == connection_) {
      on_socket_event(events);
    }
  });
  if (!watched) {
    fail_attempt(watched.status());
    return;
  }
  watch_write_ = true;
  connect_timer_ = loop_.add_timer(options_.connect_timeout, [this] {
    connect_timer_ = 0;
    on_connect_timeout();
  });
}

void BatchedMqttClient::on_socket_event(FdEvents events) {
  if (socket_ < 0) {
    return;
  }
  if (state_ == State::kConnecting) {
    if (const int error = socket_error(socket_); error != 0) {
      fail_attempt({ErrorCode::kUnavailable,
                    "cannot connect to " + endpoint() + ": " + std::strerror(error)});
      return;
    }
    if (!events.writable) {
      if (events.hangup || events.error) {
        fail_attempt({ErrorCode::kUnavailable,
                      endpoint() + " closed the connection before it was established"});
      }
      return;
    }
    tls_.reset(make_tls_client_session(tls_context_.get(), socket_, options_.host).release());
    if (!tls_) {
      fail_attempt({ErrorCode::kInternal,
                    "cannot start TLS with " + endpoint() + ": " + crypto::drain_openssl_errors()});
      return;
    }
    state_ = State::kHandshaking;
    continue_handshake();
    return;
  }
  if (state_ == State::kHandshaking && !handshake_done_) {
    continue_handshake();
    return;
  }
  const std::uint64_t connection = connection_;
  if ((events.hangup || events.error) && reading_stopped()) {
    // The poll reports a closed or failed socket whatever is asked of it, again in every round:
    // a paused connection that would wait for the resume to find out would spin until then.
    // What it left unread was not acknowledged: the broker sends it again.
    const int error = socket_error(socket_);
    connection_failed(
        {ErrorCode::kUnavailable,
         "connection to " + endpoint() +
             " lost: " + (error != 0 ? std::strerror(error) : "the broker closed the connection")});
    return;
  }
  if (events.readable || events.hangup || events.error) {
    read_socket();
  }
  if (events.writable && connection == connection_) {
    write_socket();
  }
}

void BatchedMqttClient::continue_handshake() {
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_connect(tls_.get());
  if (rc == 1) {
    handshake_done_ = true;
    handshake_wants_write_ = false;
    wire::ConnectFields fields;
    fields.client_id = options_.client_id;
    fields.clean_session = options_.clean_session;
    fields.keepalive_s = static_cast<std::uint16_t>(options_.keepalive.count());
    if (!options_.status_topic.empty()) {
      fields.will = {options_.status_topic, kStatusOffline, 1, true};
    }
    wire::append_connect(output_, fields);
    write_socket();
    return;
  }
  const int error = SSL_get_error(tls_.get(), rc);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    handshake_wants_write_ = error == SSL_ERROR_WANT_WRITE;
    update_interest();
    return;
  }
  fail_attempt(tls_failure(error, errno));
}

Status BatchedMqttClient::tls_failure(int ssl_error, int saved_errno) const {
  const std::string detail = crypto::drain_openssl_errors();
  const bool closed = ssl_error == SSL_ERROR_ZERO_RETURN ||
                      (ssl_error == SSL_ERROR_SYSCALL && saved_errno == 0) ||
                      detail.find("unexpected eof") != std::string::npos;
  const std::string cause =
      closed ? "the broker closed the connection"
      : ssl_error == SSL_ERROR_SSL
          ? "TLS: " + detail
          : std::string(std::strerror(saved_errno != 0 ? saved_errno : EPROTO));
  switch (state_) {
    case State::kConnected:
    case State::kStopping:
      return {ErrorCode::kUnavailable, "connection to " + endpoint() + " lost: " + cause};
    case State::kHandshaking:
      if (!handshake_done_) {
        if (closed) {
          return {ErrorCode::kUnavailable,
                  endpoint() + " closed the connection during the TLS handshake"};
        }
        if (ssl_error == SSL_ERROR_SSL) {
          return {ErrorCode::kPermissionDenied, "TLS with " + endpoint() + " failed: " + detail};
        }
        return {ErrorCode::kUnavailable,
                "TLS with " + endpoint() + " failed: " + std::strerror(saved_errno)};
      }
      if (closed || ssl_error != SSL_ERROR_SSL) {
        // With TLS 1.3 the broker checks the client certificate after the client's side of the
        // handshake is done; its alert is lost when the close overtakes it, and so it is when
        // the close is a reset because the client's CONNECT was left unread.
        return {ErrorCode::kUnavailable,
                endpoint() +
                    " closed the connection after the TLS handshake, before CONNACK (as a broker "
                    "refusing the client certificate does)" +
                    (closed ? std::string() : ": " + cause)};
      }
      return {ErrorCode::kPermissionDenied, "TLS with " + endpoint() + " failed: " + detail};
    default:
      return {ErrorCode::kUnavailable, endpoint() + ": " + cause};
  }
}

void BatchedMqttClient::connection_failed(const Status& reason) {
  switch (state_) {
    case State::kConnecting:
    case State::kHandshaking:
      fail_attempt(reason);
      break;
    case State::kConnected:
      lose_connection(reason);
      break;
    case State::kStopping:
      finish_stop();
      break;
    default:
      close_connection();
      break;
  }
}

void BatchedMqttClient::on_connect_timeout() {
  if (state_ != State::kConnecting && state_ != State::kHandshaking) {
    return;
  }
  const std::string phase = state_ == State::kConnecting ? "TCP connect"
                            : handshake_done_            ? "CONNACK"
                                                         : "TLS handshake";
  fail_attempt({ErrorCode::kUnavailable, "no answer from " + endpoint() + " within " +
                                             std::to_string(options_.connect_timeout.count()) +
                                             " ms (waiting for the " + phase + ")"});
}

void BatchedMqttClient::handle_connack(bool session_present, int return_code) {
  if (return_code != 0) {
    const ErrorCode code = return_code == kConnackServerUnavailable ? ErrorCode::kUnavailable
                                                                    : ErrorCode::kPermissionDenied;
    fail_attempt(
        {code, endpoint() + " refused the connection: " + mosquitto_connack_string(return_code)});
    return;
  }
  if (connect_timer_ != 0) {
    loop_.cancel_timer(connect_timer_);
    connect_timer_ = 0;
  }
  state_ = State::kConnected;
  connected_at_ = loop_.now();
  last_sent_ = connected_at_;
  ++stats_.connections;
  if (!last_failure_logged_.empty()) {
    spdlog::info("mqtt {}: connected to {} again", options_.client_id, endpoint());
    last_failure_logged_.clear();
  } else {
    spdlog::debug("mqtt {}: connected to {}{}", options_.client_id, endpoint(),
                  session_present ? " (session kept)" : "");
  }
  // What the last connection left unacknowledged goes first, as the same packets (MQTT 3.1.1
  // section 4.4): the broker may have kept the session, and discards what it already had.
  resend_in_flight();
  // The broker may have kept the subscriptions too, but not if it lost its state.
  for (const Subscription& subscription : subscriptions_) {
    send_subscribe(subscription);
  }
  if (!options_.status_topic.empty()) {
    send_publish({0, options_.status_topic, std::string(kStatusOnline), 1, true});
  }
  queue_full_.after_connect(options_.client_id);
  schedule_misc();
  const std::uint64_t connection = connection_;
  notify_(callbacks_.on_connect, "on_connect");
  if (connection == connection_) {
    send_waiting();
    request_write();
  }
}

void BatchedMqttClient::fail_attempt(Status reason) {
  close_connection();
  if (connect_timer_ != 0) {
    loop_.cancel_timer(connect_timer_);
    connect_timer_ = 0;
  }
  ++stats_.connect_failures;
  last_error_ = reason.message;
  if (reason.message != last_failure_logged_) {
    spdlog::warn("mqtt {}: {}; retrying with backoff", options_.client_id, reason.message);
    last_failure_logged_ = reason.message;
  } else {
    spdlog::debug("mqtt {}: {} (again)", options_.client_id, reason.message);
  }
  schedule_reconnect();
  notify_(callbacks_.on_connect_failed, "on_connect_failed", reason);
}

void BatchedMqttClient::lose_connection(Status reason) {
  close_connection();
  ++stats_.connection_losses;
  last_error_ = reason.message;
  if (loop_.now() - connected_at_ >= options_.reconnect.stable_after) {
    backoff_.reset();
  }
  spdlog::warn("mqtt {}: {}; reconnecting with backoff", options_.client_id, reason.message);
  last_failure_logged_ = reason.message;
  schedule_reconnect();
  notify_(callbacks_.on_disconnect, "on_disconnect", reason);
}

void BatchedMqttClient::close_connection() {
  ++connection_;
  if (misc_timer_ != 0) {
    loop_.cancel_timer(misc_timer_);
    misc_timer_ = 0;
  }
  if (socket_ >= 0) {
    loop_.unwatch(socket_);
    tls_.reset();  // no close_notify: as a crash would, so that the broker publishes the Will
    ::close(socket_);
    socket_ = -1;
  }
  tls_.reset();
  watch_read_ = false;
  watch_write_ = false;
  handshake_done_ = false;
  handshake_wants_write_ = false;
  socket_full_ = false;
  ping_outstanding_ = false;
  // The views of a packet being handled stay valid: the buffer keeps its memory.
  input_begin_ = 0;
  input_end_ = 0;
  output_.clear();
  output_written_ = 0;
  acknowledgements_.clear();  // the broker sends those messages again
  pending_subacks_.clear();
}

void BatchedMqttClient::schedule_reconnect() {
  state_ = State::kWaiting;
  const auto delay = backoff_.next();
  spdlog::debug("mqtt {}: next attempt in {} ms", options_.client_id, delay.count());
  reconnect_timer_ = loop_.add_timer(delay, [this] { begin_attempt(); });
}

void BatchedMqttClient::schedule_misc() {
  misc_timer_ = loop_.add_timer(kMiscInterval, [this] {
    misc_timer_ = 0;
    on_misc_timer();
  });
}

void BatchedMqttClient::on_misc_timer() {
  if (state_ != State::kConnected && state_ != State::kStopping) {
    return;
  }
  const auto now = loop_.now();
  if (ping_outstanding_ && now - ping_sent_at_ >= options_.keepalive) {
    lose_connection({ErrorCode::kUnavailable,
                     "connection to " + endpoint() + " lost: no PINGRESP within the keepalive of " +
                         std::to_string(options_.keepalive.count()) + " s"});
    return;
  }
  if (!ping_outstanding_ && now - last_sent_ >= options_.keepalive) {
    wire::append_pingreq(output_);
    ping_outstanding_ = true;
    ping_sent_at_ = now;
    request_write();
  }
  schedule_misc();
}

// --- reading ----------------------------------------------------------------------------------

void BatchedMqttClient::read_socket() {
  const std::uint64_t connection = connection_;
  const std::uint64_t received_before = stats_.received;
  // What an earlier round read and a pause left undecoded goes first.
  bool alive = dispatch_packets();
  std::size_t read_this_round = 0;
  clear_tls_errors();
  while (alive && !reading_stopped() && read_this_round < kMaxReadPerRound) {
    if (input_.size() - input_end_ < kReadChunk) {
      if (input_begin_ > 0) {
        std::memmove(input_.data(), input_.data() + input_begin_, input_end_ - input_begin_);
        input_end_ -= input_begin_;
        input_begin_ = 0;
      }
      if (input_.size() - input_end_ < kReadChunk) {
        input_.resize(input_end_ + kReadChunk);
      }
    }
    errno = 0;
    const int n = SSL_read(tls_.get(), input_.data() + input_end_, static_cast<int>(kReadChunk));
    if (n > 0) {
      input_end_ += static_cast<std::size_t>(n);
      read_this_round += static_cast<std::size_t>(n);
      alive = dispatch_packets();
      if (alive && !tls_input_held(tls_.get())) {
        // All the socket gave is handled. Asking it again would be a read() that says "nothing
        // yet" before this batch is handled and forwarded; the level-triggered poll asks
        // instead, after it.
        break;
      }
      continue;
    }
    const int error = SSL_get_error(tls_.get(), n);
    if (error == SSL_ERROR_WANT_READ) {
      break;
    }
    if (error == SSL_ERROR_WANT_WRITE) {
      socket_full_ = true;  // OpenSSL must write first (a key update): writability resumes it
      break;
    }
    connection_failed(tls_failure(error, errno));
    alive = false;
  }
  if (stats_.received != received_before) {
    notify_(callbacks_.on_messages_received, "on_messages_received");
  }
  if (connection != connection_) {
    return;
  }
  acknowledge_received();
  request_write();
  // The socket will not say readable for what OpenSSL already took from it.
  if (read_this_round >= kMaxReadPerRound || tls_input_held(tls_.get())) {
    post_read();
  }
  update_interest();
}

bool BatchedMqttClient::dispatch_packets() {
  const std::uint64_t connection = connection_;
  while (!reading_stopped() && input_begin_ < input_end_) {
    wire::ServerPacket packet;
    const std::string_view input(input_.data() + input_begin_, input_end_ - input_begin_);
    const wire::DecodeResult decoded =
        wire::decode_server_packet(input, options_.max_incoming_packet_bytes, packet);
    if (decoded.status == wire::DecodeStatus::kNeedMore) {
      break;
    }
    const bool expected =
        decoded.status == wire::DecodeStatus::kPacket &&
        (state_ == State::kHandshaking) == (packet.type == wire::PacketType::kConnack);
    if (!expected) {
      const std::string why = decoded.status == wire::DecodeStatus::kMalformed
                                  ? std::string(decoded.error)
                              : state_ == State::kHandshaking ? "a packet before CONNACK"
                                                              : "a second CONNACK";
      connection_failed({ErrorCode::kUnavailable, "connection to " + endpoint() +
                                                      " closed: malformed packet (" + why + ")"});
      return false;
    }
    input_begin_ += decoded.consumed;
    switch (packet.type) {
      case wire::PacketType::kConnack:
        handle_connack(packet.session_present, packet.return_code);
        break;
      case wire::PacketType::kPublish:
        handle_publish(packet);
        break;
      case wire::PacketType::kPuback:
        handle_puback(packet.packet_id);
        break;
      case wire::PacketType::kSuback:
        handle_suback(packet.packet_id, packet.granted);
        break;
      case wire::PacketType::kPingresp:
        ping_outstanding_ = false;
        break;
      default:  // UNSUBACK
        break;
    }
    if (connection != connection_) {
      return false;
    }
  }
  if (input_begin_ == input_end_) {
    input_begin_ = 0;
    input_end_ = 0;
  }
  return true;
}

void BatchedMqttClient::handle_publish(const wire::ServerPacket& packet) {
  ++stats_.received;
  const bool acknowledge = packet.qos == 1;
  if (acknowledge && !options_.acknowledge_after_handling) {
    wire::append_puback(output_, packet.packet_id);
  }
  const std::uint64_t connection = connection_;
  IncomingMessage incoming;
  incoming.topic = packet.topic;
  incoming.payload = packet.payload;
  incoming.qos = packet.qos;
  incoming.retain = packet.retain;
  notify_(callbacks_.on_message, "on_message", incoming);
  if (acknowledge && options_.acknowledge_after_handling && connection == connection_) {
    acknowledgements_.push_back(packet.packet_id);
  }
}

void BatchedMqttClient::acknowledge_received() {
  for (const std::uint16_t packet_id : acknowledgements_) {
    wire::append_puback(output_, packet_id);
  }
  acknowledgements_.clear();
}

void BatchedMqttClient::handle_puback(std::uint16_t packet_id) {
  const auto it = in_flight_.find(packet_id);
  if (it == in_flight_.end()) {
    return;  // acknowledged twice (the broker may after a reconnect): nothing waits for it
  }
  const MessageId id = it->second.message.id;
  in_flight_.erase(it);
  if (id != 0) {
    ++stats_.delivered;
    notify_(callbacks_.on_delivered, "on_delivered", id);
  }
  send_waiting();
  check_stop_progress();
}

void BatchedMqttClient::handle_suback(std::uint16_t packet_id, std::string_view granted) {
  const auto it = pending_subacks_.find(packet_id);
  if (it == pending_subacks_.end()) {
    return;
  }
  const std::string filter = std::move(it->second);
  pending_subacks_.erase(it);
  const int qos = static_cast<unsigned char>(granted.front());
  if (qos == kSubscriptionRefused) {
    ++stats_.subscriptions_refused;
    if (refused_filters_.insert(filter).second) {
      spdlog::warn("mqtt {}: the broker refused the subscription to {}", options_.client_id,
                   filter);
    }
  }
  notify_(callbacks_.on_subscribe, "on_subscribe", filter, qos);
}

void BatchedMqttClient::pause_reading(bool paused) {
  assert(loop_.in_loop_thread());
  // The bridge asks again after every PUBACK. A resume of a connection that was never paused
  // must not post a read: mid-dispatch the TLS buffer still holds the rest of the batch, and the
  // posted read would find nothing once this round had handled it.
  if (paused == reading_paused_) {
    return;
  }
  reading_paused_ = paused;
  update_interest();
  if (!paused) {
    post_read();
  }
}

void BatchedMqttClient::post_read() {
  if (read_posted_ || !tls_ || reading_stopped() ||
      (state_ != State::kConnected && state_ != State::kStopping) ||
      (input_begin_ == input_end_ && !tls_input_held(tls_.get()))) {
    return;
  }
  loop_.post(once_on_this_connection(read_posted_, [this] {
    if (!reading_stopped()) {
      read_socket();
    }
  }));
}

template <typename F>
EventLoop::Task BatchedMqttClient::once_on_this_connection(bool& asked, F work) {
  asked = true;
  return [this, &asked, alive = std::weak_ptr<int>(alive_), connection = connection_,
          work = std::move(work)] {
    if (alive.expired()) {
      return;
    }
    asked = false;
    if (connection == connection_) {
      work();
    }
  };
}

// --- writing ----------------------------------------------------------------------------------

void BatchedMqttClient::request_write() {
  if (write_posted_ || output_.empty() || socket_full_ || holding_writes() || !tls_ ||
      (state_ != State::kConnected && state_ != State::kStopping)) {
    return;
  }
  // Everything the round produces leaves at its end, in one SSL_write: one TLS record.
  loop_.defer(once_on_this_connection(write_posted_, [this] { write_socket(); }));
}

void BatchedMqttClient::write_socket() {
  if (!tls_ || holding_writes()) {
    return;
  }
  socket_full_ = false;
  clear_tls_errors();
  while (output_written_ < output_.size()) {
    errno = 0;
    const int length =
        static_cast<int>(std::min<std::size_t>(output_.size() - output_written_, INT_MAX / 2));
    const int n = SSL_write(tls_.get(), output_.data() + output_written_, length);
    if (n > 0) {
      output_written_ += static_cast<std::size_t>(n);
      if (output_written_ == output_.size()) {
        output_.clear();  // keeps its memory for the next round
        output_written_ = 0;
      }
      last_sent_ = loop_.now();
      continue;
    }
    const int error = SSL_get_error(tls_.get(), n);
    if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
      socket_full_ = error == SSL_ERROR_WANT_WRITE;
      break;
    }
    connection_failed(tls_failure(error, errno));
    return;
  }
  if (output_written_ == output_.size() && disconnect_sent_ && state_ == State::kStopping) {
    finish_stop();  // DISCONNECT is on the wire
    return;
  }
  update_interest();
}

void BatchedMqttClient::flush() {
  assert(loop_.in_loop_thread());
  if (state_ == State::kConnected && !output_.empty() && !socket_full_) {
    write_socket();
  }
}

void BatchedMqttClient::hold_writes(bool held) {
  assert(loop_.in_loop_thread());
  if (writes_held_ == held) {
    return;
  }
  writes_held_ = held;
  // A release is the moment what was held became true (the messages it acknowledges are
  // safe): it is written at once, not at the end of the round, by when a new hold may have
  // come. Held, the socket is not watched for writability: it would spin.
  if (!held && state_ == State::kConnected && !socket_full_) {
    write_socket();
    return;
  }
  update_interest();
}

void BatchedMqttClient::update_interest() {
  if (socket_ < 0) {
    return;
  }
  bool read = false;
  bool write = false;
  switch (state_) {
    case State::kConnecting:
      write = true;
      break;
    case State::kHandshaking:
      read = handshake_done_ || !handshake_wants_write_;
      write = handshake_done_ ? socket_full_ : handshake_wants_write_;
      break;
    case State::kConnected:
    case State::kStopping:
      read = !reading_stopped();
      write = socket_full_ && !holding_writes();
      break;
    default:
      break;
  }
  if (read == watch_read_ && write == watch_write_) {
    return;
  }
  const Result<Done> changed = loop_.modify(socket_, read, write);
  if (!changed) {
    spdlog::error("mqtt {}: {}", options_.client_id, changed.status().message);
    return;
  }
  watch_read_ = read;
  watch_write_ = write;
}

// --- stopping ---------------------------------------------------------------------------------

void BatchedMqttClient::stop() {
  assert(loop_.in_loop_thread());
  switch (state_) {
    case State::kStopping:
    case State::kStopped:
      return;
    case State::kConnected:
      break;
    default:
      finish_stop();
      return;
  }
  state_ = State::kStopping;
  if (!options_.status_topic.empty()) {
    send_publish({0, options_.status_topic, std::string(kStatusOffline), 1, true});
  }
  stop_timer_ = loop_.add_timer(options_.stop_timeout, [this] {
    stop_timer_ = 0;
    if (state_ != State::kStopping) {
      return;
    }
    if (disconnect_sent_) {
      finish_stop();  // DISCONNECT could not be written in time either
      return;
    }
    spdlog::warn("mqtt {}: {} message(s) still unacknowledged after {} ms; disconnecting",
                 options_.client_id, pending_messages(), options_.stop_timeout.count());
    stop_timer_ = loop_.add_timer(options_.stop_timeout, [this] {
      stop_timer_ = 0;
      finish_stop();
    });
    send_disconnect();
  });
  check_stop_progress();
  request_write();
  update_interest();
}

void BatchedMqttClient::check_stop_progress() {
  if (state_ == State::kStopping && !disconnect_sent_ && in_flight_.empty() && waiting_.empty()) {
    send_disconnect();
  }
}

void BatchedMqttClient::send_disconnect() {
  if (disconnect_sent_ || !tls_) {
    return;
  }
  disconnect_sent_ = true;
  wire::append_disconnect(output_);
  request_write();
}

void BatchedMqttClient::finish_stop() {
  if (state_ == State::kStopped) {
    return;
  }
  abort();
  // Posted, so that on_stopped runs outside this client's own calls and may destroy it.
  loop_.post([this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) {
      notify_(callbacks_.on_stopped, "on_stopped");
    }
  });
}

void BatchedMqttClient::abort() {
  assert(loop_.in_loop_thread());
  if (state_ == State::kStopped) {
    return;
  }
  for (EventLoop::TimerId* timer :
       {&reconnect_timer_, &connect_timer_, &misc_timer_, &stop_timer_}) {
    if (*timer != 0) {
      loop_.cancel_timer(*timer);
      *timer = 0;
    }
  }
  close_connection();
  const auto abandoned = static_cast<std::uint64_t>(
      std::count_if(in_flight_.begin(), in_flight_.end(),
                    [](const auto& entry) { return entry.second.message.id != 0; }) +
      std::count_if(waiting_.begin(), waiting_.end(),
                    [](const Outgoing& message) { return message.id != 0; }));
  if (abandoned > 0) {
    stats_.dropped_at_stop += abandoned;
    spdlog::warn("mqtt {}: stopped with {} publish(es) unacknowledged or queued",
                 options_.client_id, abandoned);
  }
  in_flight_.clear();
  waiting_.clear();
  state_ = State::kStopped;
}

// --- publishing and subscribing ---------------------------------------------------------------

Result<MessageId> BatchedMqttClient::publish(std::string_view topic, std::string_view payload) {
  return publish(topic, payload, options_.default_qos, false);
}

Result<MessageId> BatchedMqttClient::publish(std::string_view topic, std::string_view payload,
                                             int qos, bool retain) {
  assert(loop_.in_loop_thread());
  const bool closed = state_ == State::kStopping || state_ == State::kStopped;
  if (const Result<Done> checked = detail::check_publish(
          options_.client_id, closed, to_string(state_), topic, payload.size(), qos, 1);
      !checked) {
    return Result<MessageId>::failure(checked.status().code, checked.status().message);
  }
  if (pending_messages() >= options_.max_pending_messages) {
    const Status refused = queue_full_.refuse(options_.client_id, options_.max_pending_messages,
                                              to_string(state_), stats_.dropped_queue_full);
    return Result<MessageId>::failure(refused.code, refused.message);
  }
  Outgoing message{next_id_++, std::string(topic), std::string(payload), qos, retain};
  const MessageId id = message.id;
  // Behind what waits, to keep the order.
  if (state_ == State::kConnected && waiting_.empty() && window_open(qos)) {
    send_publish(std::move(message));
    return id;
  }
  if (state_ != State::kConnected) {
    ++stats_.queued;
  }
  waiting_.push_back(std::move(message));
  return id;
}

bool BatchedMqttClient::window_open(int qos) const {
  return qos == 0 || in_flight_.size() < static_cast<std::size_t>(options_.max_inflight_messages);
}

void BatchedMqttClient::send_publish(Outgoing message) {
  const std::uint16_t packet_id = message.qos > 0 ? next_packet_id() : 0;
  wire::append_publish(output_, message.topic, message.payload, message.qos, message.retain, false,
                       packet_id);
  if (message.id != 0) {
    ++stats_.published;
  }
  if (message.qos > 0) {
    in_flight_.emplace(packet_id, InFlight{std::move(message), next_order_++});
  }
  request_write();
}

void BatchedMqttClient::send_waiting() {
  while ((state_ == State::kConnected || state_ == State::kStopping) && !waiting_.empty() &&
         window_open(waiting_.front().qos)) {
    Outgoing message = std::move(waiting_.front());
    waiting_.pop_front();
    send_publish(std::move(message));
  }
}

void BatchedMqttClient::resend_in_flight() {
  std::vector<const std::pair<const std::uint16_t, InFlight>*> order;
  order.reserve(in_flight_.size());
  for (const auto& entry : in_flight_) {
    order.push_back(&entry);
  }
  std::sort(order.begin(), order.end(),
            [](const auto* a, const auto* b) { return a->second.order < b->second.order; });
  for (const auto* entry : order) {
    const Outgoing& message = entry->second.message;
    wire::append_publish(output_, message.topic, message.payload, message.qos, message.retain, true,
                         entry->first);
  }
}

std::uint16_t BatchedMqttClient::next_packet_id() {
  // At most 60,001 identifiers await an answer (max_pending_messages, the status flag) besides
  // the SUBSCRIBEs of a connect: a free one is found within one turn of the 16-bit space.
  for (int tries = 0; tries < 65535; ++tries) {
    last_packet_id_ = static_cast<std::uint16_t>(last_packet_id_ + 1);
    if (last_packet_id_ != 0 && !in_flight_.contains(last_packet_id_) &&
        !pending_subacks_.contains(last_packet_id_)) {
      break;
    }
  }
  return last_packet_id_;
}

Result<Done> BatchedMqttClient::subscribe(std::string_view filter) {
  return subscribe(filter, options_.default_qos);
}

Result<Done> BatchedMqttClient::subscribe(std::string_view filter, int qos) {
  assert(loop_.in_loop_thread());
  const bool closed = state_ == State::kStopping || state_ == State::kStopped;
  if (Result<Done> checked =
          detail::check_subscribe(options_.client_id, closed, to_string(state_), filter, qos, 1);
      !checked) {
    return checked;
  }
  detail::remember(subscriptions_, filter, qos);
  if (state_ == State::kConnected) {
    send_subscribe({std::string(filter), qos});
  }
  return Done{};
}

Result<Done> BatchedMqttClient::unsubscribe(std::string_view filter) {
  assert(loop_.in_loop_thread());
  if (!detail::forget(subscriptions_, filter)) {
    return Result<Done>::failure(ErrorCode::kNotFound, "not subscribed to " + std::string(filter));
  }
  if (state_ == State::kConnected) {
    wire::append_unsubscribe(output_, next_packet_id(), filter);
    request_write();
  }
  return Done{};
}

void BatchedMqttClient::send_subscribe(const Subscription& subscription) {
  const std::uint16_t packet_id = next_packet_id();
  wire::append_subscribe(output_, packet_id, subscription.filter, subscription.qos);
  pending_subacks_[packet_id] = subscription.filter;
  request_write();
}

}  // namespace recmesh::mqtt
