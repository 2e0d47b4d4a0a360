#include "recmesh/pki/pki.hpp"

#include <algorithm>
#include <set>
#include <sys/stat.h>

#include <fmt/format.h>
#include <openssl/x509.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/pem.hpp"

#include "pki_repository.hpp"
#include "staged_files.hpp"

namespace recmesh::pki {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDatabaseFile = "pki.db";
constexpr std::size_t kMinPassphraseLength = 12;
constexpr int kMaxLeafDays = 3650;
constexpr auto kBackdate = std::chrono::seconds(60);  // tolerate small clock skew
constexpr mode_t kPublicFile = 0644;
constexpr mode_t kPrivateFile = 0600;

using crypto::PkeyPtr;
using crypto::X509Ptr;

Clock::TimePoint add_days(Clock::TimePoint t, int days) {
  return t + std::chrono::hours(24) * days;
}

fs::path authority_dir(const std::string& id) {
  return fs::path("ca") / id;
}
fs::path issued_dir(const std::string& cn) {
  return fs::path("issued") / cn;
}
fs::path bridge_bundle(const std::string& rec, const std::string& member) {
  return fs::path("bundles") / fmt::format("bridge_{}_{}.pem", rec, member);
}

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

struct AuthorityPlan {
  AuthorityKind kind;
  std::string id;
  std::string parent;
  std::string rec, member;
  std::string common_name;
  int days;
  int path_length;
};

}  // namespace

struct Pki::LoadedAuthority {
  AuthorityRecord record;
  X509Ptr cert;
  PkeyPtr key;                    // decrypted on first use
  std::string intermediates_pem;  // computed on first use
  crypto::MdCtxPtr signing;       // DigestSign context for `key`, made on first issuance
};

class Pki::Impl {
 public:
  Impl(fs::path dir, SqliteDatabase::Mode mode, std::optional<Secret> passphrase,
       const Clock& clock, PkiSettings settings)
      : dir_(std::move(dir)),
        db_(dir_ / kDatabaseFile, mode),
        repo_(db_),
        passphrase_(std::move(passphrase)),
        clock_(clock),
        settings_(settings),
        writable_(mode != SqliteDatabase::Mode::kReadOnly) {}

  void require_signing() const {
    if (!writable_) {
      throw Error(ErrorCode::kInternal, "the PKI was opened read-only");
    }
    if (!passphrase_ || passphrase_->empty()) {
      throw Error(ErrorCode::kPermissionDenied,
                  "signing needs the CA passphrase (RECMESH_PKI_PASSPHRASE or --passphrase-file)");
    }
  }

  AuthorityRecord authority_record(const std::string& id) {
    auto record = repo_.find_authority(id);
    if (!record) {
      throw Error(ErrorCode::kNotFound, fmt::format("no CA {} in this PKI", id));
    }
    return *record;
  }

  // Loads a CA's certificate from its file and checks it against the database.
  LoadedAuthority& load(const std::string& id, bool with_key) {
    auto it = loaded_.find(id);
    if (it == loaded_.end()) {
      LoadedAuthority authority;
      authority.record = authority_record(id);
      const fs::path cert_path = dir_ / authority_dir(id) / "cert.pem";
      authority.cert = crypto::certificate_from_pem(read_file(cert_path), cert_path.string());
      if (crypto::sha256_fingerprint(authority.cert.get()) != authority.record.fingerprint) {
        throw Error(ErrorCode::kDataLoss,
                    fmt::format("{} does not match the certificate recorded in pki.db",
                                cert_path.string()));
      }
      it = loaded_.emplace(id, std::move(authority)).first;
    }
    if (with_key && !it->second.key) {
      require_signing();
      const fs::path key_path = dir_ / authority_dir(id) / "key.pem";
      PkeyPtr key =
          crypto::private_key_from_pem(read_file(key_path), &*passphrase_, key_path.string());
      if (X509_check_private_key(it->second.cert.get(), key.get()) != 1) {
        crypto::drain_openssl_errors();
        throw Error(ErrorCode::kDataLoss,
                    fmt::format("{} does not belong to the CA certificate", key_path.string()));
      }
      it->second.key = std::move(key);
    }
    return it->second;
  }

