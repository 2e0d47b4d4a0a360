#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::policy {

// Hash and equality that let a std::string_view look up a std::string key without a copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

// The topics of one direction of a grant, compiled for lookups on every PUBLISH: exact names in
// a hash set (one lookup), wildcard filters in a tree of levels, so a gateway holding
// `/device/<d>/metrics/#` for a thousand devices still walks one path per message.
class TopicSet {
 public:
  TopicSet();
  TopicSet(TopicSet&&) noexcept;
  TopicSet& operator=(TopicSet&&) noexcept;
  ~TopicSet();

  void add(std::string_view filter);
  // MQTT matching of a topic name (no wildcards) against the set.
  bool matches(std::string_view topic) const;
  // Whether some name matches both `filter` and an entry: a subscription that can receive
  // something allowed. What it may receive is then decided per message by matches().
  bool intersects(std::string_view filter) const;
  std::size_t size() const { return exact_.size() + filters_.size(); }

 private:
  struct Node;
  std::unordered_set<std::string, StringHash, std::equal_to<>> exact_;
  std::vector<std::string> filters_;  // as given, for intersects()
  std::unique_ptr<Node> tree_;        // the same filters, level by level
};

// MQTT filter matching on valid input, as the broker does ('$' names escape leading wildcards).
bool filter_matches(std::string_view filter, std::string_view topic);
bool filters_intersect(std::string_view a, std::string_view b);

struct CompiledGrant {
  TopicSet publish;
  TopicSet receive;
  Quota quota;
};

// A policy bundle compiled for decisions: per identity, its grant; the revocations as hash sets.
// Immutable once built, so a broker can swap a new one in whole.
class PolicyMatcher {
 public:
  // Denies everything.
  PolicyMatcher() = default;
  // `builtin` grants are added to the bundle's (the Security Manager's own channel).
  explicit PolicyMatcher(const PolicyBundle& bundle, std::span<const Grant> builtin = {});

  // The grant of an identity key, or nullptr (default deny).
  const CompiledGrant* grant_of(std::string_view identity_key) const;

  // Why a certificate is revoked (its serial, its identity or its whole CA domain), or nothing.
  std::optional<std::string> revocation_of(const ClientIdentity& identity,
                                           std::string_view serial) const;
  // The revocation check without a serial (connected clients after a new bundle).
  std::optional<std::string> revocation_of(const ClientIdentity& identity) const;

  std::uint64_t sequence() const { return sequence_; }
  const std::string& broker() const { return broker_; }
  const Quota& default_quota() const { return default_quota_; }
  std::size_t identities() const { return grants_.size(); }

 private:
  std::uint64_t sequence_ = 0;
  std::string broker_;
  Quota default_quota_;
  std::unordered_map<std::string, CompiledGrant, StringHash, std::equal_to<>> grants_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> revoked_serials_;  // domain|serial
  std::unordered_set<std::string, StringHash, std::equal_to<>> revoked_identities_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> revoked_domains_;
};

}  // namespace recmesh::policy
