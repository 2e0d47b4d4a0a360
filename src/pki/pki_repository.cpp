#include "pki_repository.hpp"

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh::pki {
namespace {

constexpr const char* kCertificateColumns =
    "serial, issuer, kind, cn, rec, member, name, sans, not_before, not_after, status, "
    "revoked_at, reason, superseded_by, has_key, pem";
constexpr const char* kAuthorityColumns =
    "id, kind, parent, rec, member, serial, fingerprint, cn, crl_number, not_after, revoked";

AuthorityKind parse_authority_kind(const std::string& text) {
  for (auto kind : {AuthorityKind::kRoot, AuthorityKind::kEms, AuthorityKind::kBridge,
                    AuthorityKind::kRec, AuthorityKind::kMember}) {
    if (to_string(kind) == text) {
      return kind;
    }
  }
  throw Error(ErrorCode::kDataLoss, fmt::format("unknown authority kind '{}' in pki.db", text));
}

AuthorityRecord authority_from(const SqliteStatement& s) {
  AuthorityRecord r;
  r.id = s.column_text(0);
  r.kind = parse_authority_kind(s.column_text(1));
  r.parent = s.column_optional_text(2).value_or("");
  r.rec = s.column_text(3);
  r.member = s.column_text(4);
  r.serial = s.column_text(5);
  r.fingerprint = s.column_text(6);
  r.common_name = s.column_text(7);
  r.crl_number = s.column_int(8);
  r.not_after = s.column_int(9);
  r.revoked = s.column_int(10) != 0;
  return r;
}

CertificateRecord certificate_from(const SqliteStatement& s) {
  CertificateRecord r;
  r.serial = s.column_text(0);
  r.issuer = s.column_text(1);
  r.kind = s.column_text(2);
  r.common_name = s.column_text(3);
  r.rec = s.column_text(4);
  r.member = s.column_text(5);
  r.name = s.column_text(6);
  r.sans = split_subject_alt_names(s.column_text(7));
  r.not_before = s.column_int(8);
  r.not_after = s.column_int(9);
  r.status = parse_certificate_status(s.column_text(10));
  r.revoked_at = s.column_optional_int(11);
  if (auto reason = s.column_optional_int(12)) {
    r.reason = static_cast<RevocationReason>(*reason);
  }
  r.superseded_by = s.column_optional_text(13);
  r.has_key = s.column_int(14) != 0;
  r.pem = s.column_text(15);
  return r;
}

}  // namespace

std::string_view to_string(CertificateStatus status) {
  switch (status) {
    case CertificateStatus::kValid:
      return "valid";
    case CertificateStatus::kRevoked:
      return "revoked";
    case CertificateStatus::kSuperseded:
      return "superseded";
  }
  return "valid";
}

CertificateStatus parse_certificate_status(std::string_view text) {
  for (auto status :
       {CertificateStatus::kValid, CertificateStatus::kRevoked, CertificateStatus::kSuperseded}) {
    if (to_string(status) == text) {
      return status;
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown status '{}' (expected valid, revoked or superseded)", text));
}

void PkiRepository::create_schema() {
  db_.execute(R"sql(
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE authorities (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      parent TEXT REFERENCES authorities(id),
      rec TEXT NOT NULL DEFAULT '',
      member TEXT NOT NULL DEFAULT '',
      serial TEXT NOT NULL UNIQUE,
      fingerprint TEXT NOT NULL,
      cn TEXT NOT NULL,
      crl_number INTEGER NOT NULL DEFAULT 0,
      not_after INTEGER NOT NULL,
      revoked INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE certificates (
      serial TEXT PRIMARY KEY,
      issuer TEXT NOT NULL REFERENCES authorities(id),
      kind TEXT NOT NULL,
      cn TEXT NOT NULL,
      rec TEXT NOT NULL DEFAULT '',
      member TEXT NOT NULL DEFAULT '',
      name TEXT NOT NULL DEFAULT '',
      sans TEXT NOT NULL DEFAULT '',
      not_before INTEGER NOT NULL,
      not_after INTEGER NOT NULL,
      status TEXT NOT NULL DEFAULT 'valid',
      revoked_at INTEGER,
      reason INTEGER,
      superseded_by TEXT,
      has_key INTEGER NOT NULL,
      pem TEXT NOT NULL);
    CREATE INDEX certificates_by_cn ON certificates (cn);
    CREATE INDEX certificates_by_issuer ON certificates (issuer, status);
    CREATE INDEX certificates_by_member ON certificates (rec, member, status);
  )sql");
  db_.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)")
      .bind(1, std::int64_t{kSchemaVersion})
      .run();
}

void PkiRepository::check_schema() {
  std::optional<std::string> version;
  try {
    version = db_.prepare("SELECT value FROM meta WHERE key = 'schema_version'")
                  .first_row([](const SqliteStatement& row) { return row.column_text(0); });
  } catch (const Error&) {
    version.reset();
  }
  if (!version || *version != std::to_string(kSchemaVersion)) {
    throw Error(ErrorCode::kDataLoss, "pki.db is not a recmesh PKI database of schema version 1");
  }
}

void PkiRepository::insert_authority(const AuthorityRecord& r) {
  db_.cached(fmt::format("INSERT INTO authorities ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         kAuthorityColumns))
      .bind(1, r.id)
      .bind(2, to_string(r.kind))
      .bind_nullable(3, r.parent.empty() ? std::nullopt : std::optional<std::string>(r.parent))
      .bind(4, r.rec)
      .bind(5, r.member)
      .bind(6, r.serial)
      .bind(7, r.fingerprint)
      .bind(8, r.common_name)
      .bind(9, std::int64_t{r.crl_number})
      .bind(10, std::int64_t{r.not_after})
      .bind(11, std::int64_t{r.revoked ? 1 : 0})
      .run();
}

std::vector<AuthorityRecord> PkiRepository::query_authorities(
    const std::string& where, const std::vector<std::string>& args) {
  auto& stmt = db_.cached(
      fmt::format("SELECT {} FROM authorities {} ORDER BY rowid", kAuthorityColumns, where));
  for (std::size_t i = 0; i < args.size(); ++i) {
    stmt.bind(static_cast<int>(i + 1), args[i]);
  }
  return stmt.rows(authority_from);
}

std::optional<AuthorityRecord> PkiRepository::find_authority(const std::string& id) {
  static const std::string select_sql =
      fmt::format("SELECT {} FROM authorities WHERE id = ?", kAuthorityColumns);
  return db_.cached(select_sql).bind(1, id).first_row(authority_from);
}

std::vector<AuthorityRecord> PkiRepository::authorities() {
  return query_authorities("", {});
}

std::vector<AuthorityRecord> PkiRepository::member_authorities_of(const std::string& rec) {
  return query_authorities("WHERE kind = 'member' AND rec = ?", {rec});
}

void PkiRepository::mark_authority_revoked(const std::string& id) {
  db_.cached("UPDATE authorities SET revoked = 1 WHERE id = ?").bind(1, id).run();
}

void PkiRepository::set_crl_number(const std::string& id, long long number) {
  db_.cached("UPDATE authorities SET crl_number = ? WHERE id = ?")
      .bind(1, std::int64_t{number})
      .bind(2, id)
      .run();
}

void PkiRepository::insert_certificate(const CertificateRecord& r) {
  static const std::string insert_sql =
      fmt::format("INSERT INTO certificates ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  kCertificateColumns);
  db_.cached(insert_sql)
      .bind(1, r.serial)
      .bind(2, r.issuer)
      .bind(3, r.kind)
      .bind(4, r.common_name)
      .bind(5, r.rec)
      .bind(6, r.member)
      .bind(7, r.name)
      .bind(8, join_subject_alt_names(r.sans))
      .bind(9, std::int64_t{r.not_before})
      .bind(10, std::int64_t{r.not_after})
      .bind(11, to_string(r.status))
      .bind_nullable(12, r.revoked_at ? std::optional<std::int64_t>(*r.revoked_at) : std::nullopt)
      .bind_nullable(13, r.reason
                             ? std::optional<std::int64_t>(static_cast<std::int64_t>(*r.reason))
                             : std::nullopt)
      .bind_nullable(14, r.superseded_by)
      .bind(15, std::int64_t{r.has_key ? 1 : 0})
      .bind(16, r.pem)
      .run();
}

std::vector<CertificateRecord> PkiRepository::query_certificates(
    const std::string& where, const std::vector<std::string>& args) {
  auto& stmt =
      db_.cached(fmt::format("SELECT {} FROM certificates {}", kCertificateColumns, where));
  for (std::size_t i = 0; i < args.size(); ++i) {
    stmt.bind(static_cast<int>(i + 1), args[i]);
  }
  return stmt.rows(certificate_from);
}

std::optional<CertificateRecord> PkiRepository::find_certificate(const std::string& serial) {
  static const std::string select_sql =
      fmt::format("SELECT {} FROM certificates WHERE serial = ?", kCertificateColumns);
  return db_.cached(select_sql).bind(1, serial).first_row(certificate_from);
}

std::vector<CertificateRecord> PkiRepository::certificates_with_common_name(const std::string& cn) {
  return query_certificates("WHERE cn = ? ORDER BY rowid DESC", {cn});
}

std::vector<CertificateRecord> PkiRepository::certificates() {
  return query_certificates("ORDER BY rowid", {});
}

std::vector<CertificateRecord> PkiRepository::revoked_leaf_certificates() {
  return query_certificates("WHERE status != 'valid' AND kind != 'ca' ORDER BY rowid", {});
}

std::vector<CertificateRecord> PkiRepository::valid_certificates_issued_by(
    const std::string& issuer) {
  return query_certificates("WHERE issuer = ? AND status = 'valid'", {issuer});
}

std::vector<CertificateRecord> PkiRepository::valid_certificates_naming(const std::string& rec,
                                                                        const std::string& member) {
  if (member.empty()) {
    return query_certificates("WHERE rec = ? AND status = 'valid'", {rec});
  }
  return query_certificates("WHERE rec = ? AND member = ? AND status = 'valid'", {rec, member});
}

std::vector<RevokedEntry> PkiRepository::revoked_entries_of(const std::string& issuer) {
  auto& stmt = db_.cached(
      "SELECT serial, revoked_at, reason FROM certificates "
      "WHERE issuer = ? AND status != 'valid' ORDER BY serial");
  stmt.bind(1, issuer);
  return stmt.rows([](const SqliteStatement& s) {
    return RevokedEntry{s.column_text(0), s.column_int(1),
                        static_cast<RevocationReason>(s.column_int(2))};
  });
}

void PkiRepository::mark_revoked(const std::string& serial, CertificateStatus status, long long at,
                                 RevocationReason reason,
                                 const std::optional<std::string>& superseded_by) {
  db_.cached(
         "UPDATE certificates SET status = ?, revoked_at = ?, reason = ?, superseded_by = ? "
         "WHERE serial = ?")
      .bind(1, to_string(status))
      .bind(2, std::int64_t{at})
      .bind(3, static_cast<std::int64_t>(reason))
      .bind_nullable(4, superseded_by)
      .bind(5, serial)
      .run();
}

}  // namespace recmesh::pki
