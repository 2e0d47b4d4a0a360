#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <openssl/ssl.h>

#include "recmesh/crypto/openssl_ptr.hpp"

namespace recmesh::testing {

// MQTT 3.1.1 packets as a broker writes them, byte for byte, so that a test can also write what
// no honest broker would.
namespace mqtt_bytes {

std::string remaining_length(std::size_t n);
// A packet of `first_byte` (type and flags) and `body`, with its remaining length.
std::string packet(unsigned char first_byte, std::string_view body);
std::string connack(unsigned char return_code = 0, bool session_present = false);
std::string publish(std::string_view topic, std::string_view payload, int qos,
                    std::uint16_t packet_id = 0);
std::string puback(std::uint16_t packet_id);
std::string suback(std::uint16_t packet_id, unsigned char granted);

}  // namespace mqtt_bytes

// One MQTT packet a client sent: its first byte and its body.
struct ClientPacket {
  unsigned char first_byte = 0;
  std::string body;

  int type() const { return first_byte >> 4; }
  // PUBLISH: its topic, packet identifier (QoS > 0) and payload.
  std::string publish_topic() const;
  std::uint16_t publish_packet_id() const;
  std::string publish_payload() const;
  bool dup() const { return (first_byte & 0x08U) != 0; }
};

// A TLS 1.3 server on 127.0.0.1 that plays an MQTT broker by a script: it serves one connection
// at a time and runs `script` for each, numbered from 1, on a thread of its own. It asks for the
// client certificate without judging it. For what a client does with what an honest broker
// never sends.
class ScriptedBroker {
 public:
  class Connection {
   public:
    Connection(SSL* ssl, int fd, const std::atomic<bool>& stopping);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();
    // The next packet from the client; nullopt when it closed the connection, sent something
    // that is not MQTT, or sent nothing within `timeout`.
    std::optional<ClientPacket> read_packet(std::chrono::milliseconds timeout);
    // Reads packets until one of `type` (1 CONNECT, 3 PUBLISH, 8 SUBSCRIBE ...) arrives.
    std::optional<ClientPacket> read_until(int type, std::chrono::milliseconds timeout);
    bool write(std::string_view bytes);
    // Reads and discards until the client closes, or `silence` passes without a byte.
    void drain_until_closed(std::chrono::milliseconds silence);
    // TLS records of application data decrypted so far on this connection (after the
    // handshake): how the client cut its stream into records.
    std::uint64_t records_read() const { return records_read_; }

   private:
    bool fill(std::chrono::milliseconds timeout);
    static void on_tls_message(int write_p, int version, int content_type, const void* buf,
                               std::size_t len, SSL* ssl, void* arg);

    SSL* ssl_;
    int fd_;
    const std::atomic<bool>& stopping_;
    std::string input_;
    std::uint64_t records_read_ = 0;
  };
  using Script = std::function<void(Connection& connection, int number)>;

  ScriptedBroker(const std::filesystem::path& cert, const std::filesystem::path& key,
                 Script script);
  ScriptedBroker(const ScriptedBroker&) = delete;
  ScriptedBroker& operator=(const ScriptedBroker&) = delete;
  ~ScriptedBroker();

  int port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  void serve();

  crypto::OpenSslPtr<SSL_CTX, SSL_CTX_free> ctx_;
  Script script_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace recmesh::testing
