#include "recmesh/pki/pki.hpp"

#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/crypto/pem.hpp"

#include "directory_hash.hpp"
#include "temp_dir.hpp"

namespace recmesh::pki {
namespace {

using testing::TempDir;

constexpr const char* kPassphrase = "unit test passphrase";

Secret passphrase() {
  return Secret(kPassphrase);
}

mode_t mode_of(const std::filesystem::path& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 07777;
}

// The error a call throws: its code and whether its message contains the expected text.
struct Failure {
  ErrorCode code;
  std::string message_part;
  Failure(ErrorCode c, std::string part = {}) : code(c), message_part(std::move(part)) {}
  bool operator==(const Failure& expected) const {
    return code == expected.code && message_part.find(expected.message_part) != std::string::npos;
  }
};

template <typename F>
Failure error_of(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  ADD_FAILURE() << "expected an error";
  return {ErrorCode::kInternal, "no error"};
}

IssueRequest request(IdentityKind kind, std::string rec, std::string member, std::string name) {
  IssueRequest r;
  r.identity = Identity::make(kind, std::move(rec), std::move(member), std::move(name));
  return r;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.emplace(Pki::create(dir_ / "pki", passphrase()));
    pki_->add_rec("r1");
    pki_->add_member("r1", "m1");
    pki_->add_member("r1", "m2");
    pki_->add_rec("r2");
    pki_->add_member("r2", "m1");
  }

  IssuedCertificate issue(IdentityKind kind, std::string rec, std::string member,
                          std::string name) {
    return pki_->issue(request(kind, std::move(rec), std::move(member), std::move(name)));
  }

  bool valid(const IssuedCertificate& issued) {
    return pki_->verify(read_file(issued.files.cert)).valid;
  }

  TempDir dir_;
  std::optional<Pki> pki_;
};

TEST_F(PkiTest, CreatesTheHierarchyWithEncryptedCaKeys) {
  std::vector<std::string> ids;
  for (const auto& a : pki_->authorities()) {
    ids.push_back(a.id);
    const auto key_path = pki_->directory() / "ca" / a.id / "key.pem";
    EXPECT_EQ(mode_of(key_path), 0600U) << key_path;
    const std::string key = read_file(key_path);
    EXPECT_TRUE(crypto::is_encrypted_private_key_pem(key)) << key_path;
    EXPECT_THROW(crypto::private_key_from_pem(key, nullptr, "k"), Error);
    Secret wrong("wrong passphrase!!");
    EXPECT_THROW(crypto::private_key_from_pem(key, &wrong, "k"), Error);
    EXPECT_NO_THROW(
        crypto::private_key_from_pem(key, &*std::make_unique<Secret>(passphrase()), "k"));
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"root", "ems", "bridge", "rec_r1", "member_r1_m1",
                                           "member_r1_m2", "rec_r2", "member_r2_m1"}));
  EXPECT_EQ(pki_->authority("member_r1_m1").parent, "rec_r1");
  EXPECT_EQ(pki_->authority("rec_r1").parent, "root");
}

TEST_F(PkiTest, CaCertificatesCarryBasicConstraintsAndPathLength) {
  auto cert = crypto::certificate_from_pem(read_file(pki_->authority_cert_path("rec_r1")), "rec");
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(X509_get_pathlen(cert.get()), 1);
  auto member =
      crypto::certificate_from_pem(read_file(pki_->authority_cert_path("member_r1_m1")), "m");
  EXPECT_EQ(X509_get_pathlen(member.get()), 0);
  EXPECT_TRUE(pki_->verify(read_file(pki_->authority_cert_path("member_r1_m1"))).valid);
}

TEST_F(PkiTest, DeviceCertificateIsClientAuthFromItsMemberCa) {
  auto issued = issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  EXPECT_EQ(issued.record.common_name, "rec_r1_m1_pv1");
  EXPECT_EQ(issued.record.issuer, "member_r1_m1");
  auto cert = crypto::certificate_from_pem(read_file(issued.files.cert), "leaf");
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_EQ(mode_of(issued.files.key), 0600U);
  EXPECT_TRUE(issued.files.key.is_absolute());
  EXPECT_EQ(issued.files.cafile, pki_->authority_chain_path("member_r1_m1"));
  // chain = leaf + member CA + REC CA (no root)
  EXPECT_EQ(crypto::certificates_from_pem(read_file(issued.files.chain), "chain").size(), 3U);
  EXPECT_TRUE(valid(issued));
  auto key = crypto::private_key_from_pem(read_file(issued.files.key), nullptr, "key");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
}

