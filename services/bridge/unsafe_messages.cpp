#include "bridge/unsafe_messages.hpp"

namespace recmesh::bridge {

void UnsafeMessages::add(mqtt::MessageId id, TimePoint at) {
  forwarded_at_[id] = at;
  order_.emplace_back(id, at);
}

void UnsafeMessages::made_safe(mqtt::MessageId id) {
  if (forwarded_at_.erase(id) > 0) {
    drop_safe_front();
  }
}

std::vector<mqtt::MessageId> UnsafeMessages::take(std::optional<TimePoint> forwarded_by) {
  std::vector<mqtt::MessageId> taken;
  while (!order_.empty() && (!forwarded_by || order_.front().second <= *forwarded_by)) {
    if (unsafe(order_.front())) {
      taken.push_back(order_.front().first);
      forwarded_at_.erase(order_.front().first);
    }
    order_.pop_front();
  }
  drop_safe_front();
  return taken;
}

std::optional<UnsafeMessages::TimePoint> UnsafeMessages::oldest() const {
  if (order_.empty()) {
    return std::nullopt;
  }
  return order_.front().second;  // the front is always unsafe
}

bool UnsafeMessages::unsafe(const std::pair<mqtt::MessageId, TimePoint>& entry) const {
  const auto it = forwarded_at_.find(entry.first);
  return it != forwarded_at_.end() && it->second == entry.second;
}

void UnsafeMessages::drop_safe_front() {
  while (!order_.empty() && !unsafe(order_.front())) {
    order_.pop_front();
  }
}

}  // namespace recmesh::bridge
