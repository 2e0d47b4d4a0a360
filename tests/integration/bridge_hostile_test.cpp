// A hostile local broker: a TLS server holding the local broker's certificate that answers the
// bridge's CONNECT and then sends what no honest broker would — a payload beyond
// max_payload_bytes, a topic outside SPEC §4.5, then a malformed packet. The bridge refuses and
// counts, forwards the honest message sent between them, survives the malformed packet by
// reconnecting, and keeps running.
#include <arpa/inet.h>
#include <atomic>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "recmesh/core/loopback.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"

#include "bridge_fixture.hpp"

namespace recmesh::testing {
namespace {

using SslCtxPtr = crypto::OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = crypto::OpenSslPtr<SSL, SSL_free>;

std::string remaining_length(std::size_t n) {
  std::string out;
  do {
    auto byte = static_cast<unsigned char>(n % 128);
    n /= 128;
    if (n > 0) {
      byte |= 0x80;
    }
    out += static_cast<char>(byte);
  } while (n > 0);
  return out;
}

std::string publish_qos1(const std::string& topic, const std::string& payload,
                         std::uint16_t packet_id) {
  std::string body;
  body += static_cast<char>(topic.size() >> 8);
  body += static_cast<char>(topic.size() & 0xff);
  body += topic;
  body += static_cast<char>(packet_id >> 8);
  body += static_cast<char>(packet_id & 0xff);
  body += payload;
  return std::string("\x32") + remaining_length(body.size()) + body;
}

// Serves TLS on 127.0.0.1, one connection at a time, running `script` for each.
class HostileBroker {
 public:
  HostileBroker(const fs::path& cert, const fs::path& key)
      : ctx_(SSL_CTX_new(TLS_server_method())) {
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx_.get(), cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("hostile broker: cannot load the server certificate");
    }
    // Ask for the client certificate, as the real listener does, without judging it.
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = loopback_address(0);
    socklen_t length = sizeof(address);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), length);
    ::listen(listener_, 4);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  HostileBroker(const HostileBroker&) = delete;
  HostileBroker& operator=(const HostileBroker&) = delete;
  ~HostileBroker() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }

  int port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  void serve() {
    while (!stop_) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) {
        return;
      }
      ++connections_;
      timeval timeout{2, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      SslPtr ssl(SSL_new(ctx_.get()));
      SSL_set_fd(ssl.get(), fd);
      if (SSL_accept(ssl.get()) == 1) {
        char buffer[4096];
        SSL_read(ssl.get(), buffer, sizeof(buffer));  // CONNECT
        const std::string connack("\x20\x02\x00\x00", 4);
        SSL_write(ssl.get(), connack.data(), static_cast<int>(connack.size()));
        if (connections_ == 1) {
          std::this_thread::sleep_for(200ms);
          std::string burst;
          burst += publish_qos1("/platform/metrics/big", std::string(4096, 'x'), 1);
          burst += publish_qos1("/not/in/the/table", "x", 2);
          burst += publish_qos1("/r1/m1/control", "wrong direction", 3);
          burst += publish_qos1("/platform/metrics/honest", "honest", 4);
          SSL_write(ssl.get(), burst.data(), static_cast<int>(burst.size()));
          std::this_thread::sleep_for(500ms);
          // A remaining length of five bytes: malformed.
          const std::string malformed("\x30\xff\xff\xff\xff\x7f", 6);
          SSL_write(ssl.get(), malformed.data(), static_cast<int>(malformed.size()));
        }
        // Keep the connection until the bridge drops it (or 2 s of silence).
        while (!stop_ && SSL_read(ssl.get(), buffer, sizeof(buffer)) > 0) {
        }
      }
      ssl.reset();
      ::close(fd);
    }
  }

  SslCtxPtr ctx_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

TEST(BridgeHostileTest, AHostileLocalBrokerIsRefusedCountedAndSurvived) {
  BridgeWorld world;
  HostileBroker hostile(world.dir() / "local" / "server.crt", world.dir() / "local" / "server.key");
  MqttTestClient central("ems_engine");
  ASSERT_TRUE(
      central
          .connect(world.ems_port(), world.engine().cafile, world.engine().cert, world.engine().key)
          .accepted());
  ASSERT_TRUE(central.subscribe("/r1/m1/metrics/#", 1));
  BridgeOptions options;
  options.max_payload_bytes = 2048;
  options.local_port = hostile.port();
  world.start_bridge(options);

  std::optional<ReceivedMessage> honest;
  for (int i = 0; i < 50 && !honest; ++i) {
    honest = central.wait_for_message(200ms);
  }
  ASSERT_TRUE(honest.has_value()) << world.bridge_log();
  EXPECT_EQ(honest->topic, "/r1/m1/metrics/honest");
  EXPECT_EQ(honest->payload, "honest");
  EXPECT_FALSE(central.wait_for_message(500ms).has_value()) << "something else crossed";

  const auto metric = [&](const std::string& series) { return world.metric_or_zero(series); };
  EXPECT_TRUE(eventually([&] {
    return metric(R"(recmesh_bridge_rejected_total{reason="oversize"})") == 1 &&
           metric(R"(recmesh_bridge_rejected_total{reason="topic"})") == 2;
  })) << world.bridge_log();
  // The malformed packet ends that connection; the bridge connects again and keeps running.
  EXPECT_TRUE(eventually([&] { return hostile.connections() >= 2; })) << world.bridge_log();
  EXPECT_TRUE(eventually(
      [&] { return metric(R"(recmesh_bridge_reconnects_total{broker="local"})") >= 1; }));
  EXPECT_EQ(world.stop_bridge(), 0) << world.bridge_log();
}

}  // namespace
}  // namespace recmesh::testing
