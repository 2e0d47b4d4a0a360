#include "scripted_broker.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "recmesh/core/loopback.hpp"

namespace recmesh::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kPollSlice = 50ms;  // how often a waiting script looks at the stop flag
constexpr std::size_t kMaxLengthBytes = 4;

std::string u16(std::size_t value) {
  return {static_cast<char>((value >> 8) & 0xffU), static_cast<char>(value & 0xffU)};
}

std::uint16_t read_u16(std::string_view bytes, std::size_t at) {
  if (bytes.size() < at + 2) {
    return 0;
  }
  return static_cast<std::uint16_t>((static_cast<unsigned char>(bytes[at]) << 8) |
                                    static_cast<unsigned char>(bytes[at + 1]));
}

// The packet at the front of `input`: its total size, 0 while incomplete; nullopt: not MQTT.
std::optional<std::size_t> packet_size(std::string_view input, std::size_t& header) {
  std::size_t remaining = 0;
  std::size_t multiplier = 1;
  for (std::size_t at = 1;; ++at) {
    if (at > kMaxLengthBytes) {
      return std::nullopt;
    }
    if (at >= input.size()) {
      return 0;
    }
    const auto digit = static_cast<unsigned char>(input[at]);
    remaining += (digit & 0x7fU) * multiplier;
    multiplier *= 128;
    if ((digit & 0x80U) == 0) {
      header = at + 1;
      break;
    }
  }
  return input.size() - header >= remaining ? header + remaining : 0;
}

}  // namespace

namespace mqtt_bytes {

std::string remaining_length(std::size_t n) {
  std::string out;
  do {
    auto digit = static_cast<unsigned char>(n % 128);
    n /= 128;
    if (n > 0) {
      digit |= 0x80U;
    }
    out += static_cast<char>(digit);
  } while (n > 0);
  return out;
}

std::string packet(unsigned char first_byte, std::string_view body) {
  std::string out(1, static_cast<char>(first_byte));
  out += remaining_length(body.size());
  out += body;
  return out;
}

std::string connack(unsigned char return_code, bool session_present) {
  const std::string body{static_cast<char>(session_present ? 1 : 0),
                         static_cast<char>(return_code)};
  return packet(0x20, body);
}

std::string publish(std::string_view topic, std::string_view payload, int qos,
                    std::uint16_t packet_id) {
  std::string body = u16(topic.size());
  body += topic;
  if (qos > 0) {
    body += u16(packet_id);
  }
  body += payload;
  return packet(static_cast<unsigned char>(0x30U | (static_cast<unsigned>(qos) << 1)), body);
}

std::string puback(std::uint16_t packet_id) {
  return packet(0x40, u16(packet_id));
}

std::string suback(std::uint16_t packet_id, unsigned char granted) {
  return packet(0x90, u16(packet_id) + std::string(1, static_cast<char>(granted)));
}

}  // namespace mqtt_bytes

std::string ClientPacket::publish_topic() const {
  return body.substr(2, read_u16(body, 0));
}

std::uint16_t ClientPacket::publish_packet_id() const {
  return (first_byte & 0x06U) != 0 ? read_u16(body, std::size_t{2} + read_u16(body, 0)) : 0;
}

std::string ClientPacket::publish_payload() const {
  const std::size_t header =
      std::size_t{2} + read_u16(body, 0) + ((first_byte & 0x06U) != 0 ? std::size_t{2} : 0);
  return header <= body.size() ? body.substr(header) : std::string();
}

bool ScriptedBroker::Connection::fill(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (SSL_pending(ssl_) == 0) {
    if (stopping_.load()) {
      return false;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) {
      return false;
    }
    pollfd entry{fd_, POLLIN, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(std::min(left, kPollSlice).count()));
    if (ready == 1) {
      break;
    }
  }
  char buffer[16 * 1024];
  ERR_clear_error();
  const int n = SSL_read(ssl_, buffer, sizeof(buffer));
  if (n > 0) {
    input_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }
  // A record still incomplete after the socket's receive timeout counts as nothing more.
  return SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ;
}

