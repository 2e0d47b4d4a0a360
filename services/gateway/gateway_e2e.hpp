#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "recmesh/e2e/endpoint.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/protocol/topics.hpp"

#include "gateway/gateway_config.hpp"

namespace recmesh::gateway {

// The gateway's end of the end-to-end protection (docs/protocol/e2e.md), between its MQTT
// client and its message handling: answers the engine's handshakes, seals what goes to the
// platform, opens member controls, and drops, counts and reports whatever fails.
class GatewayE2e {
 public:
  using RawPublish =
      std::function<bool(const std::string& topic, std::string payload, bool retain)>;
  // A refusal worth a security event, as a log record for the platform.
  using SecurityEvent = std::function<void(std::string_view kind, std::string_view detail)>;

  // Throws Error for unreadable credentials (start-up).
  GatewayE2e(mqtt::EventLoop& loop, const GatewayConfig& config, RawPublish publish,
             SecurityEvent on_security_event);
  GatewayE2e(const GatewayE2e&) = delete;
  GatewayE2e& operator=(const GatewayE2e&) = delete;
  ~GatewayE2e();

  // Asks for a handshake and polls from now on.
  void start();
  // Ends the session with a close (clean stop).
  void stop();

  bool established() const { return endpoint_.established(); }
  // Message IDs up to `last_id` were given out before (by an earlier run): the engine may ack
  // any of them.
  void resume_after(std::uint64_t last_id) { endpoint_.resume_after(last_id); }
  // Seals outbox message `id` now; nothing without a session (kNoSession) or when the session
  // cannot take it (counted and logged).
  std::optional<std::string> seal(std::string_view topic, std::string_view payload,
                                  std::uint64_t id);
  // What the gateway may act on: the opened control, the payload of an unprotected topic, or
  // nothing (a handshake message, or a refusal that was counted and reported).
  std::optional<std::string> receive(const protocol::Topic& parsed, std::string_view topic,
                                     std::string_view payload);

  // Runs once each time a session comes up (the outbox resumes then).
  std::function<void()> on_established;
  // Runs with each valid ack of the engine (the outbox forgets what it confirms).
  std::function<void(const e2e::Acknowledgement&)> on_acknowledged;
  const e2e::EndpointStats& stats() const { return endpoint_.stats(); }

 private:
  void report(std::string_view topic, const e2e::Rejection& rejection);
  void schedule_poll();

  mqtt::EventLoop& loop_;
  e2e::MemberEndpoint endpoint_;
  SecurityEvent on_security_event_;
  mqtt::EventLoop::TimerId poll_timer_ = 0;
  std::chrono::steady_clock::time_point last_event_{};
  std::uint64_t reported_ = 0;
};

}  // namespace recmesh::gateway
