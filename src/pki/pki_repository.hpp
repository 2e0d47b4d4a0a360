#pragma once

#include <optional>
#include <string>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/pki/records.hpp"

namespace recmesh::pki {

// SQL for the PKI database (schema in docs/pki.md). No policy here: Pki decides, this stores.
class PkiRepository {
 public:
  explicit PkiRepository(SqliteDatabase& db) : db_(db) {}

  static constexpr int kSchemaVersion = 1;
  void create_schema();
  // Throws kDataLoss when the database is not a recmesh PKI of a known version.
  void check_schema();

  void insert_authority(const AuthorityRecord& record);
  std::optional<AuthorityRecord> find_authority(const std::string& id);
  std::vector<AuthorityRecord> authorities();
  std::vector<AuthorityRecord> member_authorities_of(const std::string& rec);
  void mark_authority_revoked(const std::string& id);
  void set_crl_number(const std::string& id, long long number);

  void insert_certificate(const CertificateRecord& record);
  std::optional<CertificateRecord> find_certificate(const std::string& serial);
  // Newest first.
  std::vector<CertificateRecord> certificates_with_common_name(const std::string& cn);
  std::vector<CertificateRecord> certificates();
  std::vector<CertificateRecord> revoked_leaf_certificates();
  // Valid certificates issued by `issuer`, or naming `rec` (and `member` when not empty).
  std::vector<CertificateRecord> valid_certificates_issued_by(const std::string& issuer);
  std::vector<CertificateRecord> valid_certificates_naming(const std::string& rec,
                                                           const std::string& member);
  std::vector<RevokedEntry> revoked_entries_of(const std::string& issuer);
  void mark_revoked(const std::string& serial, CertificateStatus status, long long at,
                    RevocationReason reason, const std::optional<std::string>& superseded_by);

 private:
  std::vector<CertificateRecord> query_certificates(const std::string& where,
                                                    const std::vector<std::string>& args);
  std::vector<AuthorityRecord> query_authorities(const std::string& where,
                                                 const std::vector<std::string>& args);
  SqliteDatabase& db_;
};

}  // namespace recmesh::pki
