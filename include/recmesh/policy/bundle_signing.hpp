#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "recmesh/core/clock.hpp"
#include "recmesh/core/result.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::policy {

// The Security Manager's side: a bundle as JWS (ES256, x5c, bound to kGuardControlTopic) over
// its canonical JSON.
class BundleSigner {
 public:
  explicit BundleSigner(crypto::JwsSigner signer) : signer_(std::move(signer)) {}
  std::string sign(const PolicyBundle& bundle) const;
  const std::string& common_name() const { return signer_.common_name(); }

 private:
  crypto::JwsSigner signer_;
};

// Whom a broker takes bundles from: the Security Manager's certificate, issued directly by the
// EMS CA (whose certificate and CRL come with it). A bundle must be signed by a certificate of
// the EMS CA with the Security Manager's common name.
struct BundleTrust {
  std::string ems_ca_pem;
  std::string ems_crl_pem;
  std::string secmgr_cert_pem;
};

class BundleVerifier {
 public:
  // Throws Error(kInvalidArgument) when the Security Manager's certificate is not an `ems_*`
  // leaf issued by the EMS CA, or the CA or CRL is unreadable (start-up).
  explicit BundleVerifier(const BundleTrust& trust, const Clock& clock = SystemClock::instance());

  // Never throws. Refuses, with a reason safe to log and to send back:
  //  kPermissionDenied   forged: bad signature, wrong signer, foreign CA, revoked or expired
  //  kInvalidArgument    malformed JWS or bundle
  //  kFailedPrecondition for another broker, or a sequence not above `current_sequence`
  //                      (a replayed or older bundle)
  Result<PolicyBundle> verify(std::string_view signed_bundle, const BrokerId& broker,
                              std::uint64_t current_sequence) const;

  const std::string& signer_common_name() const { return signer_cn_; }

 private:
  std::string signer_cn_;
  crypto::JwsVerifier jws_;
};

}  // namespace recmesh::policy
