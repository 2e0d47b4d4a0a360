#include "recmesh/mqtt/mqtt_client.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <netdb.h>
#include <sys/socket.h>
#include <utility>

#include <mosquitto.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"
#include "recmesh/mqtt/wire_codec.hpp"

#include "tls_batching.hpp"

namespace recmesh::mqtt {
namespace {

constexpr int kVerifyPeer = 1;  // SSL_VERIFY_PEER, as mosquitto_tls_opts_set expects it
constexpr int kSubscriptionRefused = 0x80;
constexpr auto kMiscInterval = std::chrono::seconds(1);  // keepalive bookkeeping
constexpr std::size_t kMaxAttemptLogLines = 8;
constexpr std::size_t kMaxPendingLimit = 60000;  // below the 16-bit packet id space
constexpr int kConnackServerUnavailable = 3;
constexpr int kMaxReadCallsPerRound = 256;

void ensure_library() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

void require(bool ok, const std::string& message) {
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument, "mqtt client options: " + message);
  }
}

// The pending error of a socket whose non-blocking connect finished (0: it connected).
int socket_error(int fd) {
  int error = 0;
  socklen_t length = sizeof(error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
    return errno;
  }
  return error;
}

// Errors libmosquitto returns from mosquitto_publish before it takes the message.
bool rejected_before_queueing(int rc) {
  switch (rc) {
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_NOMEM:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_NOT_SUPPORTED:
      return true;
    default:
      return false;
  }
}

const MqttClientOptions& validated(const MqttClientOptions& options) {
  options.validate();
  return options;
}

}  // namespace

std::string_view to_string(MqttClient::State state) {
  switch (state) {
    case MqttClient::State::kIdle:
      return "idle";
    case MqttClient::State::kWaiting:
      return "waiting";
    case MqttClient::State::kConnecting:
      return "connecting";
    case MqttClient::State::kHandshaking:
      return "handshaking";
    case MqttClient::State::kConnected:
      return "connected";
    case MqttClient::State::kStopping:
      return "stopping";
    case MqttClient::State::kStopped:
      return "stopped";
  }
  return "?";
}

void MqttClientOptions::validate() const {
  require(!client_id.empty() && client_id.size() <= 65535 && wire::valid_utf8_string(client_id),
          "client_id must be 1..65535 bytes of UTF-8");
  require(!host.empty() && host.find('\0') == std::string::npos, "host must not be empty");
  require(port >= 1 && port <= 65535, "port must be in 1..65535, got " + std::to_string(port));
  // SPEC §6: every client authenticates with its certificate.
  require(!cafile.empty(), "cafile is required");
  require(!certfile.empty(), "certfile is required");
  require(!keyfile.empty(), "keyfile is required");
  require(keepalive.count() >= 5 && keepalive.count() <= 65535,
          "keepalive must be in 5..65535 s, got " + std::to_string(keepalive.count()));
  require(default_qos >= 0 && default_qos <= 2,
          "default_qos must be 0, 1 or 2, got " + std::to_string(default_qos));
  require(status_topic.empty() || wire::valid_topic_name(status_topic),
          "status_topic is not a valid topic name: " + status_topic);
  require(connect_timeout.count() >= 1, "connect_timeout must be at least 1 ms");
  require(stop_timeout.count() >= 0, "stop_timeout must not be negative");
  require(max_pending_messages >= 1 && max_pending_messages <= kMaxPendingLimit,
          "max_pending_messages must be in 1.." + std::to_string(kMaxPendingLimit) + ", got " +
              std::to_string(max_pending_messages));
  require(
      max_inflight_messages >= 1 && max_inflight_messages <= 65535,
      "max_inflight_messages must be in 1..65535, got " + std::to_string(max_inflight_messages));
  require(max_incoming_packet_bytes >= 2 && max_incoming_packet_bytes <= wire::kMaxRemainingLength,
          "max_incoming_packet_bytes must be in 2.." + std::to_string(wire::kMaxRemainingLength));
  reconnect.validate();
}

void MqttClient::LibraryDeleter::operator()(mosquitto* handle) const {
  mosquitto_destroy(handle);
}

MqttClient::MqttClient(EventLoop& loop, MqttClientOptions options, MqttClientCallbacks callbacks,
                       UniformRandom random)
    : loop_(loop),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      backoff_(validated(options_).reconnect, std::move(random)) {
  configure_library();
}

MqttClient::~MqttClient() {
  for (EventLoop::TimerId* timer :
       {&reconnect_timer_, &connect_timer_, &misc_timer_, &stop_timer_}) {
    if (*timer != 0) {
      loop_.cancel_timer(*timer);
    }
  }
  release_socket();
  handle_.reset();
}

