#include "recmesh/policy/policy_matcher.hpp"

#include <fmt/format.h>

namespace recmesh::policy {
namespace {

bool has_wildcard(std::string_view filter) {
  return filter.find_first_of("+#") != std::string_view::npos;
}

// The level of `text` starting at `pos`, and the position after its '/' (npos at the end).
std::string_view next_level(std::string_view text, std::size_t& pos) {
  const std::size_t slash = text.find('/', pos);
  const std::string_view level =
      text.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
  pos = slash == std::string_view::npos ? std::string_view::npos : slash + 1;
  return level;
}

std::string serial_key(std::string_view domain, std::string_view serial) {
  return fmt::format("{}|{}", domain, serial);
}

}  // namespace

bool filter_matches(std::string_view filter, std::string_view topic) {
  if (topic.empty()) {
    return false;
  }
  if (topic.front() == '$' && !filter.empty() && (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  std::size_t f = 0;
  std::size_t t = 0;
  while (f != std::string_view::npos) {
    const std::string_view want = next_level(filter, f);
    if (want == "#") {
      return true;  // the parent and every descendant
    }
    if (t == std::string_view::npos) {
      return false;
    }
    const std::string_view have = next_level(topic, t);
    if (want != "+" && want != have) {
      return false;
    }
  }
  return t == std::string_view::npos;
}

bool filters_intersect(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i != std::string_view::npos && j != std::string_view::npos) {
    const std::string_view x = next_level(a, i);
    const std::string_view y = next_level(b, j);
    if (x == "#" || y == "#") {
      return true;
    }
    if (x != "+" && y != "+" && x != y) {
      return false;
    }
  }
  if (i == std::string_view::npos && j == std::string_view::npos) {
    return true;
  }
  // One ran out: the other must continue with exactly "#" (which also matches the parent).
  const std::string_view rest = i == std::string_view::npos ? b.substr(j) : a.substr(i);
  return rest == "#";
}

struct TopicSet::Node {
  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> children;
  std::unique_ptr<Node> plus;  // '+' at this level
  bool hash = false;           // '#' at this level: this level's parent and everything below
  bool end = false;            // a filter ends here
};

TopicSet::TopicSet() = default;
TopicSet::TopicSet(TopicSet&&) noexcept = default;
TopicSet& TopicSet::operator=(TopicSet&&) noexcept = default;
TopicSet::~TopicSet() = default;

void TopicSet::add(std::string_view filter) {
  if (!has_wildcard(filter)) {
    exact_.emplace(filter);
    return;
  }
  filters_.emplace_back(filter);
  if (!tree_) {
    tree_ = std::make_unique<Node>();
  }
  Node* node = tree_.get();
  std::size_t pos = 0;
  while (pos != std::string_view::npos) {
    const std::string_view level = next_level(filter, pos);
    if (level == "#") {
      node->hash = true;
      return;
    }
    std::unique_ptr<Node>* next = nullptr;
    if (level == "+") {
      next = &node->plus;
    } else {
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        it = node->children.emplace(std::string(level), nullptr).first;
      }
      next = &it->second;
    }
    if (!*next) {
      *next = std::make_unique<Node>();
    }
    node = next->get();
  }
  node->end = true;
}

namespace {

// Whether the levels of `topic` from `pos` reach the end of a filter below `node`.
template <typename Node>
bool match_below(const Node& node, std::string_view topic, std::size_t pos, bool first) {
  // '#' matches the parent level too (`a/#` matches `a`), but never a '$' name at the root.
  if (node.hash && !(first && !topic.empty() && topic.front() == '$')) {
    return true;
  }
  if (pos == std::string_view::npos) {
    return node.end;
  }
  const std::string_view level = next_level(topic, pos);
  if (auto it = node.children.find(level);
      it != node.children.end() && match_below(*it->second, topic, pos, false)) {
    return true;
  }
  const bool dollar_root = first && !topic.empty() && topic.front() == '$';
  return node.plus && !dollar_root && match_below(*node.plus, topic, pos, false);
}

}  // namespace

bool TopicSet::matches(std::string_view topic) const {
  if (exact_.find(topic) != exact_.end()) {
    return true;
  }
  return tree_ && !topic.empty() && match_below(*tree_, topic, 0, true);
}

bool TopicSet::intersects(std::string_view filter) const {
  if (!has_wildcard(filter)) {
    return matches(filter);
  }
  for (const auto& topic : exact_) {
    if (filter_matches(filter, topic)) {
      return true;
    }
  }
  for (const auto& granted : filters_) {
    if (filters_intersect(granted, filter)) {
      return true;
    }
  }
  return false;
}

PolicyMatcher::PolicyMatcher(const PolicyBundle& bundle, std::span<const Grant> builtin)
    : sequence_(bundle.sequence), broker_(bundle.broker), default_quota_(bundle.default_quota) {
  const auto compile = [this](const Grant& grant) {
    auto [it, inserted] = grants_.try_emplace(grant.identity);
    CompiledGrant& compiled = it->second;
    if (inserted) {
      compiled.quota = grant.quota.value_or(default_quota_);
    } else if (grant.quota) {
      compiled.quota = *grant.quota;  // a later grant of the same identity refines the quota
    }
    for (const auto& topic : grant.publish) {
      compiled.publish.add(topic);
    }
    for (const auto& filter : grant.subscribe) {
      compiled.receive.add(filter);
    }
  };
  grants_.reserve(bundle.grants.size() + builtin.size());
  for (const auto& grant : bundle.grants) {
    compile(grant);
  }
  for (const auto& grant : builtin) {
    compile(grant);
  }
  for (const auto& s : bundle.revocations.serials) {
    revoked_serials_.insert(serial_key(s.domain, s.serial));
  }
  revoked_identities_.insert(bundle.revocations.identities.begin(),
                             bundle.revocations.identities.end());
  revoked_domains_.insert(bundle.revocations.domains.begin(), bundle.revocations.domains.end());
}

const CompiledGrant* PolicyMatcher::grant_of(std::string_view identity_key) const {
  auto it = grants_.find(identity_key);
  return it == grants_.end() ? nullptr : &it->second;
}

std::optional<std::string> PolicyMatcher::revocation_of(const ClientIdentity& identity) const {
  const std::string domain = identity.domain.to_string();
  if (revoked_domains_.contains(domain)) {
    return fmt::format("CA domain {} is revoked", domain);
  }
  if (revoked_identities_.contains(identity.key())) {
    return fmt::format("identity {} is revoked", identity.key());
  }
  return std::nullopt;
}

std::optional<std::string> PolicyMatcher::revocation_of(const ClientIdentity& identity,
                                                        std::string_view serial) const {
  if (auto reason = revocation_of(identity)) {
    return reason;
  }
  const std::string domain = identity.domain.to_string();
  if (revoked_serials_.contains(serial_key(domain, serial))) {
    return fmt::format("certificate {} of CA {} is revoked", serial, domain);
  }
  return std::nullopt;
}

}  // namespace recmesh::policy