  // CA certificate followed by its ancestors, root last.
  std::string chain_pem(const std::string& id) {
    std::string pem;
    for (std::string current = id; !current.empty();) {
      LoadedAuthority& authority = load(current, false);
      pem += crypto::certificate_to_pem(authority.cert.get());
      current = authority.record.parent;
    }
    return pem;
  }

  // Intermediates only (no root): what a leaf's chain file carries after the leaf.
  const std::string& intermediates_pem(const std::string& id) {
    LoadedAuthority& issuer = load(id, false);
    if (issuer.intermediates_pem.empty()) {
      for (std::string current = id; !current.empty();) {
        LoadedAuthority& authority = load(current, false);
        if (!authority.record.parent.empty()) {
          issuer.intermediates_pem += crypto::certificate_to_pem(authority.cert.get());
        }
        current = authority.record.parent;
      }
    }
    return issuer.intermediates_pem;
  }

  void stage_crl(StagedFiles& staged, const std::string& id) {
    LoadedAuthority& authority = load(id, true);
    const long long number = authority.record.crl_number + 1;
    const auto now = clock_.now();
    crypto::X509CrlPtr crl =
        sign_crl(authority.cert.get(), authority.key.get(), repo_.revoked_entries_of(id), number,
                 now - kBackdate, add_days(now, settings_.crl_days));
    repo_.set_crl_number(id, number);
    authority.record.crl_number = number;
    staged.stage(authority_dir(id) / "crl.pem", crypto::crl_to_pem(crl.get()), kPublicFile);
  }

  AuthorityRecord create_authority(StagedFiles& staged, const AuthorityPlan& plan) {
    const auto now = clock_.now();
    PkeyPtr key = crypto::generate_p256_key();
    CertificateTemplate tmpl;
    tmpl.common_name = plan.common_name;
    tmpl.usage = CertificateTemplate::Usage::kCertificateAuthority;
    tmpl.path_length = plan.path_length;
    tmpl.not_before = now - kBackdate;
    tmpl.not_after = add_days(now, plan.days);
    X509* issuer = nullptr;
    EVP_PKEY* issuer_key = key.get();
    if (!plan.parent.empty()) {
      LoadedAuthority& parent = load(plan.parent, true);
      issuer = parent.cert.get();
      issuer_key = parent.key.get();
      tmpl.not_after = std::min(tmpl.not_after, from_unix_seconds(parent.record.not_after));
    }
    SignedCertificate signed_cert = sign_certificate(tmpl, key.get(), issuer, issuer_key);
    const std::string cert_pem = signed_cert.pem();
    X509Ptr cert = signed_cert.parse();

    AuthorityRecord record;
    record.id = plan.id;
    record.kind = plan.kind;
    record.parent = plan.parent;
    record.rec = plan.rec;
    record.member = plan.member;
    record.serial = signed_cert.serial;
    record.fingerprint = crypto::sha256_fingerprint(cert.get());
    record.common_name = plan.common_name;
    record.not_after = to_unix_seconds(tmpl.not_after);
    repo_.insert_authority(record);

    CertificateRecord cert_record;
    cert_record.serial = signed_cert.serial;
    cert_record.issuer = plan.parent.empty() ? plan.id : plan.parent;
    cert_record.kind = "ca";
    cert_record.common_name = plan.common_name;
    cert_record.rec = plan.rec;
    cert_record.member = plan.member;
    cert_record.not_before = to_unix_seconds(tmpl.not_before);
    cert_record.not_after = record.not_after;
    cert_record.has_key = true;
    cert_record.pem = cert_pem;
    repo_.insert_certificate(cert_record);

    const fs::path dir = authority_dir(plan.id);
    staged.stage(dir / "cert.pem", cert_pem, kPublicFile);
    staged.stage(dir / "key.pem", crypto::private_key_to_encrypted_pem(key.get(), *passphrase_),
                 kPrivateFile);
    loaded_[plan.id] = LoadedAuthority{record, std::move(cert), std::move(key), {}, {}};
    staged.stage(dir / "chain.pem", chain_pem(plan.id), kPublicFile);
    stage_crl(staged, plan.id);
    return record;
  }