void MqttClient::configure_library() {
  ensure_library();
  const std::string& id = options_.client_id;
  handle_.reset(mosquitto_new(id.c_str(), options_.clean_session, this));
  if (!handle_) {
    throw Error(ErrorCode::kInternal,
                "mosquitto_new failed for client " + id + ": " + std::strerror(errno));
  }
  mosquitto* m = handle_.get();
  const auto check = [&id](int rc, const std::string& what) {
    if (rc != MOSQ_ERR_SUCCESS) {
      const std::string reason =
          rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc);
      throw Error(ErrorCode::kInvalidArgument, "mqtt client " + id + ": " + what + ": " + reason);
    }
  };
  check(mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311), "protocol version");
  if (options_.acknowledge_after_handling) {
    // Outgoing packets are queued and written by mosquitto_loop_write() alone, never from
    // inside mosquitto_loop_read(): a PUBACK then follows on_messages_received.
    check(mosquitto_threaded_set(m, true), "acknowledge after handling");
  }
  check(mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, options_.tcp_nodelay ? 1 : 0), "TCP_NODELAY");
  check(mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, options_.max_inflight_messages),
        "max_inflight_messages");
  // libmosquitto only checks here that the files can be opened; it loads them at connect.
  check(mosquitto_tls_set(m, options_.cafile.c_str(), nullptr, options_.certfile.c_str(),
                          options_.keyfile.c_str(), &MqttClient::password_cb),
        "cannot use cafile " + options_.cafile.string() + ", certfile " +
            options_.certfile.string() + " or keyfile " + options_.keyfile.string());
  check(mosquitto_tls_opts_set(m, kVerifyPeer, "tlsv1.3", nullptr), "TLS 1.3");
  if (!options_.status_topic.empty()) {
    check(
        mosquitto_will_set(m, options_.status_topic.c_str(),
                           static_cast<int>(kStatusOffline.size()), kStatusOffline.data(), 1, true),
        "Last Will on " + options_.status_topic);
  }
  mosquitto_connect_callback_set(m, &MqttClient::on_connect_cb);
  mosquitto_disconnect_callback_set(m, &MqttClient::on_disconnect_cb);
  mosquitto_publish_callback_set(m, &MqttClient::on_publish_cb);
  mosquitto_subscribe_callback_set(m, &MqttClient::on_subscribe_cb);
  mosquitto_message_callback_set(m, &MqttClient::on_message_cb);
  // The log callback is set for each connection attempt only (begin_attempt, handle_connack).
}

// --- libmosquitto callbacks: nothing may escape into C -----------------------------------------

void MqttClient::on_connect_cb(mosquitto*, void* user_data, int rc) {
  try {
    static_cast<MqttClient*>(user_data)->handle_connack(rc);
  } catch (const std::exception& e) {
    spdlog::error("mqtt: handling CONNACK threw: {}", e.what());
  } catch (...) {
    spdlog::error("mqtt: handling CONNACK threw");
  }
}

void MqttClient::on_disconnect_cb(mosquitto*, void* user_data, int rc) {
  const int saved_errno = errno;
  try {
    static_cast<MqttClient*>(user_data)->handle_library_disconnect(rc, saved_errno);
  } catch (const std::exception& e) {
    spdlog::error("mqtt: handling a disconnect threw: {}", e.what());
  } catch (...) {
    spdlog::error("mqtt: handling a disconnect threw");
  }
}

void MqttClient::on_publish_cb(mosquitto*, void* user_data, int mid) {
  auto* self = static_cast<MqttClient*>(user_data);
  try {
    const auto it = self->in_flight_.find(mid);
    if (it == self->in_flight_.end()) {
      return;  // a QoS 0 message was written; we do not track those
    }
    const MessageId id = it->second;
    self->in_flight_.erase(it);
    if (id != 0) {  // 0: the status flag, not the caller's
      ++self->stats_.delivered;
      self->notify_(self->callbacks_.on_delivered, "on_delivered", id);
    }
  } catch (...) {
    spdlog::error("mqtt {}: handling PUBACK threw", self->options_.client_id);
  }
}

void MqttClient::on_subscribe_cb(mosquitto*, void* user_data, int mid, int count,
                                 const int* granted) {
  auto* self = static_cast<MqttClient*>(user_data);
  try {
    const auto it = self->pending_subacks_.find(mid);
    if (it == self->pending_subacks_.end()) {
      return;
    }
    const std::string filter = std::move(it->second);
    self->pending_subacks_.erase(it);
    const int qos = count > 0 && granted != nullptr ? granted[0] : kSubscriptionRefused;
    if (qos == kSubscriptionRefused) {
      ++self->stats_.subscriptions_refused;
      if (self->refused_filters_.insert(filter).second) {
        spdlog::warn("mqtt {}: the broker refused the subscription to {}", self->options_.client_id,
                     filter);
      }
    }
    self->notify_(self->callbacks_.on_subscribe, "on_subscribe", filter, qos);
  } catch (...) {
    spdlog::error("mqtt {}: handling SUBACK threw", self->options_.client_id);
  }
}

