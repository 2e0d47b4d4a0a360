#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "recmesh/core/clock.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/pki/records.hpp"

namespace recmesh {
class SqliteDatabase;
}

namespace recmesh::pki {

// Lifetimes, in days. Leaves are short so that renewal is routine (SPEC §3).
struct PkiSettings {
  int root_days = 7305;
  int top_ca_days = 3652;  // EMS CA, Bridge CA, REC CAs
  int member_ca_days = 1826;
  int leaf_days = 90;
  int crl_days = 30;
};

struct IssueRequest {
  Identity identity;
  std::vector<SubjectAltName> sans;        // brokers always get DNS:localhost and IP:127.0.0.1
  std::optional<int> days;                 // default PkiSettings::leaf_days
  std::string csr_pem;                     // empty: the PKI generates the key pair
  const Secret* key_passphrase = nullptr;  // encrypts a generated key (PKCS#8, scrypt)
  // Start of validity; default now. Lets tests mint expired and not-yet-valid certificates.
  std::optional<Clock::TimePoint> not_before;
  // false: nothing is written under issued/; the chain and a generated key come back in memory
  // (IssuedCertificate::chain_pem, key_pem), as an enrolment API or a simulator wants them.
  bool write_files = true;
};

// Exactly one tier: a certificate (cn or serial), a member (rec + member) or a REC (rec).
struct RevocationTarget {
  std::string common_name;
  std::string serial;
  std::string rec;
  std::string member;

  static RevocationTarget certificate(std::string cn) { return {std::move(cn), {}, {}, {}}; }
  static RevocationTarget serial_number(std::string s) { return {{}, std::move(s), {}, {}}; }
  static RevocationTarget whole_member(std::string r, std::string m) {
    return {{}, {}, std::move(r), std::move(m)};
  }
  static RevocationTarget whole_rec(std::string r) { return {{}, {}, std::move(r), {}}; }
};

struct RevocationResult {
  std::vector<std::string> revoked_serials;
  std::vector<std::string> crls_updated;  // authority IDs whose CRL was re-signed
};

struct VerifyResult {
  bool valid = false;
  int openssl_error = 0;  // X509_V_* code
  std::string reason;     // OpenSSL's text, "ok" when valid
  std::string common_name;
};

// The recmesh certificate hierarchy in one directory (docs/pki.md):
//   RootCA -> {EMS CA, Bridge CA, REC <r> CA -> member <r>/<m> CA}
// State lives in pki.db (SQLite); CA keys are encrypted PKCS#8; every change is one transaction
// that either lands whole or leaves the directory as it was.
class Pki {
 public:
  enum class Access { kReadOnly, kReadWrite };

  // Creates a new PKI in `dir` (absent or empty) with RootCA, EMS CA and Bridge CA.
  static Pki create(const std::filesystem::path& dir, Secret passphrase,
                    const Clock& clock = SystemClock::instance(), PkiSettings settings = {});
  // Opens an existing PKI. Operations that sign need `passphrase`; reading does not.
  static Pki open(const std::filesystem::path& dir, Access access,
                  std::optional<Secret> passphrase = std::nullopt,
                  const Clock& clock = SystemClock::instance(), PkiSettings settings = {});

  Pki(Pki&&) noexcept;
  Pki& operator=(Pki&&) noexcept;
  ~Pki();

  const std::filesystem::path& directory() const { return dir_; }

  AuthorityRecord add_rec(const std::string& rec);
  AuthorityRecord add_member(const std::string& rec, const std::string& member);
  // Several members of one REC in one transaction (one sync of the files for all their CAs);
  // all or none.
  std::vector<AuthorityRecord> add_members(const std::string& rec,
                                           std::span<const std::string> members);

  IssuedCertificate issue(const IssueRequest& request);
  // All or nothing, in one transaction: the fast path for enrolling many devices.
  std::vector<IssuedCertificate> issue_many(std::span<const IssueRequest> requests);
  // Same identity, SANs and lifetime; a new key (or `csr_pem`); the old certificate is revoked
  // as superseded.
  IssuedCertificate renew(const std::string& common_name, std::optional<int> days = std::nullopt,
                          const std::string& csr_pem = {}, const Secret* key_passphrase = nullptr);

  RevocationResult revoke(const RevocationTarget& target,
                          RevocationReason reason = RevocationReason::kCessationOfOperation);
  // Re-signs every CA's CRL with a fresh thisUpdate/nextUpdate.
  std::vector<std::string> refresh_crls();

  // Chain to the RootCA and every CRL in the chain, at the clock's time.
  VerifyResult verify(const std::string& certificate_pem) const;

  std::vector<AuthorityRecord> authorities() const;
  AuthorityRecord authority(const std::string& id) const;
  std::vector<CertificateRecord> certificates() const;
  // Leaf certificates revoked or superseded (not the CAs'), in issue order; what a broker's
  // policy must refuse, read without the rest of a large PKI.
  std::vector<CertificateRecord> revoked_leaf_certificates() const;
  // Throws kNotFound. By serial, or the newest certificate with that common name.
  CertificateRecord find_by_serial(const std::string& serial) const;
  CertificateRecord find_by_common_name(const std::string& common_name) const;
  // The newest valid certificate with that common name, if there is one.
  std::optional<CertificateRecord> valid_certificate(const std::string& common_name) const;
  IssuedFiles files_of(const CertificateRecord& record) const;

  // Paths of a CA's files.
  std::filesystem::path authority_cert_path(const std::string& id) const;
  std::filesystem::path authority_chain_path(const std::string& id) const;  // CA .. root
  std::filesystem::path authority_crl_path(const std::string& id) const;

 private:
  struct LoadedAuthority;
  class Impl;
  Pki(std::unique_ptr<Impl> impl, std::filesystem::path dir);

  std::unique_ptr<Impl> impl_;
  std::filesystem::path dir_;
};

}  // namespace recmesh::pki