  // Runs `body` in one database transaction with staged files; on any failure the in-memory
  // cache is dropped too, so it never holds state that did not land.
  template <typename Body>
  auto transaction(Body&& body) {
    require_signing();
    try {
      SqliteTransaction txn(db_);
      StagedFiles staged(db_, dir_);
      auto result = body(staged);
      staged.flush();
      txn.commit();
      staged.publish();
      return result;
    } catch (...) {
      loaded_.clear();
      throw;
    }
  }

  void require_active_member(const std::string& rec, const std::string& member) {
    auto rec_ca = repo_.find_authority(authority_id(AuthorityKind::kRec, rec));
    if (!rec_ca) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("REC {} is not registered (recmesh pki add-rec)", rec));
    }
    if (rec_ca->revoked) {
      throw Error(ErrorCode::kFailedPrecondition, fmt::format("REC {} is revoked", rec));
    }
    auto member_ca = repo_.find_authority(authority_id(AuthorityKind::kMember, rec, member));
    if (!member_ca) {
      throw Error(
          ErrorCode::kNotFound,
          fmt::format("member {}/{} is not registered (recmesh pki add-member)", rec, member));
    }
    if (member_ca->revoked) {
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("member {}/{} is revoked", rec, member));
    }
  }

  fs::path cafile_of(const Identity& identity) const {
    switch (identity.kind) {
      case IdentityKind::kDevice:
      case IdentityKind::kGateway:
      case IdentityKind::kLocalBroker:
        return dir_ / authority_dir(issuing_authority_id(identity)) / "chain.pem";
      case IdentityKind::kBridge:
        return dir_ / bridge_bundle(identity.rec, identity.member);
      case IdentityKind::kCentralBroker:
      case IdentityKind::kService:
        return dir_ / authority_dir(authority_id(AuthorityKind::kEms)) / "chain.pem";
    }
    return {};
  }

  IssuedFiles files_of(const CertificateRecord& record) const {
    IssuedFiles files;
    if (record.kind == "ca") {
      for (const auto& authority : const_cast<PkiRepository&>(repo_).authorities()) {
        if (authority.serial == record.serial) {
          const fs::path dir = dir_ / authority_dir(authority.id);
          files = {dir / "cert.pem", dir / "key.pem", dir / "chain.pem",
                   dir_ / authority_dir("root") / "chain.pem"};
        }
      }
      return files;
    }
    const fs::path dir = dir_ / issued_dir(record.common_name);
    files.cert = dir / "cert.pem";
    files.chain = dir / "chain.pem";
    if (record.has_key) {
      files.key = dir / "key.pem";
    }
    files.cafile = cafile_of(
        Identity{parse_identity_kind(record.kind), record.rec, record.member, record.name});
    return files;
  }

  // What one issue_many call has checked already, so a batch checks each member once.
  struct BatchState {
    std::set<std::string> common_names;
    std::set<std::pair<std::string, std::string>> active_members;
  };

  IssuedCertificate issue_one(StagedFiles& staged, const IssueRequest& request, BatchState& batch) {
    const Identity& raw = request.identity;
    const Identity identity = Identity::make(raw.kind, raw.rec, raw.member, raw.name);
    const std::string cn = identity.common_name();
    if (!batch.common_names.insert(cn).second) {
      throw Error(ErrorCode::kAlreadyExists, fmt::format("{} appears twice in one request", cn));
    }
    if (!identity.rec.empty() && !batch.active_members.contains({identity.rec, identity.member})) {
      require_active_member(identity.rec, identity.member);
      batch.active_members.emplace(identity.rec, identity.member);
    }
    for (const auto& existing : repo_.certificates_with_common_name(cn)) {
      if (existing.status == CertificateStatus::kValid) {
        throw Error(ErrorCode::kAlreadyExists,
                    fmt::format("{} already has a valid certificate (serial {}); renew or revoke "
                                "it first",
                                cn, existing.serial));
      }
    }
    const std::string issuer_id = issuing_authority_id(identity);
    LoadedAuthority& issuer = load(issuer_id, true);
    if (issuer.record.revoked) {
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("cannot issue under revoked CA {}", issuer_id));
    }

    const int days = request.days.value_or(settings_.leaf_days);
    if (days < 1 || days > kMaxLeafDays) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("--days {} is out of range (1..{})", days, kMaxLeafDays));
    }

    PkeyPtr key;
    const bool generated = request.csr_pem.empty();
    if (generated) {
      key = crypto::generate_p256_key();
    } else {
      crypto::X509ReqPtr csr = crypto::csr_from_pem(request.csr_pem);
      key.reset(X509_REQ_get_pubkey(csr.get()));
      if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC ||
          EVP_PKEY_get_bits(key.get()) < 256) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the CSR's key must be ECDSA with at least 256 bits (P-256 recommended)");
      }
    }

    std::vector<SubjectAltName> sans;
    if (identity.is_server()) {
      sans = {SubjectAltName{SubjectAltName::Type::kDns, "localhost"},
              SubjectAltName{SubjectAltName::Type::kIp, "127.0.0.1"}};
    }
    for (const auto& san : request.sans) {
      if (std::find(sans.begin(), sans.end(), san) == sans.end()) {
        sans.push_back(san);
      }
    }

    CertificateTemplate tmpl;
    tmpl.common_name = cn;
    tmpl.usage = identity.is_server() ? CertificateTemplate::Usage::kServer
                                      : CertificateTemplate::Usage::kClient;
    tmpl.sans = sans;
    if (generated) {
      tmpl.encoded_public_key = crypto::encoded_public_key(key.get());
    }
    tmpl.not_before = request.not_before.value_or(clock_.now() - kBackdate);
    tmpl.not_after =
        std::min(add_days(tmpl.not_before, days), from_unix_seconds(issuer.record.not_after));
    if (!issuer.signing) {
      issuer.signing = make_signing_template(issuer.key.get());
    }
    SignedCertificate signed_cert = sign_certificate(tmpl, key.get(), issuer.cert.get(),
                                                     issuer.key.get(), issuer.signing.get());

    CertificateRecord record;
    record.serial = signed_cert.serial;
    record.issuer = issuer_id;
    record.kind = std::string(to_string(identity.kind));
    record.common_name = cn;
    record.rec = identity.rec;
    record.member = identity.member;
    record.name = identity.name;
    record.sans = sans;
    record.not_before = to_unix_seconds(tmpl.not_before);
    record.not_after = to_unix_seconds(tmpl.not_after);
    record.has_key = generated && request.write_files;
    record.pem = signed_cert.pem();
    repo_.insert_certificate(record);

    IssuedCertificate issued;
    issued.chain_pem = record.pem + intermediates_pem(issuer_id);
    std::string key_pem;
    if (generated) {
      key_pem = request.key_passphrase != nullptr
                    ? crypto::private_key_to_encrypted_pem(key.get(), *request.key_passphrase)
                    : crypto::private_key_to_pem(key.get(), tmpl.encoded_public_key);
    }
    if (request.write_files) {
      const fs::path dir = issued_dir(cn);
      staged.stage(dir / "cert.pem", record.pem, kPublicFile);
      staged.stage(dir / "chain.pem", issued.chain_pem, kPublicFile);
      if (generated) {
        staged.stage(dir / "key.pem", key_pem, kPrivateFile);
      } else {
        staged.stage_removal(dir / "key.pem");  // a stale key of an earlier issuance
      }
      issued.files = files_of(record);
    } else {
      issued.key_pem = Secret(key_pem);
    }
    OPENSSL_cleanse(key_pem.data(), key_pem.size());
    issued.record = std::move(record);
    return issued;
  }

  void revoke_serial(const std::string& serial, CertificateStatus status, RevocationReason reason,
                     std::set<std::string>& touched, RevocationResult& result) {
    auto record = repo_.find_certificate(serial);
    if (!record || record->status != CertificateStatus::kValid) {
      return;
    }
    repo_.mark_revoked(serial, status, to_unix_seconds(clock_.now()), reason, std::nullopt);
    touched.insert(record->issuer);
    result.revoked_serials.push_back(serial);
  }

  void revoke_member(const AuthorityRecord& member_ca, RevocationReason reason,
                     std::set<std::string>& touched, RevocationResult& result) {
    revoke_serial(member_ca.serial, CertificateStatus::kRevoked, reason, touched, result);
    for (const auto& cert : repo_.valid_certificates_issued_by(member_ca.id)) {
      revoke_serial(cert.serial, CertificateStatus::kRevoked, reason, touched, result);
    }
    for (const auto& cert : repo_.valid_certificates_naming(member_ca.rec, member_ca.member)) {
      revoke_serial(cert.serial, CertificateStatus::kRevoked, reason, touched, result);
    }
    repo_.mark_authority_revoked(member_ca.id);
  }

 private:
  friend class Pki;
  fs::path dir_;
  SqliteDatabase db_;
  PkiRepository repo_;
  std::optional<Secret> passphrase_;
  const Clock& clock_;
  PkiSettings settings_;
  bool writable_;
  std::map<std::string, LoadedAuthority> loaded_;
};