void MqttClient::on_message_cb(mosquitto*, void* user_data, const mosquitto_message* message) {
  auto* self = static_cast<MqttClient*>(user_data);
  try {
    ++self->stats_.received;
    IncomingMessage incoming;
    incoming.topic = message->topic != nullptr ? message->topic : "";
    if (message->payloadlen > 0) {
      incoming.payload = std::string_view(static_cast<const char*>(message->payload),
                                          static_cast<std::size_t>(message->payloadlen));
    }
    incoming.qos = message->qos;
    incoming.retain = message->retain;
    self->notify_(self->callbacks_.on_message, "on_message", incoming);
  } catch (...) {
    spdlog::error("mqtt {}: handling a message threw", self->options_.client_id);
  }
}

void MqttClient::on_log_cb(mosquitto*, void* user_data, int level, const char* text) {
  auto* self = static_cast<MqttClient*>(user_data);
  if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) == 0 || text == nullptr) {
    return;
  }
  try {
    std::string line(text);
    // "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed"
    if (const auto colon = line.find("]: ");
        line.starts_with("OpenSSL Error[") && colon != std::string::npos) {
      line = "OpenSSL: " + line.substr(colon + 3);
    }
    auto& lines = self->attempt_log_;
    if (lines.size() < kMaxAttemptLogLines &&
        std::find(lines.begin(), lines.end(), line) == lines.end()) {
      lines.push_back(std::move(line));
    }
  } catch (...) {
    // Out of memory while keeping a diagnostic line: the line is lost, nothing else.
  }
}

int MqttClient::password_cb(char* buf, int size, int, void* user_data) {
  // libmosquitto hands its own handle to OpenSSL as the callback's argument.
  auto* self = static_cast<MqttClient*>(mosquitto_userdata(static_cast<mosquitto*>(user_data)));
  if (self == nullptr || !self->options_.key_passphrase || size <= 0) {
    return 0;  // no passphrase: the key fails to load instead of OpenSSL prompting on a tty
  }
  const std::string_view passphrase = self->options_.key_passphrase->reveal();
  if (passphrase.size() > static_cast<std::size_t>(size)) {
    return 0;
  }
  std::memcpy(buf, passphrase.data(), passphrase.size());
  return static_cast<int>(passphrase.size());
}

// --- driving libmosquitto ---------------------------------------------------------------------

template <typename F>
int MqttClient::call_library(F&& f) {
  ++library_depth_;
  errno = 0;
  const int rc = f();
  const int saved_errno = errno;
  --library_depth_;
  library_errno_ = saved_errno;
  if (library_depth_ == 0) {
    after_library_call(rc, saved_errno);
  }
  return rc;
}

void MqttClient::after_library_call(int rc, int saved_errno) {
  if (destroy_handle_) {
    destroy_handle_ = false;
    handle_.reset();
    return;
  }
  if (!handle_) {
    return;
  }
  // Noted now: libmosquitto frees the TLS session when the connection then fails.
  if (state_ == State::kHandshaking && !handshake_done_ && tls_handshake_done()) {
    handshake_done_ = true;
  }
  if (socket_ >= 0 && mosquitto_socket(handle_.get()) != socket_) {
    // libmosquitto closed the socket without a disconnect callback: in 2.0 a failed TLS
    // handshake does that.
    release_socket();
    if (state_ == State::kHandshaking || state_ == State::kConnected ||
        state_ == State::kStopping) {
      handle_library_disconnect(rc != MOSQ_ERR_SUCCESS ? rc : MOSQ_ERR_CONN_LOST, saved_errno);
      if (!handle_) {
        return;
      }
    }
  }
  // After the CONNACK handling returned, so that messages libmosquitto re-sends from the last
  // connection go out before those queued since.
  if (state_ == State::kConnected && !queue_.empty()) {
    flush_queue();
  }
  check_stop_progress();
  request_write();
  update_interest();
  if (reading_resumed_in_call_) {
    reading_resumed_in_call_ = false;
    read_buffered_tls_input();
  }
}

