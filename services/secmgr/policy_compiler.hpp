#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recmesh/policy/policy_bundle.hpp"

#include "secmgr/registry.hpp"

namespace recmesh::secmgr {

// The whole policy of `broker` (docs/secmgr.md, "Policy"): the least-privilege rules SPEC §6
// derives from the topic conventions for every member's registered devices, then the custom
// rules that apply to this broker (allow adds the filter, deny removes the same filter from the
// derived ones), minus revoked identities, plus every revocation: identities, member domains
// and the serials of revoked or superseded certificates. Throws Error(kInvalidArgument) when the
// registry holds something the policy cannot express. Every registered device (not the gateway,
// bridges or services) gets `device_quota` (all zero: unlimited).
policy::PolicyBundle compile_policy(const BrokerRecord& broker, const PolicySnapshot& snapshot,
                                    std::uint64_t sequence, std::int64_t issued_at,
                                    const policy::Quota& device_quota = {});

// The broker a record names: `local/<rec>/<member>` or `central`.
policy::BrokerId broker_id_of(const BrokerRecord& broker);

// Whether `broker` serves `identity` (where a `*` custom rule lands): a local broker serves its
// member's devices, gateway and bridge; a central broker the bridges and the EMS services.
bool serves(const BrokerRecord& broker, const IdentityRecord& identity);

// `<domain>:<cn>` of a registered identity.
std::string identity_key(const IdentityRecord& identity);

}  // namespace recmesh::secmgr
