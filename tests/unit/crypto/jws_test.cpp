#include "recmesh/crypto/jws.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/base64url.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/pki.hpp"

#include "temp_dir.hpp"

namespace recmesh::crypto {
namespace {

constexpr std::string_view kTopic = "/device/pv1/control";
constexpr std::string_view kPayload = R"({"command_id":"c1","type":"diagnostic"})";

class JwsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.emplace(pki::Pki::create(dir_ / "pki", Secret("jws test passphrase")));
    pki_->add_rec("r1");
    pki_->add_member("r1", "m1");
    engine_ = issue(pki::IdentityKind::kService, "", "", "engine");
    lms_ = issue(pki::IdentityKind::kService, "", "", "lms");
  }

  pki::IssuedCertificate issue(pki::IdentityKind kind, std::string rec, std::string member,
                               std::string name) {
    pki::IssueRequest request;
    request.identity =
        pki::Identity::make(kind, std::move(rec), std::move(member), std::move(name));
    return pki_->issue(request);
  }

  JwsSigner signer(const pki::IssuedCertificate& issued) {
    return JwsSigner::from_files(issued.files.chain, issued.files.key);
  }

  SignerTrust ems_trust() {
    return {read_file(pki_->authority_cert_path("ems")),
            read_file(pki_->authority_crl_path("ems")),
            {"ems_engine"}};
  }

  // A signer whose certificate `ca` (an authority of the PKI) signs outside the PKI's rules,
  // as whoever holds that CA's key can: any name, any usage.
  JwsSigner forged_signer(const std::string& ca, const std::string& common_name,
                          pki::CertificateTemplate::Usage usage) {
    const auto ca_dir = pki_->directory() / "ca" / ca;
    Secret passphrase("jws test passphrase");
    auto ca_key = private_key_from_pem(read_file(ca_dir / "key.pem"), &passphrase, "ca key");
    auto ca_cert = certificate_from_pem(read_file(ca_dir / "cert.pem"), "ca cert");
    auto key = generate_p256_key();
    pki::CertificateTemplate tmpl;
    tmpl.common_name = common_name;
    tmpl.usage = usage;
    tmpl.path_length = usage == pki::CertificateTemplate::Usage::kCertificateAuthority ? 0 : -1;
    tmpl.not_before = std::chrono::system_clock::now() - std::chrono::hours(1);
    tmpl.not_after = tmpl.not_before + std::chrono::hours(48);
    auto forged = pki::sign_certificate(tmpl, key.get(), ca_cert.get(), ca_key.get());
    std::vector<X509Ptr> chain;
    chain.push_back(forged.parse());
    return JwsSigner(std::move(key), std::move(chain));
  }

  testing::TempDir dir_;
  std::optional<pki::Pki> pki_;
  pki::IssuedCertificate engine_;
  pki::IssuedCertificate lms_;
};

TEST_F(JwsTest, SignedByTheEngineVerifiesAndReturnsThePayload) {
  JwsVerifier verifier(ems_trust());
  auto result = verifier.verify(kTopic, signer(engine_).sign(kTopic, kPayload));
  ASSERT_TRUE(result.ok()) << result.status().message;
  EXPECT_EQ(result->payload, kPayload);
  EXPECT_EQ(result->signer, "ems_engine");
}

TEST_F(JwsTest, AnotherTopicIsRefused) {
  JwsVerifier verifier(ems_trust());
  auto result = verifier.verify("/device/pv2/control", signer(engine_).sign(kTopic, kPayload));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code, ErrorCode::kPermissionDenied);
}

TEST_F(JwsTest, TamperedPayloadOrHeaderIsRefused) {
  JwsVerifier verifier(ems_trust());
  const std::string jws = signer(engine_).sign(kTopic, kPayload);
  const std::size_t dot = jws.find('.');
  std::string tampered_payload = jws.substr(0, dot + 1) +
                                 base64url_encode(R"({"command_id":"c1","type":"reboot"})") +
                                 jws.substr(jws.rfind('.'));
  EXPECT_FALSE(verifier.verify(kTopic, tampered_payload).ok());
  std::string flipped = jws;
  flipped[jws.size() - 5] = flipped[jws.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verifier.verify(kTopic, flipped).ok());
}

TEST_F(JwsTest, AlgorithmSubstitutionIsRefused) {
  JwsVerifier verifier(ems_trust());
  const std::string jws = signer(engine_).sign(kTopic, kPayload);
  const std::string rest = jws.substr(jws.find('.'));
  for (const char* header :
       {R"({"alg":"none"})",
        R"({"alg":"HS256","crit":["rmt"],"rmt":"x","typ":"recmesh+jws","x5c":[]})"}) {
    EXPECT_FALSE(verifier.verify(kTopic, base64url_encode(header) + rest).ok()) << header;
  }
  // Unsigned: "alg":"none" with an empty signature.
  const std::string none =
      base64url_encode(R"({"alg":"none"})") + "." + base64url_encode(kPayload) + ".";
  EXPECT_FALSE(verifier.verify(kTopic, none).ok());
}

TEST_F(JwsTest, SignerOutsideTheAllowListIsRefused) {
  JwsVerifier verifier(ems_trust());
  auto result = verifier.verify(kTopic, signer(lms_).sign(kTopic, kPayload));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message.find("ems_lms may not sign"), std::string::npos);
}

TEST_F(JwsTest, SameNameFromAnotherCaIsRefused) {
  // A member CA signs a certificate named ems_engine: the collision the thesis warns about.
  JwsSigner impostor =
      forged_signer("member_r1_m1", "ems_engine", pki::CertificateTemplate::Usage::kClient);
  JwsVerifier verifier(ems_trust());
  EXPECT_FALSE(verifier.verify(kTopic, impostor.sign(kTopic, kPayload)).ok());
}

