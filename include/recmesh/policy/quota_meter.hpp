#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "recmesh/policy/policy_bundle.hpp"
#include "recmesh/policy/policy_matcher.hpp"

namespace recmesh::policy {

// Why a connection is refused by its quota at CONNECT (keep-alive outside the bounds), or
// nothing. (Mosquitto 2.0 shows a plugin the Will only when it is sent: see check_will.)
std::optional<std::string> connect_violation(const Quota& quota, int keepalive_s);

// The quota state of one connection: token buckets for messages and bytes (a second's worth of
// burst), the topics it holds retained messages on, and its recent violations. Time comes in
// as monotonic nanoseconds, so tests drive it by hand.
class QuotaMeter {
 public:
  static constexpr std::int64_t kViolationWindowNs = 10'000'000'000;

  QuotaMeter(const Quota& quota, std::int64_t now_ns);
  // A new bundle: the buckets keep their level, capped by the new limits; a bucket that had no
  // limit starts full.
  void set_quota(const Quota& quota);
  const Quota& quota() const { return quota_; }

  // The quota a PUBLISH breaks ("publish rate", "byte rate", "payload size", "retained
  // messages"), or nothing; an allowed one is charged. An empty retained payload clears a topic.
  std::optional<std::string_view> check_publish(std::string_view topic, std::size_t payload_bytes,
                                                bool retain, std::int64_t now_ns);
  // Before a SUBSCRIBE is added to `held` existing subscriptions.
  std::optional<std::string_view> check_subscribe(int held) const;
  // The Will as the broker sends it.
  std::optional<std::string_view> check_will(std::size_t payload_bytes) const;

  // Counts a violation; true when the quota says to disconnect now.
  bool record_violation(std::int64_t now_ns);
  std::uint64_t violations() const { return violations_; }

 private:
  void refill(std::int64_t now_ns);

  Quota quota_;
  double messages_ = 0;  // tokens
  double bytes_ = 0;
  std::int64_t last_ns_ = 0;
  std::unordered_set<std::string, StringHash, std::equal_to<>> retained_;
  std::deque<std::int64_t> recent_;  // violation times within the window
  std::uint64_t violations_ = 0;
};

}  // namespace recmesh::policy
