#include "recmesh/broker/seed_policy.hpp"

#include <algorithm>

#include "recmesh/core/error.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/bundle_signing.hpp"

namespace recmesh::broker {
namespace {

// Adds `topics` to `into` unless present.
void merge(std::vector<std::string>& into, const std::vector<std::string>& topics) {
  for (const auto& topic : topics) {
    if (std::find(into.begin(), into.end(), topic) == into.end()) {
      into.push_back(topic);
    }
  }
}

}  // namespace

pki::IssuedFiles secmgr_files(pki::Pki& pki, bool* issued_now) {
  const pki::Identity secmgr = pki::Identity::make(pki::IdentityKind::kService, "", "", "secmgr");
  if (const auto current = pki.valid_certificate(secmgr.common_name())) {
    return pki.files_of(*current);
  }
  pki::IssueRequest request;
  request.identity = secmgr;
  if (issued_now != nullptr) {
    *issued_now = true;
  }
  return pki.issue(request).files;
}

std::string sign_derived_policy(pki::Pki& pki, const policy::BrokerId& broker,
                                std::span<const policy::MemberRegistration> members,
                                std::span<const policy::Grant> extra, std::uint64_t sequence) {
  auto derived = policy::derived_bundle(broker, members, sequence, 1);
  if (!derived) {
    throw Error(derived.status().code, "derived policy: " + derived.status().message);
  }
  policy::PolicyBundle bundle = std::move(derived).value();
  for (const auto& more : extra) {
    auto same = std::find_if(bundle.grants.begin(), bundle.grants.end(),
                             [&](const auto& g) { return g.identity == more.identity; });
    if (same == bundle.grants.end()) {
      bundle.grants.push_back(more);
    } else {
      merge(same->publish, more.publish);
      merge(same->subscribe, more.subscribe);
    }
  }
  const pki::IssuedFiles files = secmgr_files(pki);
  return policy::BundleSigner(crypto::JwsSigner::from_files(files.chain, files.key)).sign(bundle);
}

}  // namespace recmesh::broker
