#pragma once

#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"

namespace recmesh::bridge {

// The messages of one direction that the bridge forwarded before storing them (write-behind,
// docs/bridge.md) and that are still unsafe: neither acknowledged by the far broker nor in the
// store. While any is, the source's PUBACKs wait. Kept by the time each was forwarded, so that
// write-behind stores the oldest first and in the order of arrival.
class UnsafeMessages {
 public:
  using TimePoint = mqtt::MonotonicClock::TimePoint;

  // `id` was forwarded at `at`, not later than any message added before it.
  void add(mqtt::MessageId id, TimePoint at);
  // The far broker acknowledged `id`; nothing if it is not unsafe (stored, or never added).
  void made_safe(mqtt::MessageId id);
  // Removes those forwarded at or before `forwarded_by` (all of them: nullopt) and returns
  // their IDs, oldest first, for the caller to store.
  std::vector<mqtt::MessageId> take(std::optional<TimePoint> forwarded_by = std::nullopt);

  bool empty() const { return forwarded_at_.empty(); }
  std::size_t size() const { return forwarded_at_.size(); }
  // When the oldest unsafe message was forwarded; nullopt if there is none.
  std::optional<TimePoint> oldest() const;

 private:
  bool unsafe(const std::pair<mqtt::MessageId, TimePoint>& entry) const;
  void drop_safe_front();

  std::unordered_map<mqtt::MessageId, TimePoint> forwarded_at_;  // the unsafe ones
  // Every message added, oldest first; an entry stays (ignored) after its message is made safe
  // until it reaches the front, and its ID may be unsafe again by then, for a later message:
  // an entry counts only while its time is its ID's.
  std::deque<std::pair<mqtt::MessageId, TimePoint>> order_;
};

}  // namespace recmesh::bridge
