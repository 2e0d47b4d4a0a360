#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "recmesh/e2e/endpoint.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/topics.hpp"

#include "ems/ems_config.hpp"

namespace recmesh::ems {

// The engine's end of the end-to-end protection (docs/protocol/e2e.md): one session per member,
// between the engine's MQTT client and its message handling. Controls go out sealed (queued
// until the member's session is up); what members send is opened before the engine sees it,
// and whatever fails is dropped, counted by class and logged as a security event.
class EngineE2e {
 public:
  // False when the client refused the message (see e2e::RawPublish).
  using RawPublish = std::function<bool(const std::string& topic, std::string payload)>;

  // Throws Error for unreadable credentials (start-up).
  EngineE2e(mqtt::EventLoop& loop, const EmsConfig& config, RawPublish publish);
  EngineE2e(const EngineE2e&) = delete;
  EngineE2e& operator=(const EngineE2e&) = delete;
  ~EngineE2e();

  void start();
  // Ends every session with a close (clean stop).
  void stop();

  // Seals a member control for its central topic; held until the session is up.
  Result<mqtt::Done> publish(const std::string& rec, const std::string& member,
                             std::string_view topic, std::string_view payload);
  // The payload the engine may act on, or nothing: a handshake message (consumed), a refusal
  // (counted, logged) or a stale retained copy of an earlier session (counted as stale_retained).
  std::optional<std::string> receive(const protocol::Topic& topic,
                                     const mqtt::IncomingMessage& message);

  const e2e::EndpointStats& stats() const { return endpoint_.stats(); }
  std::uint64_t stale_retained() const { return stale_retained_; }
  bool established(const std::string& rec, const std::string& member) const {
    return endpoint_.established(rec, member);
  }

 private:
  void report(std::string_view topic, const e2e::Rejection& rejection);
  void schedule_poll();

  mqtt::EventLoop& loop_;
  e2e::PlatformEndpoint endpoint_;
  mqtt::EventLoop::TimerId poll_timer_ = 0;
  std::uint64_t stale_retained_ = 0;
  std::uint64_t reported_ = 0;
};

// Channels whose payload the gateway seals (docs/protocol/e2e.md, section 1).
bool is_protected_channel(protocol::Channel channel);

}  // namespace recmesh::ems