TEST_F(PkiTest, BrokerCertificateIsServerAuthWithLoopbackSans) {
  IssueRequest r = request(IdentityKind::kLocalBroker, "r1", "m1", "");
  r.sans.push_back(SubjectAltName::parse("DNS:gw.example"));
  auto issued = pki_->issue(r);
  auto cert = crypto::certificate_from_pem(read_file(issued.files.cert), "leaf");
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "gw.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(issue(IdentityKind::kCentralBroker, "", "", "").record.issuer, "ems");
  EXPECT_EQ(issue(IdentityKind::kBridge, "r1", "m1", "").record.issuer, "bridge");
}

TEST_F(PkiTest, DuplicateIdentityIsRefusedUntilRevoked) {
  issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  EXPECT_EQ(error_of([&] { issue(IdentityKind::kDevice, "r1", "m1", "pv1"); }).code,
            ErrorCode::kAlreadyExists);
  pki_->revoke(RevocationTarget::certificate("rec_r1_m1_pv1"));
  EXPECT_TRUE(valid(issue(IdentityKind::kDevice, "r1", "m1", "pv1")));
}

TEST_F(PkiTest, RevokingOneCertificateLeavesItsNeighbours) {
  auto pv1 = issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  auto pv2 = issue(IdentityKind::kDevice, "r1", "m1", "pv2");
  auto result = pki_->revoke(RevocationTarget::serial_number(pv1.record.serial),
                             RevocationReason::kKeyCompromise);
  EXPECT_EQ(result.revoked_serials, std::vector<std::string>{pv1.record.serial});
  EXPECT_EQ(result.crls_updated, std::vector<std::string>{"member_r1_m1"});
  auto verdict = pki_->verify(read_file(pv1.files.cert));
  EXPECT_FALSE(verdict.valid);
  EXPECT_EQ(verdict.openssl_error, X509_V_ERR_CERT_REVOKED);
  EXPECT_TRUE(valid(pv2));
  EXPECT_EQ(pki_->find_by_serial(pv1.record.serial).reason, RevocationReason::kKeyCompromise);
}

TEST_F(PkiTest, RevokingAMemberRevokesItsCaAndEveryCertificateNamingIt) {
  auto device = issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  auto bridge = issue(IdentityKind::kBridge, "r1", "m1", "");
  auto broker = issue(IdentityKind::kLocalBroker, "r1", "m1", "");
  auto neighbour = issue(IdentityKind::kDevice, "r1", "m2", "pv1");
  auto neighbour_bridge = issue(IdentityKind::kBridge, "r1", "m2", "");
  auto result = pki_->revoke(RevocationTarget::whole_member("r1", "m1"));
  EXPECT_EQ(result.revoked_serials.size(), 4U);  // member CA, device, broker, bridge
  EXPECT_TRUE(pki_->authority("member_r1_m1").revoked);
  for (const auto* issued : {&device, &bridge, &broker}) {
    EXPECT_FALSE(valid(*issued)) << issued->record.common_name;
  }
  EXPECT_TRUE(valid(neighbour));
  EXPECT_TRUE(valid(neighbour_bridge));
  EXPECT_EQ(error_of([&] { issue(IdentityKind::kDevice, "r1", "m1", "pv9"); }).code,
            ErrorCode::kFailedPrecondition);
  EXPECT_THROW(issue(IdentityKind::kBridge, "r1", "m1", ""), Error);
  EXPECT_THROW(pki_->add_member("r1", "m1"), Error);
}

TEST_F(PkiTest, RevokingARecRevokesEverythingUnderOrNamingIt) {
  auto d1 = issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  auto d2 = issue(IdentityKind::kGateway, "r1", "m2", "");
  auto b1 = issue(IdentityKind::kBridge, "r1", "m2", "");
  auto other = issue(IdentityKind::kDevice, "r2", "m1", "pv1");
  auto engine = issue(IdentityKind::kService, "", "", "engine");
  pki_->revoke(RevocationTarget::whole_rec("r1"));
  EXPECT_TRUE(pki_->authority("rec_r1").revoked);
  EXPECT_TRUE(pki_->authority("member_r1_m2").revoked);
  for (const auto* issued : {&d1, &d2, &b1}) {
    EXPECT_FALSE(valid(*issued)) << issued->record.common_name;
  }
  EXPECT_TRUE(valid(other));
  EXPECT_TRUE(valid(engine));
  EXPECT_THROW(pki_->add_member("r1", "m3"), Error);
  EXPECT_THROW(pki_->revoke(RevocationTarget::whole_rec("r1")), Error);  // already revoked
}

