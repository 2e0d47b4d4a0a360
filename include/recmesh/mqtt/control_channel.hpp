#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "recmesh/core/result.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"

namespace recmesh::mqtt {

// Request and response over a broker's `$CONTROL/<plugin>/v1` topics, as the Security Manager
// configures a broker plugin (recmesh-guard through policy::GuardPublisher, Dynamic Security):
// publish a request, wait for the message on the response topic.
// Blocking, with a private event loop driven by the calling thread; calls must not overlap.
// The connection is opened on the first request and kept; a request that fails drops it, and
// the next one connects again.
class ControlChannel {
 public:
  ControlChannel(MqttClientOptions options, std::string request_topic, std::string response_topic);
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;
  ~ControlChannel();

  // The payload of the next response, or kUnavailable when no connection or answer came
  // within `timeout`. A connection attempt that fails (refused, TLS, closed) fails the request
  // at once, as "not reachable", rather than retrying until `timeout`.
  Result<std::string> request(std::string_view payload, std::chrono::milliseconds timeout);

 private:
  Result<Done> ensure_connected(std::chrono::steady_clock::time_point deadline);
  // Drives the loop until `done`, a failed connection attempt or `deadline`; returns done().
  bool wait(const std::function<bool()>& done, std::chrono::steady_clock::time_point deadline);
  Status unreachable() const;  // after a failed attempt
  // After a failed request: the next one starts from a new connection.
  void drop_connection();

  MqttClientOptions options_;
  std::string request_topic_;
  std::string response_topic_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<MqttClient> client_;
  bool subscribed_ = false;
  std::optional<Status> attempt_failure_;  // of the attempt this request waits for
  std::optional<std::string> response_;
};

}  // namespace recmesh::mqtt