void MqttClient::update_interest() {
  if (socket_ < 0 || !handle_) {
    return;
  }
  const bool read =
      state_ != State::kConnecting && !(reading_paused_ && state_ == State::kConnected);
  // Connected, a round's writes are posted (request_write()); the socket is watched for
  // writability only while it is full.
  const bool write =
      state_ == State::kConnecting || tls_write_blocked_ ||
      (state_ == State::kConnected ? library_write_blocked_ && !holding_writes()
                                   : !holding_writes() && mosquitto_want_write(handle_.get()));
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

void MqttClient::release_socket() {
  if (socket_ >= 0) {
    loop_.unwatch(socket_);
    socket_ = -1;
  }
  watch_read_ = false;
  watch_write_ = false;
  tls_write_blocked_ = false;
  library_write_blocked_ = false;
}

int MqttClient::connect_error() const {
  if (const int error = socket_error(socket_); error != 0) {
    return error;
  }
  sockaddr_storage peer{};
  socklen_t length = sizeof(peer);
  if (::getpeername(socket_, reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
    return 0;
  }
  // Not connected, and SO_ERROR already consumed: libmosquitto's first TLS write, made before
  // the connect finished, read it. That write left it in errno, kept by begin_attempt().
  return connect_errno_hint_ != 0 ? connect_errno_hint_ : ENOTCONN;
}

SSL* MqttClient::tls_session() const {
  return static_cast<SSL*>(mosquitto_ssl_get(handle_.get()));
}

bool MqttClient::tls_handshake_done() const {
  const SSL* ssl = tls_session();
  return ssl != nullptr && SSL_is_init_finished(ssl) == 1;
}

std::string MqttClient::endpoint() const {
  return options_.host + ":" + std::to_string(options_.port);
}

std::string MqttClient::attempt_detail() const {
  std::string text;
  for (const std::string& line : attempt_log_) {
    text += "; " + line;
  }
  return text;
}

Status MqttClient::describe_failure(int rc, int saved_errno) const {
  if (connack_rc_ && *connack_rc_ != 0) {
    const ErrorCode code = *connack_rc_ == kConnackServerUnavailable ? ErrorCode::kUnavailable
                                                                     : ErrorCode::kPermissionDenied;
    return {code,
            endpoint() + " refused the connection: " + mosquitto_connack_string(*connack_rc_)};
  }
  std::string cause;
  switch (rc) {
    case MOSQ_ERR_ERRNO:
      cause = std::strerror(saved_errno);
      break;
    case MOSQ_ERR_EAI:
      cause = std::string("cannot resolve host: ") + gai_strerror(saved_errno);
      break;
    default:
      cause = mosquitto_strerror(rc);
      break;
  }
  const auto logged = [this](std::string_view needle) {
    return std::any_of(attempt_log_.begin(), attempt_log_.end(), [needle](const std::string& line) {
      return line.find(needle) != std::string::npos;
    });
  };
  if (state_ == State::kConnected) {
    return {ErrorCode::kUnavailable,
            "connection to " + endpoint() + " lost: " + cause + attempt_detail()};
  }
  // libmosquitto sets EPROTO only when SSL_read or SSL_write fails, and calls them only once
  // SSL_connect succeeded: a handshake that completed within the connect call itself, when
  // the broker answered fast enough, leaves no other trace.
  const bool handshake_done = handshake_done_ || (rc == MOSQ_ERR_ERRNO && saved_errno == EPROTO);
  // OpenSSL 3 reports a peer that closes mid-handshake as an error, not as EOF.
  if (logged("unexpected eof") && !handshake_done) {
    return {ErrorCode::kUnavailable,
            endpoint() + " closed the connection during the TLS handshake" + attempt_detail()};
  }
  if (rc == MOSQ_ERR_TLS || logged("OpenSSL")) {
    // The log lines name the reason; libmosquitto's own text adds nothing to them.
    const std::string text = attempt_log_.empty() ? ": " + cause : attempt_detail();
    return {ErrorCode::kPermissionDenied, "TLS with " + endpoint() + " failed" + text};
  }
  if (handshake_done) {
    // With TLS 1.3 the broker checks the client certificate after the client's side of the
    // handshake is done; its alert is lost when the close overtakes it.
    return {ErrorCode::kUnavailable,
            endpoint() +
                " closed the connection after the TLS handshake, before CONNACK (as a broker "
                "refusing the client certificate does): " +
                cause};
  }
  return {ErrorCode::kUnavailable, "cannot connect to " + endpoint() + ": " + cause};
}

// --- connection life cycle --------------------------------------------------------------------

void MqttClient::start() {
  assert(loop_.in_loop_thread());
  if (state_ != State::kIdle) {
    return;
  }
  begin_attempt();
}

void MqttClient::begin_attempt() {
  reconnect_timer_ = 0;
  if (!handle_ || (state_ != State::kIdle && state_ != State::kWaiting)) {
    return;
  }
  state_ = State::kConnecting;
  ++stats_.connect_attempts;
  attempt_log_.clear();
  connack_rc_.reset();
  handshake_done_ = false;
  mosquitto* m = handle_.get();
  // Its errors name why an attempt fails (describe_failure).
  mosquitto_log_callback_set(m, &MqttClient::on_log_cb);
  const bool first = first_attempt_;
  // Closes a socket a failed attempt left behind (libmosquitto 2.0 offers no other way).
  const int rc = call_library([&] {
    return first ? mosquitto_connect_async(m, options_.host.c_str(), options_.port,
                                           static_cast<int>(options_.keepalive.count()))
                 : mosquitto_reconnect_async(m);
  });
  first_attempt_ = false;
  connect_errno_hint_ = library_errno_;
  if (rc != MOSQ_ERR_SUCCESS) {
    fail_attempt(describe_failure(rc, library_errno_));
    return;
  }
  const int fd = mosquitto_socket(m);
  if (fd < 0) {
    fail_attempt({ErrorCode::kInternal, "libmosquitto started a connection without a socket"});
    return;
  }
  // Writable once the TCP connect has finished, either way: on_socket_event() tells which.
  const Result<Done> watched =
      loop_.watch(fd, false, true, [this](FdEvents events) { on_socket_event(events); });
  if (!watched) {
    fail_attempt(watched.status());
    return;
  }
  socket_ = fd;
  watch_read_ = false;
  watch_write_ = true;
  connect_timer_ = loop_.add_timer(options_.connect_timeout, [this] {
    connect_timer_ = 0;
    on_connect_timeout();
  });
}

void MqttClient::on_socket_event(FdEvents events) {
  if (!handle_ || socket_ < 0) {
    return;
  }
  if (state_ == State::kConnecting) {
    // libmosquitto would start TLS on a socket whose connect failed and then report success
    // forever (SSL_ERROR_SYSCALL counts as "try again"): ask the kernel how the connect ended.
    if (const int error = connect_error(); error != 0) {
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
    state_ = State::kHandshaking;
    // libmosquitto advances the handshake only from its read path.
    read_socket();
    return;
  }
  if (state_ == State::kHandshaking && !tls_handshake_done()) {
    // Reading first lets OpenSSL see a TLS alert, whose reason is the useful one.
    read_socket();
    if ((events.hangup || events.error) && state_ == State::kHandshaking && socket_ >= 0 &&
        !tls_handshake_done()) {
      // The SSL_ERROR_SYSCALL case libmosquitto keeps retrying: the read's errno says why.
      int error = socket_error(socket_);
      if (error == 0 && library_errno_ != EAGAIN && library_errno_ != EWOULDBLOCK &&
          library_errno_ != EINTR) {
        error = library_errno_;
      }
      fail_attempt({ErrorCode::kUnavailable,
                    endpoint() + " closed the connection during the TLS handshake" +
                        (error != 0 ? std::string(": ") + std::strerror(error) : "") +
                        attempt_detail()});
    }
    return;
  }
  // TLS is up: libmosquitto notices EOF and errors by itself from here on.
  if (events.readable || events.hangup || events.error) {
    read_socket();
  }
  if (events.writable && handle_ && socket_ >= 0) {
    write_socket();
  }
}

void MqttClient::read_socket() {
  const std::uint64_t before = stats_.received;
  // libmosquitto reads one packet per call when nothing of ours awaits an acknowledgement:
  // once connected, a round reads on until the socket is drained (bounded, so that the loop's
  // other connections get their turn), and the batch is handled and acknowledged as one.
  for (int call = 0; call < kMaxReadCallsPerRound; ++call) {
    call_library([this] { return mosquitto_loop_read(handle_.get(), 1); });
    if (!handle_ || socket_ < 0 || state_ != State::kConnected || reading_paused_ ||
        library_errno_ == EAGAIN || library_errno_ == EWOULDBLOCK || !tls_input_held()) {
      break;  // with nothing read ahead, the socket is asked again only when epoll says so
    }
  }
  if (stats_.received != before) {
    notify_(callbacks_.on_messages_received, "on_messages_received");
    // The batch is handled: its acknowledgements go out now rather than a poll round later.
    flush();
  }
  read_buffered_tls_input();
}

bool MqttClient::tls_input_held() const {
  const SSL* ssl = tls_session();
  return ssl != nullptr && SSL_has_pending(ssl) == 1;
}

void MqttClient::write_socket() {
  writing_ = true;
  flush_tls();  // what was gathered before goes first
  if (handle_ && socket_ >= 0 && !tls_write_blocked_ && !holding_writes() &&
      mosquitto_want_write(handle_.get())) {
    call_library([this] { return mosquitto_loop_write(handle_.get(), 1); });
    // libmosquitto writes until the socket refuses: what it still holds waits for writability.
    library_write_blocked_ = handle_ && socket_ >= 0 && mosquitto_want_write(handle_.get());
    flush_tls();
  }
  writing_ = false;
  update_interest();
}

void MqttClient::flush() {
  assert(loop_.in_loop_thread());
  if (library_depth_ > 0 || !handle_ || socket_ < 0 || state_ != State::kConnected ||
      writes_held_ || !mosquitto_want_write(handle_.get())) {
    return;
  }
  write_socket();
}

void MqttClient::flush_tls() {
  if (!handle_ || socket_ < 0 || (state_ != State::kConnected && state_ != State::kStopping)) {
    return;
  }
  SSL* ssl = tls_session();
  // A failed socket is not reported here: its error event makes libmosquitto's next read see it.
  tls_write_blocked_ = ssl != nullptr && tls_batching::flush_tls_writes(ssl) ==
                                             tls_batching::FlushResult::kWouldBlock;
}

bool MqttClient::writes_ready() const {
  if (tls_write_blocked_ || library_write_blocked_) {
    return false;  // the socket is full: its writability event writes
  }
  if (!holding_writes() && mosquitto_want_write(handle_.get())) {
    return true;
  }
  const SSL* ssl = tls_session();
  return ssl != nullptr && tls_batching::pending_tls_writes(ssl) > 0;
}

void MqttClient::request_write() {
  if (write_posted_ || writing_ || !handle_ || socket_ < 0 || state_ != State::kConnected ||
      !writes_ready()) {
    return;
  }
  // Once connected, what a round produced is written at its end, in one go, without watching
  // the socket for writability (two epoll_ctl calls and a round each time) unless it is full.
  loop_.defer(once_asked(write_posted_, [this] {
    if (handle_ && socket_ >= 0 && state_ == State::kConnected) {
      write_socket();
    }
  }));
}

void MqttClient::read_buffered_tls_input() {
  if (tls_read_posted_ || reading_paused_ || !handle_ || socket_ < 0 ||
      (state_ != State::kConnected && state_ != State::kStopping)) {
    return;
  }
  SSL* ssl = tls_session();
  if (ssl == nullptr || !tls_batching::tls_input_buffered(ssl)) {
    return;
  }
  // The socket will not say readable for bytes already taken from it. Posted rather than read
  // now, so that the other connections of this loop get their turn in between.
  loop_.post(once_asked(tls_read_posted_, [this] {
    if (handle_ && socket_ >= 0 && !reading_paused_ &&
        (state_ == State::kConnected || state_ == State::kStopping)) {
      read_socket();
    }
  }));
}

template <typename F>
EventLoop::Task MqttClient::once_asked(bool& asked, F work) {
  asked = true;
  return [&asked, alive = std::weak_ptr<int>(alive_), work = std::move(work)] {
    if (alive.expired()) {
      return;  // the client, and `asked` with it, is gone
    }
    asked = false;
    work();
  };
}

void MqttClient::hold_writes(bool held) {
  assert(loop_.in_loop_thread());
  assert(!held || options_.acknowledge_after_handling);
  if (writes_held_ == held) {
    return;
  }
  writes_held_ = held;
  if (library_depth_ > 0) {
    return;  // inside a libmosquitto call: after_library_call() updates what is watched
  }
  if (!held) {
    flush();
  }
  update_interest();  // a held socket must not be watched for writability: it would spin
}

bool MqttClient::holding_writes() const {
  return writes_held_ && state_ == State::kConnected;
}

void MqttClient::pause_reading(bool paused) {
  assert(loop_.in_loop_thread());
  reading_paused_ = paused;
  if (library_depth_ > 0) {
    reading_resumed_in_call_ = !paused;  // after_library_call() updates what is watched
    return;
  }
  update_interest();
  if (!paused) {
    read_buffered_tls_input();
  }
}

void MqttClient::on_connect_timeout() {
  if (state_ != State::kConnecting && state_ != State::kHandshaking) {
    return;
  }
  const std::string phase = state_ == State::kConnecting ? "TCP connect"
                            : tls_handshake_done()       ? "CONNACK"
                                                         : "TLS handshake";
  fail_attempt({ErrorCode::kUnavailable, "no answer from " + endpoint() + " within " +
                                             std::to_string(options_.connect_timeout.count()) +
                                             " ms (waiting for the " + phase + ")" +
                                             attempt_detail()});
}

void MqttClient::handle_connack(int rc) {
  connack_rc_ = rc;
  if (rc != 0 || state_ != State::kHandshaking) {
    return;  // a refusal: libmosquitto closes the socket and reports it as a disconnect
  }
  if (connect_timer_ != 0) {
    loop_.cancel_timer(connect_timer_);
    connect_timer_ = 0;
  }
  state_ = State::kConnected;
  connected_at_ = loop_.now();
  ++stats_.connections;
  attempt_log_.clear();
  // Once connected, libmosquitto would format a debug line for every packet (a malloc and a
  // vsnprintf each) only for the callback to discard it: a lost connection is described by
  // its error code.
  mosquitto_log_callback_set(handle_.get(), nullptr);
  if (SSL* ssl = tls_session(); ssl != nullptr && !tls_batching::install(ssl)) {
    spdlog::debug("mqtt {}: no memory to batch TLS writes; writing unbatched", options_.client_id);
  }
  if (!last_failure_logged_.empty()) {
    spdlog::info("mqtt {}: connected to {} again", options_.client_id, endpoint());
    last_failure_logged_.clear();
  } else {
    spdlog::debug("mqtt {}: connected to {}", options_.client_id, endpoint());
  }
  // The broker may have kept the session, but not if it lost its state: say it again.
  for (const Subscription& subscription : subscriptions_) {
    send_subscribe(subscription);
  }
  if (!options_.status_topic.empty()) {
    publish_status(kStatusOnline);
  }
  queue_full_.after_connect(options_.client_id);
  schedule_misc();
  notify_(callbacks_.on_connect, "on_connect");
}

void MqttClient::handle_library_disconnect(int rc, int saved_errno) {
  // libmosquitto closed the socket before telling us.
  release_socket();
  switch (state_) {
    case State::kConnecting:
    case State::kHandshaking:
      fail_attempt(describe_failure(rc, saved_errno));
      break;
    case State::kConnected:
      lose_connection(describe_failure(rc, saved_errno));
      break;
    case State::kStopping:
      finish_stop();
      break;
    default:
      break;
  }
}

void MqttClient::fail_attempt(Status reason) {
  // A socket libmosquitto still holds is closed by the next attempt.
  release_socket();
  if (connect_timer_ != 0) {
    loop_.cancel_timer(connect_timer_);
    connect_timer_ = 0;
  }
  pending_subacks_.clear();
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

void MqttClient::lose_connection(Status reason) {
  if (misc_timer_ != 0) {
    loop_.cancel_timer(misc_timer_);
    misc_timer_ = 0;
  }
  pending_subacks_.clear();
  ++stats_.connection_losses;
  last_error_ = reason.message;
  if (loop_.now() - connected_at_ >= options_.reconnect.stable_after) {
    backoff_.reset();
  }
  spdlog::warn("mqtt {}: {}; reconnecting with backoff", options_.client_id, reason.message);
  last_failure_logged_ = reason.message;
  attempt_log_.clear();
  schedule_reconnect();
  notify_(callbacks_.on_disconnect, "on_disconnect", reason);
}

void MqttClient::schedule_reconnect() {
  state_ = State::kWaiting;
  const auto delay = backoff_.next();
  spdlog::debug("mqtt {}: next attempt in {} ms", options_.client_id, delay.count());
  reconnect_timer_ = loop_.add_timer(delay, [this] { begin_attempt(); });
}

void MqttClient::schedule_misc() {
  misc_timer_ = loop_.add_timer(kMiscInterval, [this] {
    misc_timer_ = 0;
    if (!handle_ || (state_ != State::kConnected && state_ != State::kStopping)) {
      return;
    }
    // Sends PINGREQ when due and closes a connection whose broker stopped answering.
    call_library([this] { return mosquitto_loop_misc(handle_.get()); });
    if (handle_ && (state_ == State::kConnected || state_ == State::kStopping)) {
      schedule_misc();
    }
  });
}

// --- stopping ---------------------------------------------------------------------------------

void MqttClient::stop() {
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
    publish_status(kStatusOffline);
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
                 options_.client_id, in_flight_.size(), options_.stop_timeout.count());
    // Bounded too, so that stop() always ends.
    stop_timer_ = loop_.add_timer(options_.stop_timeout, [this] {
      stop_timer_ = 0;
      finish_stop();
    });
    send_disconnect();
  });
  if (library_depth_ == 0) {
    check_stop_progress();
    update_interest();
  }
}

void MqttClient::check_stop_progress() {
  if (state_ == State::kStopping && !disconnect_sent_ && in_flight_.empty()) {
    send_disconnect();
  }
}

void MqttClient::send_disconnect() {
  if (disconnect_sent_ || !handle_) {
    return;
  }
  disconnect_sent_ = true;
  // Once written, libmosquitto closes the socket and reports a disconnect: finish_stop().
  const int rc = call_library([this] { return mosquitto_disconnect(handle_.get()); });
  if (rc == MOSQ_ERR_NO_CONN && state_ == State::kStopping) {
    finish_stop();
  }
}

void MqttClient::finish_stop() {
  if (state_ == State::kStopped) {
    return;
  }
  abort();
  // Posted, so that on_stopped runs outside every libmosquitto call and may destroy the client.
  loop_.post([this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) {
      notify_(callbacks_.on_stopped, "on_stopped");
    }
  });
}