TEST_F(PkiTest, RenewIssuesANewKeyAndSupersedesTheOldCertificate) {
  auto old = issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  const std::string old_pem = read_file(old.files.cert);
  const std::string old_key = read_file(old.files.key);
  auto renewed = pki_->renew("rec_r1_m1_pv1");
  EXPECT_NE(renewed.record.serial, old.record.serial);
  EXPECT_NE(read_file(renewed.files.key), old_key);
  EXPECT_EQ(renewed.files.cert, old.files.cert);
  EXPECT_TRUE(valid(renewed));
  auto verdict = pki_->verify(old_pem);
  EXPECT_FALSE(verdict.valid);
  EXPECT_EQ(verdict.openssl_error, X509_V_ERR_CERT_REVOKED);
  const auto superseded = pki_->find_by_serial(old.record.serial);
  EXPECT_EQ(superseded.status, CertificateStatus::kSuperseded);
  EXPECT_EQ(superseded.superseded_by, renewed.record.serial);
}

TEST_F(PkiTest, ExpiredAndNotYetValidCertificatesFailVerification) {
  IssueRequest expired = request(IdentityKind::kDevice, "r1", "m1", "old");
  expired.not_before = std::chrono::system_clock::now() - std::chrono::hours(24 * 10);
  expired.days = 1;
  IssueRequest future = request(IdentityKind::kDevice, "r1", "m1", "future");
  future.not_before = std::chrono::system_clock::now() + std::chrono::hours(24 * 10);
  auto issued = pki_->issue_many(std::vector<IssueRequest>{expired, future});
  EXPECT_EQ(pki_->verify(read_file(issued[0].files.cert)).openssl_error,
            X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(pki_->verify(read_file(issued[1].files.cert)).openssl_error,
            X509_V_ERR_CERT_NOT_YET_VALID);
}

// A CSR for `key` asking for `common_name`, signed with it.
std::string csr_pem(EVP_PKEY* key, const char* common_name) {
  crypto::X509ReqPtr csr(X509_REQ_new());
  X509_NAME* name = X509_REQ_get_subject_name(csr.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_REQ_set_pubkey(csr.get(), key);
  X509_REQ_sign(csr.get(), key, EVP_sha256());
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), csr.get());
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

TEST_F(PkiTest, CsrIssuanceKeepsTheRequesterKeyAndIgnoresItsSubject) {
  auto key = crypto::generate_p256_key();
  IssueRequest r = request(IdentityKind::kDevice, "r1", "m1", "meter");
  r.csr_pem = csr_pem(key.get(), "bridge_r1_m1");
  auto issued = pki_->issue(r);
  EXPECT_EQ(issued.record.common_name, "rec_r1_m1_meter");
  EXPECT_TRUE(issued.files.key.empty());
  auto cert = crypto::certificate_from_pem(read_file(issued.files.cert), "leaf");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);

  IssueRequest forged = request(IdentityKind::kDevice, "r1", "m1", "forged");
  forged.csr_pem = r.csr_pem;
  forged.csr_pem[forged.csr_pem.size() / 2] ^= 0x01;
  EXPECT_THROW(pki_->issue(forged), Error);
}

