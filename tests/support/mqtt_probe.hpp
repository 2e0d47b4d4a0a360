#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace recmesh::testing {

enum class ConnectResult {
  kAccepted,     // a CONNACK with success arrived
  kRefused,      // the broker refused: TLS alert, dropped connection or CONNACK with an error
  kUnreachable,  // nothing accepted the TCP connection
  kTimedOut,     // nothing decisive before the deadline
};
std::string_view to_string(ConnectResult result);

struct ConnectOutcome {
  ConnectResult result = ConnectResult::kTimedOut;
  // libmosquitto's error, its error log lines (OpenSSL's reason) and whether the TLS handshake
  // had completed: for failure messages.
  std::string detail;
  bool accepted() const { return result == ConnectResult::kAccepted; }
};
std::ostream& operator<<(std::ostream& out, const ConnectOutcome& outcome);

// One MQTT 3.1.1 connection attempt over TLS 1.3 with a client certificate to 127.0.0.1:port.
// `cafile` verifies the broker, `cert` (leaf, then intermediates) and `key` identify the client.
// With TLS 1.3 the server's verdict on the client certificate comes after the client's half of
// the handshake, so this waits for the CONNACK or a disconnect, bounded by `timeout`.
ConnectOutcome try_connect(int port, const std::filesystem::path& cafile,
                           const std::filesystem::path& cert, const std::filesystem::path& key,
                           const std::string& client_id,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

struct ReceivedMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
};

// A blocking MQTT client for tests on libmosquitto. Each call drives the network loop in the
// calling thread until its condition holds or its deadline passes; there is no background thread.
class MqttTestClient {
 public:
  explicit MqttTestClient(const std::string& client_id, bool clean_session = true);
  MqttTestClient(const MqttTestClient&) = delete;
  MqttTestClient& operator=(const MqttTestClient&) = delete;
  ~MqttTestClient();

  ConnectOutcome connect(int port, const std::filesystem::path& cafile,
                         const std::filesystem::path& cert, const std::filesystem::path& key,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits for a SUBACK that grants the subscription; false otherwise (see last_error()).
  bool subscribe(const std::string& topic_filter, int qos = 1,
                 std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // QoS 0: waits until written; QoS 1 and 2: until the broker acknowledges it.
  bool publish(const std::string& topic, const std::string& payload, int qos = 1,
               std::chrono::milliseconds timeout = std::chrono::seconds(5));
  bool publish(const std::string& topic, const std::string& payload, int qos, bool retain,
               std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The oldest message not yet taken, waiting for one up to `timeout`.
  std::optional<ReceivedMessage> wait_for_message(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void disconnect();

  bool connected() const;
  const std::string& last_error() const;

 private:
  struct Session;
  std::unique_ptr<Session> session_;
};

}  // namespace recmesh::testing
