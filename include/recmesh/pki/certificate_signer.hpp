#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/clock.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/pki/subject_alt_name.hpp"

namespace recmesh::pki {

// RFC 5280 CRLReason values we use.
enum class RevocationReason {
  kUnspecified = 0,
  kKeyCompromise = 1,
  kCaCompromise = 2,
  kAffiliationChanged = 3,
  kSuperseded = 4,
  kCessationOfOperation = 5,
};
std::string_view to_string(RevocationReason reason);
// Accepts the names to_string() prints; throws Error(kInvalidArgument).
RevocationReason parse_revocation_reason(std::string_view text);

// What goes into one certificate; the signer adds SKI/AKI and the key usages that follow.
struct CertificateTemplate {
  enum class Usage { kCertificateAuthority, kServer, kClient };
  std::string common_name;
  Usage usage = Usage::kClient;
  int path_length = -1;  // CAs only; -1 leaves it unbounded
  std::vector<SubjectAltName> sans;
  Clock::TimePoint not_before;
  Clock::TimePoint not_after;
  // The subject key's encoded point when the caller has it already (saves recomputing it).
  std::string encoded_public_key;
};

// A signed certificate as bytes. Issuing many leaves never needs them as OpenSSL objects, and
// OpenSSL 3.0 takes ~90 us to decode a certificate's key, so parse() only when needed.
struct SignedCertificate {
  std::string der;
  std::string serial;  // upper-case hex, as stored and printed

  std::string pem() const;
  crypto::X509Ptr parse() const;
};

// Signs `subject_key`'s public half with `issuer_key`. `issuer` is null for a self-signed root.
// Serial numbers are 127 random bits (positive, RFC 5280 §4.1.2.2).
// `signing_template`, if given, is an EVP_MD_CTX already initialised with EVP_DigestSignInit for
// `issuer_key` and SHA-256; copying it is cheaper than initialising one per certificate.
SignedCertificate sign_certificate(const CertificateTemplate& tmpl, EVP_PKEY* subject_key,
                                   X509* issuer, EVP_PKEY* issuer_key,
                                   const EVP_MD_CTX* signing_template = nullptr);

// A signing context for sign_certificate(..., signing_template).
crypto::MdCtxPtr make_signing_template(EVP_PKEY* issuer_key);

struct RevokedEntry {
  std::string serial;
  long long revoked_at = 0;  // Unix seconds
  RevocationReason reason = RevocationReason::kUnspecified;
};

// A v2 CRL with CRL number, AKI and one reason code per entry.
crypto::X509CrlPtr sign_crl(X509* issuer, EVP_PKEY* issuer_key,
                            const std::vector<RevokedEntry>& revoked, long long crl_number,
                            Clock::TimePoint this_update, Clock::TimePoint next_update);

std::string serial_to_hex(const ASN1_INTEGER* serial);

}  // namespace recmesh::pki