// docs/secmgr.md, "Certificates": only ECDSA keys of 256 bits or more are signed.
TEST_F(PkiTest, CsrWithAWeakOrNonEcKeyIsRefused) {
  const crypto::PkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  const crypto::PkeyPtr p224(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-224"));
  ASSERT_TRUE(rsa && p224);
  for (EVP_PKEY* key : {rsa.get(), p224.get()}) {
    IssueRequest r = request(IdentityKind::kDevice, "r1", "m1", "weak");
    r.csr_pem = csr_pem(key, "rec_r1_m1_weak");
    EXPECT_EQ(error_of([&] { pki_->issue(r); }),
              Failure(ErrorCode::kInvalidArgument, "must be ECDSA with at least 256 bits"))
        << EVP_PKEY_get_base_id(key);
  }
  EXPECT_EQ(error_of([&] { pki_->find_by_common_name("rec_r1_m1_weak"); }),
            Failure(ErrorCode::kNotFound));
}

// docs/pki.md, "Certificates": a leaf never outlives its CA, whatever --days asks.
TEST_F(PkiTest, ALeafNeverOutlivesItsCa) {
  IssueRequest r = request(IdentityKind::kDevice, "r1", "m1", "long");
  r.days = 3650;
  const auto issued = pki_->issue(r);
  const auto ca = pki_->authority("member_r1_m1");
  EXPECT_LE(issued.record.not_after, ca.not_after);
  EXPECT_TRUE(valid(issued));
}

// docs/pki.md, "Revocation": a revoked REC or member is not issued under, and its ID is not
// given out again.
TEST_F(PkiTest, ARevokedRecOrMemberIdIsNotReused) {
  pki_->revoke(RevocationTarget::whole_member("r1", "m1"));
  EXPECT_THROW(pki_->add_member("r1", "m1"), Error);
  EXPECT_THROW(issue(IdentityKind::kDevice, "r1", "m1", "pv1"), Error);
  pki_->revoke(RevocationTarget::whole_rec("r2"));
  EXPECT_THROW(pki_->add_rec("r2"), Error);
  EXPECT_THROW(pki_->add_member("r2", "m9"), Error);
  EXPECT_THROW(issue(IdentityKind::kDevice, "r2", "m1", "pv1"), Error);
}

// docs/pki.md, "Files": the directory, every directory under it and pki.db are the owner's.
TEST_F(PkiTest, TheDirectoryAndItsDatabaseAreOwnerOnly) {
  issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  EXPECT_EQ(mode_of(pki_->directory()), 0700U);
  int directories = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(pki_->directory())) {
    if (entry.is_directory()) {
      EXPECT_EQ(mode_of(entry.path()), 0700U) << entry.path();
      ++directories;
    }
  }
  EXPECT_GT(directories, 5);
  EXPECT_EQ(mode_of(pki_->directory() / "pki.db"), 0600U);
}

TEST_F(PkiTest, FailedBatchLeavesTheDirectoryAsItWas) {
  issue(IdentityKind::kDevice, "r1", "m1", "pv1");
  const std::string before = testing::hash_directory(pki_->directory());
  std::vector<IssueRequest> batch{request(IdentityKind::kDevice, "r1", "m1", "a"),
                                  request(IdentityKind::kDevice, "r1", "m1", "b"),
                                  request(IdentityKind::kDevice, "r1", "m1", "pv1")};
  EXPECT_THROW(pki_->issue_many(batch), Error);
  EXPECT_EQ(testing::hash_directory(pki_->directory()), before);
  EXPECT_THROW(pki_->find_by_common_name("rec_r1_m1_a"), Error);
}

TEST_F(PkiTest, TamperedCaCertificateIsDetected) {
  const auto path = pki_->authority_cert_path("member_r1_m1");
  // A valid certificate, but not the one pki.db recorded for this CA.
  write_file_atomic(path, read_file(pki_->authority_cert_path("member_r1_m2")), 0644);
  auto reopened = Pki::open(pki_->directory(), Pki::Access::kReadWrite, passphrase());
  EXPECT_EQ(
      error_of([&] { reopened.issue(request(IdentityKind::kDevice, "r1", "m1", "pv1")); }).code,
      ErrorCode::kDataLoss);
}

TEST_F(PkiTest, SigningNeedsTheRightPassphrase) {
  auto wrong = Pki::open(pki_->directory(), Pki::Access::kReadWrite, Secret("not the passphrase"));
  EXPECT_EQ(error_of([&] { wrong.issue(request(IdentityKind::kDevice, "r1", "m1", "pv1")); }).code,
            ErrorCode::kPermissionDenied);
  auto reader = Pki::open(pki_->directory(), Pki::Access::kReadOnly);
  EXPECT_THROW(reader.add_rec("r3"), Error);
  EXPECT_EQ(reader.authorities().size(), 8U);
}