Pki::Pki(std::unique_ptr<Impl> impl, fs::path dir) : impl_(std::move(impl)), dir_(std::move(dir)) {}
Pki::Pki(Pki&&) noexcept = default;
Pki& Pki::operator=(Pki&&) noexcept = default;
Pki::~Pki() = default;

Pki Pki::create(const fs::path& dir, Secret passphrase, const Clock& clock, PkiSettings settings) {
  if (passphrase.size() < kMinPassphraseLength) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("the CA passphrase must have at least {} characters", kMinPassphraseLength));
  }
  const fs::path absolute = fs::absolute(dir).lexically_normal();
  const bool existed = fs::exists(absolute);
  if (existed && (!fs::is_directory(absolute) || !fs::is_empty(absolute))) {
    throw Error(ErrorCode::kAlreadyExists,
                fmt::format("{} already exists and is not an empty directory", absolute.string()));
  }
  create_directories(absolute, 0700);
  try {
    auto impl = std::make_unique<Impl>(absolute, SqliteDatabase::Mode::kCreate,
                                       std::move(passphrase), clock, settings);
    {
      SqliteTransaction txn(impl->db_);
      impl->repo_.create_schema();
      StagedFiles::create_schema(impl->db_);
      txn.commit();
    }
    impl->transaction([&](StagedFiles& staged) {
      impl->create_authority(staged, {AuthorityKind::kRoot, "root", "", "", "", "recmesh Root CA",
                                      settings.root_days, 2});
      impl->create_authority(staged, {AuthorityKind::kEms, "ems", "root", "", "", "recmesh EMS CA",
                                      settings.top_ca_days, 0});
      impl->create_authority(staged, {AuthorityKind::kBridge, "bridge", "root", "", "",
                                      "recmesh Bridge CA", settings.top_ca_days, 0});
      return 0;
    });
    ::chmod((absolute / kDatabaseFile).c_str(), 0600);
    return Pki(std::move(impl), absolute);
  } catch (...) {
    std::error_code ignored;
    for (const auto& entry : fs::directory_iterator(absolute, ignored)) {
      fs::remove_all(entry.path(), ignored);
    }
    if (!existed) {
      fs::remove(absolute, ignored);
    }
    throw;
  }
}

