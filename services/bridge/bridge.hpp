#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "recmesh/daemon/daemon_context.hpp"
#include "recmesh/log/logger.hpp"
#include "recmesh/log/rate_limited_log.hpp"
#include "recmesh/metrics/registry.hpp"
#include "recmesh/mqtt/batched_mqtt_client.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/protocol/bridge_mapping.hpp"

#include "bridge/bridge_settings.hpp"
#include "bridge/message_store.hpp"
#include "bridge/topic_map_cache.hpp"
#include "bridge/unsafe_messages.hpp"

namespace recmesh::bridge {

// What the bridge has done since it started; published on the status info topics.
struct BridgeCounters {
  std::uint64_t forwarded_out = 0;  // acknowledged by the central broker (QoS 1) or sent (QoS 0)
  std::uint64_t forwarded_in = 0;   // acknowledged by the local broker (QoS 1) or sent (QoS 0)
  std::uint64_t buffered = 0;       // QoS 1 messages written to the store
  std::uint64_t dropped = 0;   // lost by policy: store overflow, or QoS 0 with the far side down
  std::uint64_t rejected = 0;  // refused input: oversize or a topic outside SPEC §4.5
  std::uint64_t reconnects_local = 0;
  std::uint64_t reconnects_central = 0;
  std::uint64_t queue_depth = 0;  // messages held awaiting the far broker (stored or not yet)
  std::uint64_t queue_bytes = 0;
  bool blocked = false;  // reading paused because the store is full (overflow: block)
};

// The bridging module of one member (docs/bridge.md): moves the SPEC §4.5 flows between the
// local broker and the central broker, through a durable store for QoS 1.
//
// A QoS 1 message read from one broker is acknowledged to it (PUBACK) only once it is safe:
// committed to the store, or acknowledged by the other broker. While the other broker can take
// it, it is published there at once and stored only if that broker has not acknowledged it
// within store.write_behind (write-behind: the source's PUBACKs wait meanwhile, held in its
// client); otherwise it is stored first, and the batch is committed before the source's PUBACKs
// are written. A stored message leaves the store on the far broker's PUBACK. At least once
// across crashes of the bridge and outages of either broker. Everything runs on one event loop
// thread.
class Bridge {
 public:
  Bridge(mqtt::EventLoop& loop, BridgeSettings settings, metrics::Registry& registry);
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;
  ~Bridge();

  // Loads what the store still holds and connects to both brokers. On the loop thread.
  void start();
  // Publishes `offline`, disconnects both sides, commits, then calls `done` (on the loop thread).
  void stop(std::function<void()> done);

  BridgeCounters counters() const;

 private:
  enum class Side { kLocal, kCentral };
  struct Route {  // one direction of flow
    protocol::BridgeDirection direction;
    std::deque<StoredMessage> unsent;                              // oldest first
    std::unordered_map<mqtt::MessageId, StoredMessage> in_flight;  // awaiting the far PUBACK
    // Those in in_flight that are not in the store (id 0): forwarded at once, and the source's
    // PUBACKs wait until each is acknowledged by the far broker or stored.
    UnsafeMessages unsafe;
    // Since when the forwarding window has been full while the far broker is connected, and
    // the timer that ends the wait for it (docs/bridge.md, "Back-pressure").
    std::optional<mqtt::MonotonicClock::TimePoint> full_since;
    mqtt::EventLoop::TimerId spill_timer = 0;
    std::uint64_t forwarded = 0;
    metrics::Counter* forwarded_metric = nullptr;
    metrics::Counter* buffered_metric = nullptr;
  };