TEST_F(PkiTest, CrlNumbersIncreaseOnEveryRefresh) {
  const long long before = pki_->authority("bridge").crl_number;
  pki_->refresh_crls();
  pki_->refresh_crls();
  EXPECT_EQ(pki_->authority("bridge").crl_number, before + 2);
  auto crl = crypto::crl_from_pem(read_file(pki_->authority_crl_path("bridge")), "crl");
  crypto::Asn1IntegerPtr number(static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  ASSERT_TRUE(number);
  EXPECT_EQ(ASN1_INTEGER_get(number.get()), before + 2);
}

TEST_F(PkiTest, KeyThatDoesNotMatchItsCaCertificateStopsSigning) {
  const auto dir = pki_->directory() / "ca";
  write_file_atomic(dir / "member_r1_m1" / "key.pem", read_file(dir / "member_r1_m2" / "key.pem"),
                    0600);
  auto reopened = Pki::open(pki_->directory(), Pki::Access::kReadWrite, passphrase());
  EXPECT_EQ(error_of([&] { reopened.issue(request(IdentityKind::kDevice, "r1", "m1", "pv1")); }),
            Failure(ErrorCode::kDataLoss, "does not belong"));
}

TEST_F(PkiTest, OpenFinishesRenamesThatACrashInterrupted) {
  // State after COMMIT but before the renames: a staged file and its pending row.
  const auto target = std::filesystem::path("issued") / "rec_r1_m1_pv1" / "cert.pem";
  std::filesystem::create_directories(pki_->directory() / target.parent_path());
  write_file_atomic(pki_->directory() / "issued/rec_r1_m1_pv1/cert.pem.staged-1", "staged", 0644);
  {
    SqliteDatabase db(pki_->directory() / "pki.db", SqliteDatabase::Mode::kReadWrite);
    db.prepare("INSERT INTO pending_files (temp, final) VALUES (?, ?)")
        .bind(1, std::string_view("issued/rec_r1_m1_pv1/cert.pem.staged-1"))
        .bind(2, std::string_view(target.string()))
        .run();
  }
  Pki::open(pki_->directory(), Pki::Access::kReadOnly);  // readers never write
  EXPECT_FALSE(std::filesystem::exists(pki_->directory() / target));
  Pki::open(pki_->directory(), Pki::Access::kReadWrite);
  EXPECT_EQ(read_file(pki_->directory() / target), "staged");
  EXPECT_FALSE(
      std::filesystem::exists(pki_->directory() / "issued/rec_r1_m1_pv1/cert.pem.staged-1"));
}

TEST_F(PkiTest, InMemoryIssuanceWritesNoFilesAndReturnsTheKey) {
  IssueRequest r = request(IdentityKind::kDevice, "r1", "m1", "sim1");
  r.write_files = false;
  auto issued = pki_->issue(r);
  EXPECT_FALSE(std::filesystem::exists(pki_->directory() / "issued" / "rec_r1_m1_sim1"));
  EXPECT_TRUE(issued.files.cert.empty());
  EXPECT_FALSE(issued.record.has_key);
  EXPECT_TRUE(pki_->verify(issued.chain_pem).valid);
  auto key = crypto::private_key_from_pem(issued.key_pem.reveal(), nullptr, "key");
  auto cert = crypto::certificate_from_pem(issued.chain_pem, "chain");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(pki_->find_by_common_name("rec_r1_m1_sim1").status, CertificateStatus::kValid);
}

TEST_F(PkiTest, LeafKeyIsEncryptedWhenAKeyPassphraseIsGiven) {
  Secret key_passphrase("device key passphrase");
  IssueRequest r = request(IdentityKind::kGateway, "r1", "m1", "");
  r.key_passphrase = &key_passphrase;
  auto issued = pki_->issue(r);
  const std::string pem = read_file(issued.files.key);
  EXPECT_TRUE(crypto::is_encrypted_private_key_pem(pem));
  EXPECT_EQ(mode_of(issued.files.key), 0600U);
  EXPECT_EQ(error_of([&] { crypto::private_key_from_pem(pem, nullptr, "key"); }).code,
            ErrorCode::kPermissionDenied);
  auto key = crypto::private_key_from_pem(pem, &key_passphrase, "key");
  auto cert = crypto::certificate_from_pem(read_file(issued.files.cert), "cert");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
}

TEST(PkiCreateTest, RefusesShortPassphraseAndNonEmptyDirectory) {
  TempDir dir;
  EXPECT_THROW(Pki::create(dir / "a", Secret("short")), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "a"));
  std::filesystem::create_directories(dir / "b");
  std::ofstream(dir / "b" / "something") << "x";
  EXPECT_THROW(Pki::create(dir / "b", passphrase()), Error);
  EXPECT_THROW(Pki::open(dir / "none", Pki::Access::kReadOnly), Error);
}

}  // namespace
}  // namespace recmesh::pki
