#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/clock.hpp"
#include "recmesh/core/result.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"

namespace recmesh::crypto {

// Signed messages that a party other than the transport must check: the EMS engine's diagnostic
// commands verified by the device itself, and the device's signed diagnostic report.
//
// Format: JWS Compact Serialization (RFC 7515) with ES256 (RFC 7518 §3.4) and the signer's
// certificate in `x5c`. The protected header binds the MQTT topic the message is meant for
// ("rmt", listed in "crit"), so a signed message cannot be replayed onto another device's topic:
//   {"alg":"ES256","crit":["rmt"],"rmt":"<topic>","typ":"recmesh+jws","x5c":["<DER b64>",...]}
// docs/protocol/signed-messages.md is the normative description, with a test vector.

inline constexpr std::size_t kMaxJwsSize = std::size_t{64} * 1024;

class JwsSigner {
 public:
  // `chain` starts with the signer's certificate; its key must be `key`.
  JwsSigner(PkeyPtr key, std::vector<X509Ptr> chain);
  // Reads a chain file (leaf first) and a key file (plain or encrypted PKCS#8).
  static JwsSigner from_files(const std::filesystem::path& chain_pem,
                              const std::filesystem::path& key_pem,
                              const Secret* key_passphrase = nullptr);

  std::string sign(std::string_view topic, std::string_view payload) const;
  const std::string& common_name() const { return common_name_; }

 private:
  PkeyPtr key_;
  std::vector<std::string> x5c_;
  std::string common_name_;
};

// Who may sign: leaves issued directly by `issuer` (the only trust anchor, so a certificate of
// another CA with the same name is refused), not on `crl`, valid at the clock's time, with a
// common name in `allowed_signers` (empty: any).
struct SignerTrust {
  std::string issuer_pem;
  std::string crl_pem;
  std::vector<std::string> allowed_signers;
  // Largest compact serialization accepted; documents such as policy bundles may raise it.
  std::size_t max_bytes = kMaxJwsSize;
};

struct VerifiedPayload {
  std::string payload;
  std::string signer;  // common name of the signing certificate
};

class JwsVerifier {
 public:
  // Throws Error(kInvalidArgument/kDataLoss) for an unreadable issuer or CRL (start-up).
  JwsVerifier(const SignerTrust& trust, const Clock& clock = SystemClock::instance());
  JwsVerifier(const JwsVerifier&) = delete;
  JwsVerifier& operator=(const JwsVerifier&) = delete;
  JwsVerifier(JwsVerifier&&) noexcept;
  JwsVerifier& operator=(JwsVerifier&&) noexcept;
  ~JwsVerifier();

  // Never throws. kInvalidArgument for malformed input, kPermissionDenied for a signature,
  // certificate, signer or topic that does not check out.
  Result<VerifiedPayload> verify(std::string_view topic, std::string_view compact) const;

 private:
  X509Ptr issuer_;
  X509CrlPtr crl_;
  std::vector<std::string> allowed_;
  std::size_t max_bytes_ = kMaxJwsSize;
  const Clock* clock_;
};

}  // namespace recmesh::crypto