  std::unique_ptr<mqtt::BatchedMqttClient> make_client(Side side);
  void on_connect(Side side);
  void on_message(Side side, const mqtt::IncomingMessage& message);
  // The rule and far topic of a topic read on `side`; null if SPEC §4.5 does not carry it.
  const TopicMapCache::Entry* map_topic(Side side, std::string_view topic);
  void on_messages_received();
  void on_delivered(Side side, mqtt::MessageId id);
  void reject(std::string_view reason, std::string_view topic, std::size_t size);
  void drop(std::string_view reason, std::uint64_t count = 1);
  bool store_full() const;
  bool commit_now();  // false: the store failed and the bridge is stopping
  void fail_stop(const std::exception& e);
  void hold(Route& route, StoredMessage message);
  void release(const StoredMessage& message);
  void pump(Route& route);
  void pump_all();
  void update_blocking();
  // Pauses reading a source while its direction's store is full (overflow: block) or while
  // the far broker keeps the forwarding window full (for at most settings.window_wait).
  void update_reading();
  // Whether the far broker, connected, keeps `route`'s forwarding window full. Once full, it
  // counts as full until a quarter of the window is open again, not at every PUBACK.
  bool window_full(const Route& route) const;
  // Starts or ends `route`'s wait for a full window (its start and the timer that ends it),
  // and says whether reading its source still waits: for at most settings.window_wait.
  bool update_window_wait(Route& route);
  void schedule_commit();
  bool forward_at_once(const Route& route) const;
  void stage_unsafe(Route& route);
  // Appends the unsafe messages forwarded at or before the given time (all: nullopt) to the
  // store, oldest first; true if it appended any.
  bool stage_unsafe_until(Route& route,
                          std::optional<mqtt::MonotonicClock::TimePoint> forwarded_by);
  // Arms the write-behind timer for the oldest unsafe message, if any and not armed yet.
  void arm_write_behind();
  void on_write_behind_due();
  bool make_durable();  // false: the store failed and the bridge is stopping
  void update_holds();
  void publish_info();
  void schedule_info();
  void note_stopped();

  Route& route_to(Side destination);
  mqtt::BatchedMqttClient& client(Side side);

  mqtt::EventLoop& loop_;
  BridgeSettings settings_;
  log::Logger log_;
  MessageStore store_;
  std::unique_ptr<mqtt::BatchedMqttClient> local_;
  std::unique_ptr<mqtt::BatchedMqttClient> central_;
  TopicMapCache local_topics_;
  TopicMapCache central_topics_;
  std::string local_info_topic_;
  std::string central_info_topic_;
  Route out_{protocol::BridgeDirection::kOut, {}, {}, {}, {}, 0, 0, nullptr, nullptr};
  Route in_{protocol::BridgeDirection::kIn, {}, {}, {}, {}, 0, 0, nullptr, nullptr};

  std::uint64_t depth_ = 0;
  std::uint64_t bytes_ = 0;
  bool blocked_ = false;
  bool stopping_ = false;
  bool failed_ = false;  // the store failed: the process exits without acknowledging more
  int clients_running_ = 0;
  std::function<void()> on_stopped_;
  mqtt::EventLoop::TimerId info_timer_ = 0;
  mqtt::EventLoop::TimerId commit_timer_ = 0;   // commits staged removals
  mqtt::EventLoop::TimerId durable_timer_ = 0;  // stores what write-behind forwarded unstored
  BridgeCounters counters_;

  metrics::Counter& dropped_overflow_;
  metrics::Counter& dropped_qos0_;
  metrics::Counter& rejected_oversize_;
  metrics::Counter& rejected_topic_;
  metrics::Counter& reconnects_local_;
  metrics::Counter& reconnects_central_;
  metrics::Counter& commits_;
  metrics::Gauge& depth_gauge_;
  metrics::Gauge& bytes_gauge_;
  metrics::Gauge& blocked_gauge_;
  metrics::Gauge& local_connected_;
  metrics::Gauge& central_connected_;
  log::RateLimitedLog rejected_log_;
  log::RateLimitedLog dropped_log_;
  log::RateLimitedLog forward_log_;
};

// `recmesh bridge`: runs a Bridge on its own event loop until the context asks it to stop.
int run_bridge(const BridgeSettings& settings, daemon::DaemonContext& context);

}  // namespace recmesh::bridge