Pki Pki::open(const fs::path& dir, Access access, std::optional<Secret> passphrase,
              const Clock& clock, PkiSettings settings) {
  const fs::path absolute = fs::absolute(dir).lexically_normal();
  if (!fs::exists(absolute / kDatabaseFile)) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("no PKI in {} (create one with: recmesh pki init --dir {})",
                            absolute.string(), dir.string()));
  }
  auto impl = std::make_unique<Impl>(absolute,
                                     access == Access::kReadOnly ? SqliteDatabase::Mode::kReadOnly
                                                                 : SqliteDatabase::Mode::kReadWrite,
                                     std::move(passphrase), clock, settings);
  impl->repo_.check_schema();
  if (access == Access::kReadWrite) {
    StagedFiles::recover(impl->db_, absolute);
  }
  return Pki(std::move(impl), absolute);
}

AuthorityRecord Pki::add_rec(const std::string& rec) {
  require_identifier("REC", rec);
  impl_->require_signing();
  const std::string id = authority_id(AuthorityKind::kRec, rec);
  if (auto existing = impl_->repo_.find_authority(id)) {
    throw Error(ErrorCode::kAlreadyExists,
                existing->revoked ? fmt::format("REC {} was revoked; REC IDs are not reused", rec)
                                  : fmt::format("REC {} already exists", rec));
  }
  return impl_->transaction([&](StagedFiles& staged) {
    return impl_->create_authority(
        staged, {AuthorityKind::kRec, id, "root", rec, "", fmt::format("recmesh REC {} CA", rec),
                 impl_->settings_.top_ca_days, 1});
  });
}