void MqttClient::abort() {
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
  release_socket();
  const auto abandoned = static_cast<std::uint64_t>(
      std::count_if(in_flight_.begin(), in_flight_.end(),
                    [](const auto& entry) { return entry.second != 0; }) +
      static_cast<std::ptrdiff_t>(queue_.size()));
  if (abandoned > 0) {
    stats_.dropped_at_stop += abandoned;
    spdlog::warn("mqtt {}: stopped with {} publish(es) unacknowledged or queued",
                 options_.client_id, abandoned);
  }
  in_flight_.clear();
  queue_.clear();
  pending_subacks_.clear();
  state_ = State::kStopped;
  // Closes the socket, without DISCONNECT unless stop() sent one. Inside a libmosquitto call
  // the handle must outlive the call: after_library_call() destroys it then.
  if (library_depth_ > 0) {
    destroy_handle_ = true;
  } else {
    handle_.reset();
  }
}

// --- publishing and subscribing ---------------------------------------------------------------

Result<MessageId> MqttClient::publish(std::string_view topic, std::string_view payload) {
  return publish(topic, payload, options_.default_qos, false);
}

Result<MessageId> MqttClient::publish(std::string_view topic, std::string_view payload, int qos,
                                      bool retain) {
  assert(loop_.in_loop_thread());
  const bool closed = state_ == State::kStopping || state_ == State::kStopped;
  if (const Result<Done> checked = detail::check_publish(
          options_.client_id, closed, to_string(state_), topic, payload.size(), qos, 2);
      !checked) {
    return Result<MessageId>::failure(checked.status().code, checked.status().message);
  }
  if (pending_messages() >= options_.max_pending_messages) {
    const Status refused = queue_full_.refuse(options_.client_id, options_.max_pending_messages,
                                              to_string(state_), stats_.dropped_queue_full);
    return Result<MessageId>::failure(refused.code, refused.message);
  }
  Outgoing message{next_id_++, std::string(topic), std::string(payload), qos, retain};
  // Behind what is queued, to keep the order: the queue drains right after a CONNACK.
  if (state_ == State::kConnected && queue_.empty()) {
    return hand_over(std::move(message));
  }
  const MessageId id = message.id;
  queue_.push_back(std::move(message));
  ++stats_.queued;
  return id;
}

