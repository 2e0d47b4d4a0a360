// The vector of docs/protocol/policy-bundle.md: anyone implementing the format checks it.
#include <gtest/gtest.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/policy/bundle_signing.hpp"

namespace recmesh::policy {
namespace {

TEST(PolicyBundleVectorTest, DocumentedVectorVerifiesAndMatchesTheDoc) {
  const std::filesystem::path data =
      std::filesystem::path(RECMESH_SOURCE_DIR) / "tests/testdata/policy";
  const std::string jws = read_file(data / "bundle.jws");
  const std::string canonical = read_file(data / "bundle.json");
  const long long at = std::stoll(read_file(data / "verify-at"));
  FixedClock clock(from_unix_seconds(at));
  const BundleVerifier verifier({read_file(data / "ems-ca.pem"), read_file(data / "ems-crl.pem"),
                                 read_file(data / "secmgr.pem")},
                                clock);
  auto bundle = verifier.verify(jws, BrokerId::local("r1", "m1"), 6);
  ASSERT_TRUE(bundle.ok()) << bundle.status().message;
  EXPECT_EQ(to_json(*bundle), canonical);
  EXPECT_EQ(bundle->sequence, 7u);
  EXPECT_EQ(bundle->grants.size(), 2u);
  EXPECT_FALSE(verifier.verify(jws, BrokerId::local("r1", "m1"), 7).ok());
  EXPECT_FALSE(verifier.verify(jws, BrokerId::local("r1", "m2"), 0).ok());

  const std::string doc =
      read_file(std::filesystem::path(RECMESH_SOURCE_DIR) / "docs/protocol/policy-bundle.md");
  EXPECT_NE(doc.find(jws), std::string::npos) << "the doc must print the vector verbatim";
  EXPECT_NE(doc.find(canonical), std::string::npos);
  EXPECT_NE(doc.find(std::to_string(at)), std::string::npos);
}

}  // namespace
}  // namespace recmesh::policy