AuthorityRecord Pki::add_member(const std::string& rec, const std::string& member) {
  return std::move(add_members(rec, std::span<const std::string>(&member, 1)).front());
}

std::vector<AuthorityRecord> Pki::add_members(const std::string& rec,
                                              std::span<const std::string> members) {
  require_identifier("REC", rec);
  for (const std::string& member : members) {
    require_identifier("member", member);
  }
  impl_->require_signing();
  const std::string rec_id = authority_id(AuthorityKind::kRec, rec);
  auto rec_ca = impl_->repo_.find_authority(rec_id);
  if (!rec_ca) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("REC {} is not registered (recmesh pki add-rec)", rec));
  }
  if (rec_ca->revoked) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("REC {} is revoked; no member can be added to it", rec));
  }
  std::set<std::string> seen;
  for (const std::string& member : members) {
    const std::string id = authority_id(AuthorityKind::kMember, rec, member);
    if (auto existing = impl_->repo_.find_authority(id)) {
      throw Error(
          ErrorCode::kAlreadyExists,
          existing->revoked
              ? fmt::format("member {}/{} was revoked; member IDs are not reused", rec, member)
              : fmt::format("member {}/{} already exists", rec, member));
    }
    if (!seen.insert(member).second) {
      throw Error(ErrorCode::kAlreadyExists,
                  fmt::format("member {}/{} is listed twice", rec, member));
    }
  }
  return impl_->transaction([&](StagedFiles& staged) {
    std::vector<AuthorityRecord> out;
    out.reserve(members.size());
    for (const std::string& member : members) {
      const std::string id = authority_id(AuthorityKind::kMember, rec, member);
      out.push_back(
          impl_->create_authority(staged, {AuthorityKind::kMember, id, rec_id, rec, member,
                                           fmt::format("recmesh member {}/{} CA", rec, member),
                                           impl_->settings_.member_ca_days, 0}));
      // A bridge verifies its local broker (member CA) and the central broker (EMS CA).
      std::string bundle = impl_->chain_pem(id);
      bundle += crypto::certificate_to_pem(impl_->load("ems", false).cert.get());
      staged.stage(bridge_bundle(rec, member), bundle, kPublicFile);
    }
    return out;
  });
}

IssuedCertificate Pki::issue(const IssueRequest& request) {
  return std::move(issue_many(std::span<const IssueRequest>(&request, 1)).front());
}

std::vector<IssuedCertificate> Pki::issue_many(std::span<const IssueRequest> requests) {
  impl_->require_signing();
  return impl_->transaction([&](StagedFiles& staged) {
    std::vector<IssuedCertificate> out;
    out.reserve(requests.size());
    Impl::BatchState batch;
    for (const auto& request : requests) {
      out.push_back(impl_->issue_one(staged, request, batch));
    }
    return out;
  });
}

IssuedCertificate Pki::renew(const std::string& common_name, std::optional<int> days,
                             const std::string& csr_pem, const Secret* key_passphrase) {
  impl_->require_signing();
  std::optional<CertificateRecord> current;
  for (auto& record : impl_->repo_.certificates_with_common_name(common_name)) {
    if (record.status == CertificateStatus::kValid) {
      current = std::move(record);
      break;
    }
  }
  if (!current) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("no valid certificate with CN {}", quote_untrusted(common_name)));
  }
  if (current->kind == "ca") {
    throw Error(ErrorCode::kFailedPrecondition, "CA certificates are not renewed in place");
  }
  IssueRequest request;
  request.identity =
      Identity{parse_identity_kind(current->kind), current->rec, current->member, current->name};
  request.sans = current->sans;
  constexpr long long kDay = 86400;
  request.days =
      days.value_or(static_cast<int>((current->not_after - current->not_before + kDay - 1) / kDay));
  request.csr_pem = csr_pem;
  request.key_passphrase = key_passphrase;
  return impl_->transaction([&](StagedFiles& staged) {
    impl_->repo_.mark_revoked(current->serial, CertificateStatus::kSuperseded,
                              to_unix_seconds(impl_->clock_.now()), RevocationReason::kSuperseded,
                              std::nullopt);
    Impl::BatchState batch;
    IssuedCertificate issued = impl_->issue_one(staged, request, batch);
    impl_->repo_.mark_revoked(current->serial, CertificateStatus::kSuperseded,
                              to_unix_seconds(impl_->clock_.now()), RevocationReason::kSuperseded,
                              issued.record.serial);
    impl_->stage_crl(staged, current->issuer);
    return issued;
  });
}

