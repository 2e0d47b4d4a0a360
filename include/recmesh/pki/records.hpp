#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "recmesh/core/secret.hpp"
#include "recmesh/pki/certificate_signer.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/pki/subject_alt_name.hpp"

namespace recmesh::pki {

enum class CertificateStatus { kValid, kRevoked, kSuperseded };
std::string_view to_string(CertificateStatus status);
CertificateStatus parse_certificate_status(std::string_view text);

// One certificate the PKI has signed, leaf or CA, as kept in its database.
struct CertificateRecord {
  std::string serial;
  std::string issuer;  // authority ID of the signing CA
  std::string kind;    // "ca" or an IdentityKind name
  std::string common_name;
  std::string rec, member, name;
  std::vector<SubjectAltName> sans;
  long long not_before = 0;  // Unix seconds
  long long not_after = 0;
  CertificateStatus status = CertificateStatus::kValid;
  std::optional<long long> revoked_at;
  std::optional<RevocationReason> reason;
  std::optional<std::string> superseded_by;
  bool has_key = false;  // the PKI generated the key (false for CSR-based issuance)
  std::string pem;
};

// One certification authority of the hierarchy.
struct AuthorityRecord {
  std::string id;  // root, ems, bridge, rec_<r>, member_<r>_<m>
  AuthorityKind kind = AuthorityKind::kRoot;
  std::string parent;  // "" for the root
  std::string rec, member;
  std::string serial;       // of its own certificate
  std::string fingerprint;  // SHA-256 of its certificate, checked on every load
  std::string common_name;
  long long crl_number = 0;
  long long not_after = 0;
  bool revoked = false;
};

// Absolute paths of an identity's files.
struct IssuedFiles {
  std::filesystem::path cert;    // the leaf alone
  std::filesystem::path key;     // empty when the requester kept its key (CSR)
  std::filesystem::path chain;   // leaf + intermediates, what a TLS peer presents
  std::filesystem::path cafile;  // trust bundle to verify the broker(s) this identity talks to
};

struct IssuedCertificate {
  CertificateRecord record;
  IssuedFiles files;      // empty paths when the request did not write files
  std::string chain_pem;  // leaf + intermediates
  Secret key_pem;         // a generated key that was not written to a file
};

}  // namespace recmesh::pki
