#include "recmesh/e2e/trust_store.hpp"

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

#include "e2e_fixture.hpp"

namespace recmesh::e2e {
namespace {

class PkiTrustStoreTest : public E2eFixture {
 protected:
  std::string gateway_der(const std::string& member) const {
    return credentials("rec_r1_" + member + "_gateway").certificate_der;
  }
  Checked<crypto::PkeyPtr> verify_gateway(PkiTrustStore& store, const std::string& member) {
    return verify_peer_certificate(
        store.get("member_r1_" + member, "rec_r1_" + member + "_gateway"), gateway_der(member),
        clock_.now());
  }
};

TEST_F(PkiTrustStoreTest, ReadsEachPeersTrustOnceWhileNothingChanges) {
  PkiTrustStore store(dir_ / "pki");
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(verify_gateway(store, "m1"));
    EXPECT_TRUE(verify_gateway(store, "m2"));
  }
  EXPECT_EQ(store.loads(), 2U);
  // The trust it hands out is the same as a fresh read of the directory.
  const PeerTrust fresh =
      PeerTrust::from_pki_dir(dir_ / "pki", "member_r1_m1", "rec_r1_m1_gateway");
  const PeerTrust cached = store.get("member_r1_m1", "rec_r1_m1_gateway");
  ASSERT_EQ(cached.issuer_chain.size(), fresh.issuer_chain.size());
  ASSERT_EQ(cached.crls.size(), fresh.crls.size());
  for (std::size_t i = 0; i < fresh.issuer_chain.size(); ++i) {
    EXPECT_EQ(X509_cmp(cached.issuer_chain[i].get(), fresh.issuer_chain[i].get()), 0);
  }
  EXPECT_EQ(cached.common_name, "rec_r1_m1_gateway");
}

// The cache must never hide a revocation: a CRL published after the first read is honoured at
// the very next get(), for a leaf, for a whole member CA, and on the engine's own chain.
TEST_F(PkiTrustStoreTest, ANewCrlIsHonouredAtTheNextHandshake) {
  PkiTrustStore store(dir_ / "pki");
  ASSERT_TRUE(verify_gateway(store, "m1"));
  pki_->revoke(pki::RevocationTarget::certificate("rec_r1_m1_gateway"));
  auto revoked = verify_gateway(store, "m1");
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().failure, Failure::kRevoked);
  EXPECT_TRUE(verify_gateway(store, "m2"));  // another member's chain did not change

  ASSERT_TRUE(verify_gateway(store, "m2"));
  pki_->revoke(pki::RevocationTarget::whole_member("r1", "m2"));
  auto member_revoked = verify_gateway(store, "m2");
  ASSERT_FALSE(member_revoked);
  EXPECT_EQ(member_revoked.error().failure, Failure::kRevoked);

  const auto engine = credentials("ems_engine").certificate_der;
  ASSERT_TRUE(verify_peer_certificate(store.get("ems", "ems_engine"), engine, clock_.now()));
  pki_->revoke(pki::RevocationTarget::certificate("ems_engine"));
  auto engine_revoked =
      verify_peer_certificate(store.get("ems", "ems_engine"), engine, clock_.now());
  ASSERT_FALSE(engine_revoked);
  EXPECT_EQ(engine_revoked.error().failure, Failure::kRevoked);
}

// A CRL rewritten in place (same inode, as an editor or `cp` would) still counts as a change.
TEST_F(PkiTrustStoreTest, AnInPlaceRewriteOfACrlIsAChange) {
  PkiTrustStore store(dir_ / "pki");
  ASSERT_TRUE(verify_gateway(store, "m1"));
  const auto crl = dir_ / "pki" / "ca" / "member_r1_m1" / "crl.pem";
  const std::string before = read_file(crl);
  pki_->revoke(pki::RevocationTarget::certificate("rec_r1_m1_gateway"));
  const std::string revoked_crl = read_file(crl);
  write_file_atomic(crl, before, 0644);
  ASSERT_TRUE(verify_gateway(store, "m1"));
  const auto loads = store.loads();
  {
    // Same inode: truncate and write.
    std::FILE* f = std::fopen(crl.c_str(), "w");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(revoked_crl.data(), 1, revoked_crl.size(), f), revoked_crl.size());
    std::fclose(f);
  }
  auto revoked = verify_gateway(store, "m1");
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().failure, Failure::kRevoked);
  EXPECT_EQ(store.loads(), loads + 1);
}

TEST_F(PkiTrustStoreTest, AMissingCrlOrChainIsAnErrorEveryTime) {
  PkiTrustStore store(dir_ / "pki");
  ASSERT_TRUE(verify_gateway(store, "m1"));
  std::filesystem::remove(dir_ / "pki" / "ca" / "member_r1_m1" / "crl.pem");
  EXPECT_THROW(store.get("member_r1_m1", "rec_r1_m1_gateway"), Error);
  EXPECT_THROW(store.get("member_r1_m1", "rec_r1_m1_gateway"), Error);  // fails closed, again
  EXPECT_THROW(store.get("member_r1_nobody", "rec_r1_nobody_gateway"), Error);
}

}  // namespace
}  // namespace recmesh::e2e
