#include "recmesh/policy/quota_meter.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace recmesh::policy {
namespace {

constexpr double kNsPerSecond = 1e9;

}  // namespace

std::optional<std::string> connect_violation(const Quota& quota, int keepalive_s) {
  const auto keepalive = static_cast<std::uint32_t>(std::max(keepalive_s, 0));
  // Keep-alive 0 means "never": it is below any minimum.
  if (quota.keepalive_min_s > 0 && keepalive < quota.keepalive_min_s) {
    return fmt::format("keep-alive {} s is below the minimum of {} s", keepalive,
                       quota.keepalive_min_s);
  }
  if (quota.keepalive_max_s > 0 && (keepalive == 0 || keepalive > quota.keepalive_max_s)) {
    return fmt::format("keep-alive {} s is above the maximum of {} s", keepalive,
                       quota.keepalive_max_s);
  }
  return std::nullopt;
}

QuotaMeter::QuotaMeter(const Quota& quota, std::int64_t now_ns)
    : quota_(quota),
      messages_(quota.publish_per_second),
      bytes_(static_cast<double>(quota.bytes_per_second)),
      last_ns_(now_ns) {}

void QuotaMeter::set_quota(const Quota& quota) {
  // A bucket that had no limit holds no tokens (it was never charged): it starts full under a
  // new limit, as for a new connection. Emptying it instead throttled, and after enough
  // violations disconnected, a client that stays within the new rate (a probe publishing every
  // millisecond under a limit of 1,000/s) right after the swap.
  const auto level = [](double tokens, double old_limit, double new_limit) {
    return old_limit == 0 ? new_limit : std::min(tokens, new_limit);
  };
  messages_ = level(messages_, quota_.publish_per_second, quota.publish_per_second);
  bytes_ = level(bytes_, static_cast<double>(quota_.bytes_per_second),
                 static_cast<double>(quota.bytes_per_second));
  quota_ = quota;
}

void QuotaMeter::refill(std::int64_t now_ns) {
  if (now_ns <= last_ns_) {
    return;
  }
  const double seconds = static_cast<double>(now_ns - last_ns_) / kNsPerSecond;
  last_ns_ = now_ns;
  messages_ = std::min(static_cast<double>(quota_.publish_per_second),
                       messages_ + seconds * quota_.publish_per_second);
  bytes_ = std::min(static_cast<double>(quota_.bytes_per_second),
                    bytes_ + seconds * static_cast<double>(quota_.bytes_per_second));
}

std::optional<std::string_view> QuotaMeter::check_publish(std::string_view topic,
                                                          std::size_t payload_bytes, bool retain,
                                                          std::int64_t now_ns) {
  if (quota_.max_payload_bytes > 0 && payload_bytes > quota_.max_payload_bytes) {
    return "payload size";
  }
  refill(now_ns);
  const auto size = static_cast<double>(payload_bytes);
  if (quota_.publish_per_second > 0 && messages_ < 1.0) {
    return "publish rate";
  }
  if (quota_.bytes_per_second > 0 && bytes_ < size) {
    return "byte rate";
  }
  if (retain && quota_.max_retained > 0) {
    if (payload_bytes == 0) {
      if (auto it = retained_.find(topic); it != retained_.end()) {
        retained_.erase(it);
      }
    } else if (!retained_.contains(topic)) {
      if (retained_.size() >= quota_.max_retained) {
        return "retained messages";
      }
      retained_.emplace(topic);
    }
  }
  if (quota_.publish_per_second > 0) {
    messages_ -= 1.0;
  }
  if (quota_.bytes_per_second > 0) {
    bytes_ -= size;
  }
  return std::nullopt;
}

std::optional<std::string_view> QuotaMeter::check_subscribe(int held) const {
  if (quota_.max_subscriptions > 0 && held >= 0 &&
      static_cast<std::uint32_t>(held) >= quota_.max_subscriptions) {
    return "subscriptions";
  }
  return std::nullopt;
}

std::optional<std::string_view> QuotaMeter::check_will(std::size_t payload_bytes) const {
  if (!quota_.will_allowed) {
    return "will not allowed";
  }
  if (quota_.max_will_bytes > 0 && payload_bytes > quota_.max_will_bytes) {
    return "will size";
  }
  return std::nullopt;
}

bool QuotaMeter::record_violation(std::int64_t now_ns) {
  ++violations_;
  recent_.push_back(now_ns);
  while (!recent_.empty() && now_ns - recent_.front() > kViolationWindowNs) {
    recent_.pop_front();
  }
  constexpr std::size_t kMaxRemembered = 1u << 16;
  if (recent_.size() > kMaxRemembered) {
    recent_.pop_front();
  }
  return quota_.disconnect_after_violations > 0 &&
         recent_.size() >= quota_.disconnect_after_violations;
}

}  // namespace recmesh::policy