RevocationResult Pki::revoke(const RevocationTarget& target, RevocationReason reason) {
  const int tiers = (target.common_name.empty() ? 0 : 1) + (target.serial.empty() ? 0 : 1) +
                    (target.rec.empty() ? 0 : 1);
  if (tiers != 1 || (!target.member.empty() && target.rec.empty())) {
    throw Error(ErrorCode::kInvalidArgument,
                "name exactly one target: --cn CN, --serial S, --rec R --member M, or --rec R");
  }
  impl_->require_signing();
  PkiRepository& repo = impl_->repo_;
  // Resolve and validate before opening the transaction.
  std::vector<std::string> leaf_serials;
  std::optional<AuthorityRecord> authority;
  if (!target.common_name.empty() || !target.serial.empty()) {
    std::vector<CertificateRecord> candidates;
    if (!target.serial.empty()) {
      if (auto found = repo.find_certificate(upper(target.serial))) {
        candidates.push_back(*found);
      }
    } else {
      candidates = repo.certificates_with_common_name(target.common_name);
    }
    const std::string what = !target.serial.empty()
                                 ? fmt::format("serial {}", quote_untrusted(target.serial))
                                 : fmt::format("CN {}", quote_untrusted(target.common_name));
    if (candidates.empty()) {
      throw Error(ErrorCode::kNotFound, fmt::format("no certificate with {}", what));
    }
    for (const auto& candidate : candidates) {
      if (candidate.kind == "ca") {
        throw Error(ErrorCode::kFailedPrecondition,
                    fmt::format("{} is a CA certificate; revoke a member with --rec R --member M "
                                "or a REC with --rec R",
                                what));
      }
      if (candidate.status == CertificateStatus::kValid) {
        leaf_serials.push_back(candidate.serial);
      }
    }
    if (leaf_serials.empty()) {
      throw Error(ErrorCode::kFailedPrecondition, fmt::format("{} is already revoked", what));
    }
  } else {
    require_identifier("REC", target.rec);
    if (!target.member.empty()) {
      require_identifier("member", target.member);
    }
    const std::string id = target.member.empty()
                               ? authority_id(AuthorityKind::kRec, target.rec)
                               : authority_id(AuthorityKind::kMember, target.rec, target.member);
    authority = repo.find_authority(id);
    const std::string what = target.member.empty()
                                 ? fmt::format("REC {}", target.rec)
                                 : fmt::format("member {}/{}", target.rec, target.member);
    if (!authority) {
      throw Error(ErrorCode::kNotFound, fmt::format("{} is not registered", what));
    }
    if (authority->revoked) {
      throw Error(ErrorCode::kFailedPrecondition, fmt::format("{} is already revoked", what));
    }
  }

  return impl_->transaction([&](StagedFiles& staged) {
    RevocationResult result;
    std::set<std::string> touched;
    for (const auto& serial : leaf_serials) {
      impl_->revoke_serial(serial, CertificateStatus::kRevoked, reason, touched, result);
    }
    if (authority && authority->kind == AuthorityKind::kMember) {
      impl_->revoke_member(*authority, reason, touched, result);
    } else if (authority) {
      impl_->revoke_serial(authority->serial, CertificateStatus::kRevoked, reason, touched, result);
      for (const auto& member_ca : repo.member_authorities_of(authority->rec)) {
        if (!member_ca.revoked) {
          impl_->revoke_member(member_ca, reason, touched, result);
        }
      }
      for (const auto& cert : repo.valid_certificates_naming(authority->rec, "")) {
        impl_->revoke_serial(cert.serial, CertificateStatus::kRevoked, reason, touched, result);
      }
      repo.mark_authority_revoked(authority->id);
    }
    for (const auto& id : touched) {
      impl_->stage_crl(staged, id);
    }
    result.crls_updated.assign(touched.begin(), touched.end());
    return result;
  });
}

