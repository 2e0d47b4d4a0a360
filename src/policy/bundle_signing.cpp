#include "recmesh/policy/bundle_signing.hpp"

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/policy/client_identity.hpp"

namespace recmesh::policy {
namespace {

// The Security Manager's CN, after checking that its certificate is an EMS-CA client identity.
std::string secmgr_common_name(const BundleTrust& trust) {
  const crypto::X509Ptr ca = crypto::certificate_from_pem(trust.ems_ca_pem, "the EMS CA");
  const crypto::X509Ptr cert =
      crypto::certificate_from_pem(trust.secmgr_cert_pem, "the Security Manager's certificate");
  crypto::PkeyPtr ca_key(X509_get_pubkey(ca.get()));
  if (!ca_key || X509_verify(cert.get(), ca_key.get()) != 1 ||
      X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca.get())) != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "the Security Manager's certificate was not issued by the EMS CA");
  }
  std::string cn = crypto::subject_common_name(cert.get());
  auto identity = make_client_identity(CaDomain::ems(), cn);
  if (!identity) {
    throw Error(ErrorCode::kInvalidArgument, identity.status().message);
  }
  return cn;
}

crypto::SignerTrust signer_trust(const BundleTrust& trust, const std::string& cn) {
  crypto::SignerTrust out;
  out.issuer_pem = trust.ems_ca_pem;
  out.crl_pem = trust.ems_crl_pem;
  out.allowed_signers = {cn};
  out.max_bytes = kMaxBundleBytes;
  return out;
}

}  // namespace

std::string BundleSigner::sign(const PolicyBundle& bundle) const {
  return signer_.sign(kGuardControlTopic, to_json(bundle));
}

BundleVerifier::BundleVerifier(const BundleTrust& trust, const Clock& clock)
    : signer_cn_(secmgr_common_name(trust)), jws_(signer_trust(trust, signer_cn_), clock) {}

Result<PolicyBundle> BundleVerifier::verify(std::string_view signed_bundle, const BrokerId& broker,
                                            std::uint64_t current_sequence) const {
  auto verified = jws_.verify(kGuardControlTopic, signed_bundle);
  if (!verified) {
    return verified.status();
  }
  auto bundle = parse_policy_bundle(verified->payload);
  if (!bundle) {
    return bundle.status();
  }
  if (bundle->broker != broker.to_string()) {
    return Status{
        ErrorCode::kFailedPrecondition,
        fmt::format("the bundle is for broker {}, this is {}", bundle->broker, broker.to_string())};
  }
  if (bundle->sequence <= current_sequence) {
    return Status{ErrorCode::kFailedPrecondition,
                  fmt::format("sequence {} is not above {} in force: a replayed or older bundle",
                              bundle->sequence, current_sequence)};
  }
  return bundle;
}

}  // namespace recmesh::policy
