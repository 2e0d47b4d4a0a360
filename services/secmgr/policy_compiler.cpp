#include "secmgr/policy_compiler.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/client_identity.hpp"

namespace recmesh::secmgr {
namespace {

constexpr std::string_view kMemberAuthorityPrefix = "member_";

// Authority ID -> CA domain: ems, bridge, member_<r>_<m> -> member/<r>/<m>.
std::optional<std::string> domain_of_authority(const std::string& id) {
  if (id == "ems") {
    return policy::CaDomain::ems().to_string();
  }
  if (id == "bridge") {
    return policy::CaDomain::bridge().to_string();
  }
  if (id.starts_with(kMemberAuthorityPrefix)) {
    const std::string rest = id.substr(kMemberAuthorityPrefix.size());
    const std::size_t split = rest.find('_');
    if (split != std::string::npos) {
      return policy::CaDomain::of_member(rest.substr(0, split), rest.substr(split + 1)).to_string();
    }
  }
  return std::nullopt;
}

std::vector<std::string>& topics_of(policy::Grant& grant, const std::string& permission) {
  return permission == "write" ? grant.publish : grant.subscribe;
}

void add_unique(std::vector<std::string>& topics, const std::string& topic) {
  if (std::find(topics.begin(), topics.end(), topic) == topics.end()) {
    topics.push_back(topic);
  }
}

}  // namespace

policy::BrokerId broker_id_of(const BrokerRecord& broker) {
  return broker.role == "local" ? policy::BrokerId::local(broker.rec, broker.member)
                                : policy::BrokerId::central();
}

std::string identity_key(const IdentityRecord& identity) {
  const pki::Identity pki_identity = pki::Identity::make(
      pki::parse_identity_kind(identity.kind), identity.rec, identity.member, identity.name);
  return policy::client_identity_of(pki_identity).key();
}

bool serves(const BrokerRecord& broker, const IdentityRecord& identity) {
  if (broker.role == "local") {
    return identity.rec == broker.rec && identity.member == broker.member;
  }
  return identity.kind == "bridge" || identity.kind == "service";
}

policy::PolicyBundle compile_policy(const BrokerRecord& broker, const PolicySnapshot& snapshot,
                                    std::uint64_t sequence, std::int64_t issued_at,
                                    const policy::Quota& device_quota) {
  const policy::BrokerId id = broker_id_of(broker);
  std::vector<policy::MemberRegistration> members;
  for (const MemberRecord& member : snapshot.members) {
    if (member.status != kActive) {
      continue;
    }
    policy::MemberRegistration registration{member.rec, member.id, {}};
    for (const IdentityRecord& identity : snapshot.identities) {
      if (identity.kind == "device" && identity.status == kActive && identity.rec == member.rec &&
          identity.member == member.id) {
        registration.devices.push_back(identity.name);
      }
    }
    members.push_back(std::move(registration));
  }
  const bool local_member_active =
      broker.role != "local" ||
      std::any_of(members.begin(), members.end(), [&](const policy::MemberRegistration& m) {
        return m.rec == broker.rec && m.member == broker.member;
      });

  // identity key -> grant, in a stable order.
  std::map<std::string, policy::Grant> grants;
  if (local_member_active) {
    auto derived = policy::derive_access_matrix(id, members);
    if (!derived) {
      throw Error(derived.status().code, fmt::format("cannot derive the policy of {}: {}",
                                                     broker.id, derived.status().message));
    }
    for (policy::DerivedGrant& row : *derived) {
      policy::Grant& grant = grants[row.grant.identity];
      grant.identity = row.grant.identity;
      for (const auto& topic : row.grant.publish) {
        add_unique(grant.publish, topic);
      }
      for (const auto& topic : row.grant.subscribe) {
        add_unique(grant.subscribe, topic);
      }
    }
  }

  std::map<std::string, const IdentityRecord*> by_name;
  for (const IdentityRecord& identity : snapshot.identities) {
    by_name.emplace(identity.common_name, &identity);
  }
  for (const RuleRecord& rule : snapshot.rules) {
    const auto found = by_name.find(rule.identity);
    if (found == by_name.end() || found->second->status != kActive) {
      continue;
    }
    const IdentityRecord& identity = *found->second;
    const bool applies =
        rule.broker == broker.id || (rule.broker == "*" && serves(broker, identity));
    if (!applies) {
      continue;
    }
    const std::string key = identity_key(identity);
    policy::Grant& grant = grants[key];
    grant.identity = key;
    std::vector<std::string>& topics = topics_of(grant, rule.permission);
    if (rule.allow) {
      add_unique(topics, rule.topic);
    } else {
      topics.erase(std::remove(topics.begin(), topics.end(), rule.topic), topics.end());
    }
  }

  policy::PolicyBundle bundle;
  bundle.broker = id.to_string();
  bundle.sequence = sequence;
  bundle.issued_at = issued_at;
  std::set<std::string> revoked_keys;
  for (const IdentityRecord& identity : snapshot.identities) {
    if (identity.status != kActive) {
      revoked_keys.insert(identity_key(identity));
    }
  }
  std::set<std::string> revoked_domains;
  for (const MemberRecord& member : snapshot.members) {
    if (member.status != kActive) {
      revoked_domains.insert(policy::CaDomain::of_member(member.rec, member.id).to_string());
    }
  }
  std::set<std::string> device_keys;
  if (device_quota != policy::Quota{}) {
    for (const IdentityRecord& identity : snapshot.identities) {
      if (identity.kind == "device") {
        device_keys.insert(identity_key(identity));
      }
    }
  }
  for (auto& [key, grant] : grants) {
    if (device_keys.contains(key)) {
      grant.quota = device_quota;
    }
    if (!revoked_keys.contains(key) && (!grant.publish.empty() || !grant.subscribe.empty())) {
      bundle.grants.push_back(std::move(grant));
    }
  }
  bundle.revocations.identities.assign(revoked_keys.begin(), revoked_keys.end());
  bundle.revocations.domains.assign(revoked_domains.begin(), revoked_domains.end());
  for (const RevokedCertificate& certificate : snapshot.revoked_certificates) {
    const std::optional<std::string> domain = domain_of_authority(certificate.issuer);
    auto serial = policy::normalise_serial(certificate.serial);
    if (domain && serial) {
      bundle.revocations.serials.push_back({*domain, *serial});
    }
  }
  return bundle;
}

}  // namespace recmesh::secmgr