Result<MessageId> MqttClient::hand_over(Outgoing message) {
  int mid = 0;
  const int rc = call_library([&] {
    return mosquitto_publish(handle_.get(), &mid, message.topic.c_str(),
                             static_cast<int>(message.payload.size()), message.payload.data(),
                             message.qos, message.retain);
  });
  if (rejected_before_queueing(rc)) {
    return Result<MessageId>::failure(
        rc == MOSQ_ERR_NOMEM ? ErrorCode::kInternal : ErrorCode::kInvalidArgument,
        "publish to " + message.topic + ": " + mosquitto_strerror(rc));
  }
  // Any other error came from writing to the socket after libmosquitto took the message: it
  // sends a QoS>=1 message again after the reconnect this error leads to.
  ++stats_.published;
  if (message.qos > 0) {
    in_flight_[mid] = message.id;
  }
  return message.id;
}

void MqttClient::publish_status(std::string_view value) {
  int mid = 0;
  const int rc = call_library([&] {
    return mosquitto_publish(handle_.get(), &mid, options_.status_topic.c_str(),
                             static_cast<int>(value.size()), value.data(), 1, true);
  });
  if (rejected_before_queueing(rc)) {
    spdlog::error("mqtt {}: cannot publish status {}: {}", options_.client_id, value,
                  mosquitto_strerror(rc));
    return;
  }
  in_flight_[mid] = 0;
}

