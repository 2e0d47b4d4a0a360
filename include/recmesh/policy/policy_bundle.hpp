#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/result.hpp"

namespace recmesh::policy {

// The recmesh-guard control channel (SPEC §6): the Security Manager publishes signed bundles on
// it; the broker answers on the response topic. docs/protocol/policy-bundle.md is normative.
inline constexpr std::string_view kGuardControlTopic = "$CONTROL/recmesh-guard/v1";
inline constexpr std::string_view kGuardResponseTopic = "$CONTROL/recmesh-guard/v1/response";
inline constexpr int kBundleFormatVersion = 1;

// Bounds of a bundle; a larger one is refused before it is parsed.
inline constexpr std::size_t kMaxBundleBytes = std::size_t{8} * 1024 * 1024;  // signed form
inline constexpr std::size_t kMaxGrants = 100000;
// Entries of a grant's `publish` or `subscribe` list. The derived lists that grow are one
// member's and grow with its devices (policy::kMaxDevicesPerMember, 1,000): its gateway's
// subscriptions on its local broker, five per device (5,002 at the most devices), and its
// bridge's publications on the central broker, three per device. The EMS services' rows are
// wildcards of a fixed size. The rest, about half, is room for custom allow rules.
inline constexpr std::size_t kMaxTopicsPerGrant = 10000;
inline constexpr std::size_t kMaxRevocations = 100000;

// Limits on what one identity may do; 0 means "no limit" for every field.
struct Quota {
  std::uint32_t publish_per_second = 0;  // sustained rate; bursts up to one second's worth
  std::uint64_t bytes_per_second = 0;    // payload bytes, same bucket rule
  std::uint32_t max_payload_bytes = 0;   // any single PUBLISH (the Will included)
  std::uint32_t max_retained = 0;        // topics holding a retained message of this identity
  std::uint32_t max_subscriptions = 0;   // filters held at once
  std::uint32_t max_will_bytes = 0;      // payload of the Last Will
  bool will_allowed = true;              // false: the Will is never sent (dropped, reported)
  std::uint32_t keepalive_min_s = 0;     // refused at connect outside [min, max]
  std::uint32_t keepalive_max_s = 0;
  // Violations within 10 s after which the client is disconnected (0: drop and count only).
  std::uint32_t disconnect_after_violations = 0;

  bool operator==(const Quota&) const = default;
};

// Allow-only rules of one identity. Everything not listed is denied (SPEC §6).
struct Grant {
  std::string identity;                // ClientIdentity::key()
  std::vector<std::string> publish;    // topic names or MQTT filters the identity may publish to
  std::vector<std::string> subscribe;  // filters it may subscribe to and receive from
  std::optional<Quota> quota;          // replaces the bundle's default quota

  bool operator==(const Grant&) const = default;
};

// One certificate, by the domain of its issuing CA and its serial (upper-case hex).
struct SerialRevocation {
  std::string domain;
  std::string serial;
  bool operator==(const SerialRevocation&) const = default;
};

struct Revocations {
  std::vector<SerialRevocation> serials;
  std::vector<std::string> identities;  // ClientIdentity::key()
  std::vector<std::string> domains;     // a whole CA domain, e.g. member/r1/m2
  bool operator==(const Revocations&) const = default;
};

// The whole policy of one broker. Each bundle replaces the previous one entirely.
struct PolicyBundle {
  std::string broker;          // BrokerId::to_string(): `central` or `local/<rec>/<member>`
  std::uint64_t sequence = 0;  // strictly increasing per broker
  std::int64_t issued_at = 0;  // Unix seconds
  Quota default_quota;
  std::vector<Grant> grants;
  Revocations revocations;

  bool operator==(const PolicyBundle&) const = default;
};

// The canonical JSON of docs/protocol/policy-bundle.md (keys sorted, no whitespace).
std::string to_json(const PolicyBundle& bundle);

// Strict: unknown or missing keys, wrong types, invalid identities, domains, serials and topic
// filters, and anything past the bounds above are refused (kInvalidArgument, naming the field).
Result<PolicyBundle> parse_policy_bundle(std::string_view json);

// Which broker a bundle is for.
struct BrokerId {
  enum class Kind { kLocal, kCentral };
  Kind kind = Kind::kCentral;
  std::string rec;
  std::string member;

  static BrokerId central() { return {Kind::kCentral, {}, {}}; }
  // Throws Error(kInvalidArgument) for invalid IDs.
  static BrokerId local(std::string rec, std::string member);
  std::string to_string() const;  // `central` or `local/<rec>/<member>`
  bool operator==(const BrokerId&) const = default;
};
Result<BrokerId> parse_broker_id(std::string_view text);

// What the broker answers on kGuardResponseTopic.
struct GuardResponse {
  bool accepted = false;
  std::string broker;
  std::uint64_t sequence = 0;          // of the bundle answered (0 when it could not be read)
  std::uint64_t current_sequence = 0;  // in force after the answer
  std::string reason;                  // why it was refused; empty when accepted
};
std::string to_json(const GuardResponse& response);
Result<GuardResponse> parse_guard_response(std::string_view json);

}  // namespace recmesh::policy