ScriptedBroker::Connection::Connection(SSL* ssl, int fd, const std::atomic<bool>& stopping)
    : ssl_(ssl), fd_(fd), stopping_(stopping) {
  SSL_set_msg_callback_arg(ssl_, this);
  SSL_set_msg_callback(ssl_, &Connection::on_tls_message);
}

ScriptedBroker::Connection::~Connection() {
  SSL_set_msg_callback(ssl_, nullptr);
}

void ScriptedBroker::Connection::on_tls_message(int write_p, int /*version*/, int content_type,
                                                const void* buf, std::size_t len, SSL* /*ssl*/,
                                                void* arg) {
  // TLS 1.3 reports the type inside each record it decrypted, one byte.
  if (write_p == 0 && content_type == SSL3_RT_INNER_CONTENT_TYPE && len == 1 &&
      *static_cast<const unsigned char*>(buf) == SSL3_RT_APPLICATION_DATA) {
    ++static_cast<Connection*>(arg)->records_read_;
  }
}

std::optional<ClientPacket> ScriptedBroker::Connection::read_packet(
    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::size_t header = 0;
    const std::optional<std::size_t> size = packet_size(input_, header);
    if (!size) {
      return std::nullopt;
    }
    if (*size > 0) {
      ClientPacket packet{static_cast<unsigned char>(input_[0]),
                          input_.substr(header, *size - header)};
      input_.erase(0, *size);
      return packet;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms || !fill(left)) {
      return std::nullopt;
    }
  }
}

std::optional<ClientPacket> ScriptedBroker::Connection::read_until(
    int type, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    std::optional<ClientPacket> packet = read_packet(std::max(left, 0ms));
    if (!packet || packet->type() == type) {
      return packet;
    }
  }
}

bool ScriptedBroker::Connection::write(std::string_view bytes) {
  return !bytes.empty() && SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) ==
                               static_cast<int>(bytes.size());
}

void ScriptedBroker::Connection::drain_until_closed(std::chrono::milliseconds silence) {
  while (fill(silence)) {
    input_.clear();
  }
}

ScriptedBroker::ScriptedBroker(const std::filesystem::path& cert, const std::filesystem::path& key,
                               Script script)
    : ctx_(SSL_CTX_new(TLS_server_method())), script_(std::move(script)) {
  if (!ctx_) {
    throw std::runtime_error("scripted broker: SSL_CTX_new failed");
  }
  // A script writing to a client that has gone must see an error, not end the process.
  (void)std::signal(SIGPIPE, SIG_IGN);
  SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_3_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx_.get(), cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("scripted broker: cannot load " + cert.string());
  }
  // Ask for the client certificate, as a real listener does, without judging it.
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = loopback_address(0);
  socklen_t length = sizeof(address);
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listener_, 8) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (listener_ >= 0) {
      ::close(listener_);
    }
    throw std::runtime_error("scripted broker: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { serve(); });
}

ScriptedBroker::~ScriptedBroker() {
  stop_ = true;
  thread_.join();
  ::close(listener_);
}

void ScriptedBroker::serve() {
  while (!stop_) {
    pollfd entry{listener_, POLLIN, 0};
    if (::poll(&entry, 1, static_cast<int>(kPollSlice.count())) != 1) {
      continue;
    }
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    const int number = ++connections_;
    // Bounds every blocking TLS call of the handshake and of a record that never completes.
    const timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    {
      const crypto::OpenSslPtr<SSL, SSL_free> ssl(SSL_new(ctx_.get()));
      if (ssl && SSL_set_fd(ssl.get(), fd) == 1 && SSL_accept(ssl.get()) == 1) {
        Connection connection(ssl.get(), fd, stop_);
        script_(connection, number);
      }
      ERR_clear_error();
    }
    ::close(fd);
  }
}

}  // namespace recmesh::testing
