#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::broker {

// ems_secmgr's files in `pki`, the signer of every policy bundle a broker's recmesh-guard takes;
// issued now when the PKI has no valid one (`issued_now` then says so).
pki::IssuedFiles secmgr_files(pki::Pki& pki, bool* issued_now = nullptr);

// The least-privilege policy of SPEC §6 for `broker` over `members` (policy::derived_bundle)
// with `extra` grants merged in as custom allow rules would be, signed with ems_secmgr's key
// from `pki`: the bundle a community that runs without a Security Manager (integration tests,
// benchmarks) seeds its brokers with (GuardPluginOptions::seed_bundle, `broker-config
// --policy`) and pushes on changes. Throws Error for invalid registrations.
std::string sign_derived_policy(pki::Pki& pki, const policy::BrokerId& broker,
                                std::span<const policy::MemberRegistration> members,
                                std::span<const policy::Grant> extra, std::uint64_t sequence);

}  // namespace recmesh::broker
