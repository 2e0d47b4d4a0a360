#include "recmesh/policy/bundle_signing.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/policy_store.hpp"

#include "temp_dir.hpp"

namespace recmesh::policy {
namespace {

class BundleSigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.emplace(pki::Pki::create(dir_ / "pki", Secret("bundle test passphrase")));
    pki_->add_rec("r1");
    pki_->add_member("r1", "m1");
    secmgr_ = issue(pki::IdentityKind::kService, "", "", "secmgr");
    engine_ = issue(pki::IdentityKind::kService, "", "", "engine");
  }

  pki::IssuedCertificate issue(pki::IdentityKind kind, std::string rec, std::string member,
                               std::string name) {
    pki::IssueRequest request;
    request.identity = pki::Identity::make(kind, std::move(rec), std::move(member), name);
    return pki_->issue(request);
  }

  BundleSigner signer(const pki::IssuedCertificate& issued) {
    return BundleSigner(crypto::JwsSigner::from_files(issued.files.chain, issued.files.key));
  }

  BundleTrust trust() {
    return {read_file(pki_->authority_cert_path("ems")), read_file(pki_->authority_crl_path("ems")),
            read_file(secmgr_.files.cert)};
  }

  static PolicyBundle bundle(std::uint64_t sequence, std::string broker = "local/r1/m1") {
    PolicyBundle b;
    b.broker = std::move(broker);
    b.sequence = sequence;
    b.grants.push_back(
        {"member/r1/m1:rec_r1_m1_pv1", {"/device/pv1/status"}, {"/device/pv1/control"}, {}});
    return b;
  }

  testing::TempDir dir_;
  std::optional<pki::Pki> pki_;
  pki::IssuedCertificate secmgr_;
  pki::IssuedCertificate engine_;
  const BrokerId broker_ = BrokerId::local("r1", "m1");
};

TEST_F(BundleSigningTest, SignedBundleVerifies) {
  const BundleVerifier verifier(trust());
  EXPECT_EQ(verifier.signer_common_name(), "ems_secmgr");
  auto verified = verifier.verify(signer(secmgr_).sign(bundle(2)), broker_, 1);
  ASSERT_TRUE(verified.ok()) << verified.status().message;
  EXPECT_EQ(*verified, bundle(2));
}

TEST_F(BundleSigningTest, ForgedReplayedOlderAndMisdirectedBundlesAreRefused) {
  const BundleVerifier verifier(trust());
  const std::string signed_bundle = signer(secmgr_).sign(bundle(5));

  // Another EMS identity (not the Security Manager).
  auto forged = verifier.verify(signer(engine_).sign(bundle(6)), broker_, 5);
  ASSERT_FALSE(forged.ok());
  EXPECT_EQ(forged.status().code, ErrorCode::kPermissionDenied);

  // A flipped byte in the signed payload.
  std::string tampered = signed_bundle;
  tampered[tampered.find('.') + 5] ^= 1;
  EXPECT_FALSE(verifier.verify(tampered, broker_, 0).ok());

  // A certificate of another PKI with the same name.
  pki::Pki other = pki::Pki::create(dir_ / "foreign", Secret("foreign passphrase"));
  pki::IssueRequest request;
  request.identity = pki::Identity::make(pki::IdentityKind::kService, "", "", "secmgr");
  const auto impostor = other.issue(request);
  auto foreign_signed = verifier.verify(
      BundleSigner(crypto::JwsSigner::from_files(impostor.files.chain, impostor.files.key))
          .sign(bundle(9)),
      broker_, 0);
  ASSERT_FALSE(foreign_signed.ok());
  EXPECT_EQ(foreign_signed.status().code, ErrorCode::kPermissionDenied);

  // Replayed (same sequence) and older.
  auto replayed = verifier.verify(signed_bundle, broker_, 5);
  ASSERT_FALSE(replayed.ok());
  EXPECT_EQ(replayed.status().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(replayed.status().message.find("replayed or older"), std::string::npos);
  EXPECT_FALSE(verifier.verify(signed_bundle, broker_, 6).ok());

  // For another broker.
  auto misdirected = verifier.verify(signer(secmgr_).sign(bundle(10, "local/r1/m2")), broker_, 0);
  ASSERT_FALSE(misdirected.ok());
  EXPECT_NE(misdirected.status().message.find("local/r1/m2"), std::string::npos);

  // Not a JWS at all, or a JWS over something that is not a bundle.
  EXPECT_FALSE(verifier.verify("garbage", broker_, 0).ok());
  const auto jws = crypto::JwsSigner::from_files(secmgr_.files.chain, secmgr_.files.key);
  auto not_a_bundle = verifier.verify(jws.sign(kGuardControlTopic, "{\"a\":1}"), broker_, 0);
  ASSERT_FALSE(not_a_bundle.ok());
  EXPECT_EQ(not_a_bundle.status().code, ErrorCode::kInvalidArgument);
  // Signed for another topic.
  EXPECT_FALSE(
      verifier.verify(jws.sign("/platform/control", to_json(bundle(11))), broker_, 0).ok());
}

TEST_F(BundleSigningTest, TheConfiguredSecurityManagerMustBeAnEmsIdentity) {
  BundleTrust bad = trust();
  bad.secmgr_cert_pem = read_file(issue(pki::IdentityKind::kBridge, "r1", "m1", "").files.cert);
  EXPECT_THROW(BundleVerifier{bad}, Error);
}

TEST_F(BundleSigningTest, StoreKeepsTheBundleEncryptedAndDetectsTampering) {
  const std::filesystem::path key_file = dir_ / "guard.key";
  write_file_atomic(key_file, PolicyStore::generate_key(), 0600);
  const PolicyStore store(dir_ / "policy.bin", key_file);
  ASSERT_TRUE(store.load().ok());
  EXPECT_FALSE(store.load()->has_value());

  const std::string signed_bundle = signer(secmgr_).sign(bundle(3));
  store.save(signed_bundle);
  const std::string on_disk = read_file(store.path());
  EXPECT_EQ(on_disk.find("rec_r1_m1_pv1"), std::string::npos);
  EXPECT_EQ(on_disk.find(signed_bundle.substr(0, 20)), std::string::npos);
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->value(), signed_bundle);

  std::string edited = on_disk;
  edited[edited.size() / 2] ^= 0x20;
  write_file_atomic(store.path(), edited, 0600);
  auto tampered = store.load();
  ASSERT_FALSE(tampered.ok());
  EXPECT_EQ(tampered.status().code, ErrorCode::kDataLoss);

  write_file_atomic(dir_ / "other.key", PolicyStore::generate_key(), 0600);
  store.save(signed_bundle);
  EXPECT_FALSE(PolicyStore(store.path(), dir_ / "other.key").load().ok());

  write_file_atomic(dir_ / "open.key", PolicyStore::generate_key(), 0644);
  EXPECT_THROW(PolicyStore(store.path(), dir_ / "open.key"), Error);
  write_file_atomic(dir_ / "short.key", "abcd\n", 0600);
  EXPECT_THROW(PolicyStore(store.path(), dir_ / "short.key"), Error);
}

}  // namespace
}  // namespace recmesh::policy