std::vector<std::string> Pki::refresh_crls() {
  return impl_->transaction([&](StagedFiles& staged) {
    std::vector<std::string> ids;
    for (const auto& authority : impl_->repo_.authorities()) {
      impl_->stage_crl(staged, authority.id);
      ids.push_back(authority.id);
    }
    return ids;
  });
}

VerifyResult Pki::verify(const std::string& certificate_pem) const {
  std::vector<X509Ptr> presented =
      crypto::certificates_from_pem(certificate_pem, "the certificate");
  VerifyResult result;
  result.common_name = crypto::subject_common_name(presented.front().get());

  crypto::X509StorePtr store(X509_STORE_new());
  crypto::X509StackPtr untrusted(sk_X509_new_null());
  if (!store || !untrusted) {
    crypto::throw_openssl_error("X509_STORE_new");
  }
  for (std::size_t i = 1; i < presented.size(); ++i) {
    if (sk_X509_push(untrusted.get(), presented[i].release()) == 0) {
      crypto::throw_openssl_error("sk_X509_push");
    }
  }
  for (const auto& authority : impl_->repo_.authorities()) {
    LoadedAuthority& loaded = impl_->load(authority.id, false);
    if (authority.parent.empty()) {
      if (X509_STORE_add_cert(store.get(), loaded.cert.get()) != 1) {
        crypto::throw_openssl_error("X509_STORE_add_cert");
      }
    } else if (X509_up_ref(loaded.cert.get()) != 1 ||
               sk_X509_push(untrusted.get(), loaded.cert.get()) == 0) {
      crypto::throw_openssl_error("sk_X509_push");
    }
    const fs::path crl_path = authority_crl_path(authority.id);
    crypto::X509CrlPtr crl = crypto::crl_from_pem(read_file(crl_path), crl_path.string());
    if (X509_STORE_add_crl(store.get(), crl.get()) != 1) {
      crypto::throw_openssl_error("X509_STORE_add_crl");
    }
  }
  X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx ||
      X509_STORE_CTX_init(ctx.get(), store.get(), presented.front().get(), untrusted.get()) != 1) {
    crypto::throw_openssl_error("X509_STORE_CTX_init");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(to_unix_seconds(impl_->clock_.now())));
  result.valid = X509_verify_cert(ctx.get()) == 1;
  result.openssl_error = X509_STORE_CTX_get_error(ctx.get());
  result.reason = X509_verify_cert_error_string(result.openssl_error);
  crypto::drain_openssl_errors();
  return result;
}

std::vector<AuthorityRecord> Pki::authorities() const {
  return impl_->repo_.authorities();
}

AuthorityRecord Pki::authority(const std::string& id) const {
  return impl_->authority_record(id);
}

std::vector<CertificateRecord> Pki::certificates() const {
  return impl_->repo_.certificates();
}

std::vector<CertificateRecord> Pki::revoked_leaf_certificates() const {
  return impl_->repo_.revoked_leaf_certificates();
}

CertificateRecord Pki::find_by_serial(const std::string& serial) const {
  if (auto found = impl_->repo_.find_certificate(upper(serial))) {
    return *found;
  }
  throw Error(ErrorCode::kNotFound,
              fmt::format("no certificate with serial {}", quote_untrusted(serial)));
}

CertificateRecord Pki::find_by_common_name(const std::string& common_name) const {
  auto found = impl_->repo_.certificates_with_common_name(common_name);
  if (found.empty()) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("no certificate with CN {}", quote_untrusted(common_name)));
  }
  return found.front();
}

std::optional<CertificateRecord> Pki::valid_certificate(const std::string& common_name) const {
  for (auto& record : impl_->repo_.certificates_with_common_name(common_name)) {
    if (record.status == CertificateStatus::kValid) {
      return std::move(record);
    }
  }
  return std::nullopt;
}

IssuedFiles Pki::files_of(const CertificateRecord& record) const {
  return impl_->files_of(record);
}

fs::path Pki::authority_cert_path(const std::string& id) const {
  return dir_ / authority_dir(id) / "cert.pem";
}
fs::path Pki::authority_chain_path(const std::string& id) const {
  return dir_ / authority_dir(id) / "chain.pem";
}
fs::path Pki::authority_crl_path(const std::string& id) const {
  return dir_ / authority_dir(id) / "crl.pem";
}

}  // namespace recmesh::pki