void MqttClient::flush_queue() {
  // One after_library_call() for the batch, made by the caller, instead of one per message.
  ++library_depth_;
  while (!queue_.empty() && state_ == State::kConnected && handle_) {
    Outgoing message = std::move(queue_.front());
    queue_.pop_front();
    const std::string topic = message.topic;
    const Result<MessageId> sent = hand_over(std::move(message));
    if (!sent) {
      // Checked when queued: only memory exhaustion gets here.
      spdlog::error("mqtt {}: queued publish to {} lost: {}", options_.client_id, topic,
                    sent.status().message);
    }
  }
  --library_depth_;
}

Result<Done> MqttClient::subscribe(std::string_view filter) {
  return subscribe(filter, options_.default_qos);
}

Result<Done> MqttClient::subscribe(std::string_view filter, int qos) {
  assert(loop_.in_loop_thread());
  const bool closed = state_ == State::kStopping || state_ == State::kStopped;
  if (Result<Done> checked =
          detail::check_subscribe(options_.client_id, closed, to_string(state_), filter, qos, 2);
      !checked) {
    return checked;
  }
  detail::remember(subscriptions_, filter, qos);
  if (state_ == State::kConnected) {
    send_subscribe({std::string(filter), qos});
  }
  return Done{};
}

Result<Done> MqttClient::unsubscribe(std::string_view filter) {
  assert(loop_.in_loop_thread());
  if (!detail::forget(subscriptions_, filter)) {
    return Result<Done>::failure(ErrorCode::kNotFound, "not subscribed to " + std::string(filter));
  }
  if (state_ == State::kConnected) {
    const std::string text(filter);
    call_library([&] { return mosquitto_unsubscribe(handle_.get(), nullptr, text.c_str()); });
  }
  return Done{};
}

void MqttClient::send_subscribe(const Subscription& subscription) {
  int mid = 0;
  const int rc = call_library([&] {
    return mosquitto_subscribe(handle_.get(), &mid, subscription.filter.c_str(), subscription.qos);
  });
  if (rc == MOSQ_ERR_SUCCESS) {
    pending_subacks_[mid] = subscription.filter;
  } else {
    // The connection is failing; the next connect sends it again.
    spdlog::debug("mqtt {}: SUBSCRIBE {} not sent: {}", options_.client_id, subscription.filter,
                  mosquitto_strerror(rc));
  }
}

}  // namespace recmesh::mqtt
