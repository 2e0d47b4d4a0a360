#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "recmesh/e2e/endpoint.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/topics.hpp"

#include "ems/ems_config.hpp"
#include "ems/ems_store.hpp"

namespace recmesh::ems {

// The engine's end of the end-to-end protection (docs/protocol/e2e.md): one session per member,
// between the engine's MQTT client and its message handling. Controls go out sealed when the
// member's session is up (the engine's control table keeps them until the gateway answers);
// what members send is opened before the engine sees it, and whatever fails is dropped, counted
// by class and logged as a security event. Per member it keeps which of the gateway's message
// IDs are stored (durably, with the message) and confirms them to the gateway with acks.
class EngineE2e {
 public:
  // False when the client refused the message (see e2e::RawPublish).
  using RawPublish = std::function<bool(const std::string& topic, std::string payload)>;
  // What the engine may act on: the payload, and the gateway's message ID (0: not sealed).
  struct Received {
    std::string payload;
    std::uint64_t sequence = 0;
  };

  // Throws Error for unreadable credentials (start-up). `store` holds the delivery windows.
  EngineE2e(mqtt::EventLoop& loop, const EmsConfig& config, EmsStore& store, RawPublish publish);
  EngineE2e(const EngineE2e&) = delete;
  EngineE2e& operator=(const EngineE2e&) = delete;
  ~EngineE2e();

  void start();
  // Ends every session with a close (clean stop).
  void stop();

  // Seals and publishes a member control now; kUnavailable without a session (one starts; the
  // control goes out again when it is up: on_established).
  Result<mqtt::Done> publish(const std::string& rec, const std::string& member,
                             std::string_view topic, std::string_view payload);
  // Starts a handshake with the member unless a session exists or one is under way.
  void connect(const std::string& rec, const std::string& member);
  // What the engine may act on, or nothing: a handshake message (consumed), a refusal
  // (counted, logged) or a stale retained copy of an earlier session (counted as stale_retained).
  std::optional<Received> receive(const protocol::Topic& topic,
                                  const mqtt::IncomingMessage& message);

  // The member's stored message IDs with `sequence` added, to be written with the message
  // (EmsStore::put_delivery) — or nothing when it is stored already (a copy re-sealed in a later
  // session, or a QoS 1 repeat): counted as a duplicate, never acted on.
  std::optional<e2e::SequenceWindow> accepting(const std::string& rec, const std::string& member,
                                               std::uint64_t sequence);
  // The transaction that stored the message and `window` committed: the next ack confirms it.
  void stored(const std::string& rec, const std::string& member, e2e::SequenceWindow window);

  // Runs each time a session with a member comes up: unanswered controls go out again.
  std::function<void(const std::string& rec, const std::string& member)> on_established;

  const e2e::EndpointStats& stats() const { return endpoint_.stats(); }
  std::uint64_t stale_retained() const { return stale_retained_; }
  std::uint64_t duplicates() const { return duplicates_; }
  bool established(const std::string& rec, const std::string& member) const {
    return endpoint_.established(rec, member);
  }

 private:
  struct Delivery {
    e2e::SequenceWindow window;
    bool unconfirmed = false;  // stored since the last ack
  };
  using Key = std::pair<std::string, std::string>;

  void report(std::string_view topic, const e2e::Rejection& rejection);
  void schedule_poll();
  Delivery& delivery(const std::string& rec, const std::string& member);
  void acknowledge(const std::string& rec, const std::string& member, Delivery& delivery);

  mqtt::EventLoop& loop_;
  EmsStore& store_;
  std::uint32_t window_size_;
  e2e::PlatformEndpoint endpoint_;
  RawPublish publish_;
  std::map<Key, Delivery> deliveries_;
  mqtt::EventLoop::TimerId poll_timer_ = 0;
  std::uint64_t stale_retained_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t reported_ = 0;
};

// Channels whose payload the gateway seals (docs/protocol/e2e.md, section 1).
bool is_protected_channel(protocol::Channel channel);

}  // namespace recmesh::ems