// signed-messages.md: "CAs cannot sign". The EMS CA, the verifier's own anchor, makes a
// subordinate CA certificate named ems_engine (an allowed signer), which chains to the anchor and
// is refused for being a CA; the same forgery as a client leaf verifies, so the refusal is the CA
// check's. The anchor signing with its own key, its name allowed, is refused too.
TEST_F(JwsTest, ACaCertificateCannotSign) {
  JwsVerifier verifier(ems_trust());
  const auto leaf = forged_signer("ems", "ems_engine", pki::CertificateTemplate::Usage::kClient);
  ASSERT_TRUE(verifier.verify(kTopic, leaf.sign(kTopic, kPayload)).ok());

  const auto sub_ca =
      forged_signer("ems", "ems_engine", pki::CertificateTemplate::Usage::kCertificateAuthority);
  auto result = verifier.verify(kTopic, sub_ca.sign(kTopic, kPayload));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(result.status().message.find("the signer is a CA"), std::string::npos)
      << result.status().message;

  // The anchor itself, with its own key, allowed by name.
  const auto ca_dir = pki_->directory() / "ca" / "ems";
  Secret passphrase("jws test passphrase");
  std::vector<X509Ptr> anchor;
  anchor.push_back(certificate_from_pem(read_file(ca_dir / "cert.pem"), "ca cert"));
  const std::string anchor_name = subject_common_name(anchor.front().get());
  JwsSigner ca_itself(private_key_from_pem(read_file(ca_dir / "key.pem"), &passphrase, "ca key"),
                      std::move(anchor));
  SignerTrust trust = ems_trust();
  trust.allowed_signers.push_back(anchor_name);
  auto by_anchor = JwsVerifier(trust).verify(kTopic, ca_itself.sign(kTopic, kPayload));
  ASSERT_FALSE(by_anchor.ok());
  EXPECT_EQ(by_anchor.status().code, ErrorCode::kPermissionDenied);
}

TEST_F(JwsTest, RevokedOrExpiredSignerIsRefused) {
  const std::string jws = signer(engine_).sign(kTopic, kPayload);
  pki_->revoke(pki::RevocationTarget::certificate("ems_engine"));
  JwsVerifier after_revocation(ems_trust());
  auto revoked = after_revocation.verify(kTopic, jws);
  ASSERT_FALSE(revoked.ok());
  EXPECT_NE(revoked.status().message.find("revoked"), std::string::npos);

  FixedClock far_future(std::chrono::system_clock::now() + std::chrono::hours(24 * 400));
  JwsVerifier later(SignerTrust{read_file(pki_->authority_cert_path("ems")),
                                read_file(pki_->authority_crl_path("ems")),
                                {"ems_lms"}},
                    far_future);
  EXPECT_FALSE(later.verify(kTopic, signer(lms_).sign(kTopic, kPayload)).ok());
}

TEST_F(JwsTest, GarbageIsAClearErrorNeverACrash) {
  JwsVerifier verifier(ems_trust());
  const std::string good = signer(engine_).sign(kTopic, kPayload);
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "...", "a.b.c", "a.b.c.d", good + ".", "!" + good,
                                std::string(kMaxJwsSize + 1, 'A'),
                                base64url_encode("[]") + "." + base64url_encode("x") + ".AA",
                                base64url_encode("{}") + ".." + std::string(86, 'A')}) {
    auto result = verifier.verify(kTopic, bad);
    EXPECT_FALSE(result.ok()) << bad.substr(0, 40);
  }
}

TEST(Base64UrlTest, RoundTripsAndRejectsNonCanonicalText) {
  for (const std::string& bytes : {std::string(), std::string("f"), std::string("fo"),
                                   std::string("foo"), std::string("\xff\xfe\x00", 3)}) {
    EXPECT_EQ(base64url_decode(base64url_encode(bytes)), bytes);
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
  for (const char* bad : {"Zg=", "Z", "Zh", "a b", "+/", "Zm9v\n"}) {
    EXPECT_FALSE(base64url_decode(bad).has_value()) << bad;
  }
  EXPECT_FALSE(base64_decode("Zg").has_value());
  EXPECT_FALSE(base64_decode("Zh==").has_value());
}

}  // namespace
}  // namespace recmesh::crypto

namespace recmesh::crypto {
namespace {

// The vector of docs/protocol/signed-messages.md: anyone implementing the format checks it.
TEST(JwsVectorTest, DocumentedVectorVerifiesAndMatchesTheDoc) {
  const std::filesystem::path data =
      std::filesystem::path(RECMESH_SOURCE_DIR) / "tests/testdata/jws";
  const std::string jws = read_file(data / "diagnostic.jws");
  const long long at = std::stoll(read_file(data / "verify-at"));
  FixedClock clock(from_unix_seconds(at));
  JwsVerifier verifier(
      SignerTrust{read_file(data / "ems-ca.pem"), read_file(data / "ems-crl.pem"), {"ems_engine"}},
      clock);
  auto result = verifier.verify("/device/pv1/control", jws);
  ASSERT_TRUE(result.ok()) << result.status().message;
  EXPECT_EQ(result->signer, "ems_engine");
  EXPECT_NE(result->payload.find("\"type\":\"diagnostic\""), std::string::npos);
  EXPECT_FALSE(verifier.verify("/device/pv2/control", jws).ok());

  const std::string doc =
      read_file(std::filesystem::path(RECMESH_SOURCE_DIR) / "docs/protocol/signed-messages.md");
  EXPECT_NE(doc.find(jws), std::string::npos) << "the doc must print the vector verbatim";
  EXPECT_NE(doc.find(std::to_string(at)), std::string::npos);
}

}  // namespace
}  // namespace recmesh::crypto
