#include "recmesh/pki/identity.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh::pki {
namespace {

TEST(IdentityTest, CommonNamesFollowTheConventions) {
  EXPECT_EQ(Identity::make(IdentityKind::kDevice, "r1", "m1", "pv1").common_name(),
            "rec_r1_m1_pv1");
  EXPECT_EQ(Identity::make(IdentityKind::kGateway, "r1", "m1", "").common_name(),
            "rec_r1_m1_gateway");
  EXPECT_EQ(Identity::make(IdentityKind::kLocalBroker, "r1", "m1", "").common_name(),
            "broker_r1_m1");
  EXPECT_EQ(Identity::make(IdentityKind::kBridge, "r1", "m1", "").common_name(), "bridge_r1_m1");
  EXPECT_EQ(Identity::make(IdentityKind::kService, "", "", "engine").common_name(), "ems_engine");
  EXPECT_EQ(Identity::make(IdentityKind::kCentralBroker, "", "", "").common_name(), "ems_broker");
}

TEST(IdentityTest, IssuersFollowTheHierarchy) {
  EXPECT_EQ(issuing_authority_id(Identity::make(IdentityKind::kDevice, "r1", "m1", "d")),
            "member_r1_m1");
  EXPECT_EQ(issuing_authority_id(Identity::make(IdentityKind::kLocalBroker, "r1", "m1", "")),
            "member_r1_m1");
  EXPECT_EQ(issuing_authority_id(Identity::make(IdentityKind::kBridge, "r1", "m1", "")), "bridge");
  EXPECT_EQ(issuing_authority_id(Identity::make(IdentityKind::kService, "", "", "lms")), "ems");
}

TEST(IdentityTest, RejectsFieldsThatDoNotApplyAndReservedNames) {
  EXPECT_THROW(Identity::make(IdentityKind::kDevice, "r1", "", "d"), Error);
  EXPECT_THROW(Identity::make(IdentityKind::kDevice, "r1", "m1", "gateway"), Error);
  EXPECT_THROW(Identity::make(IdentityKind::kService, "r1", "", "engine"), Error);
  EXPECT_THROW(Identity::make(IdentityKind::kService, "", "", "broker"), Error);
  EXPECT_THROW(Identity::make(IdentityKind::kBridge, "r1", "m1", "extra"), Error);
  EXPECT_THROW(Identity::make(IdentityKind::kDevice, "r1", "m1", "Pv1"), Error);
  EXPECT_THROW(parse_identity_kind("printer"), Error);
}

TEST(IdentityTest, ParseCommonNameIsTheInverse) {
  for (const auto& identity : {Identity::make(IdentityKind::kDevice, "r1", "m1", "pv-1"),
                               Identity::make(IdentityKind::kGateway, "r1", "m1", ""),
                               Identity::make(IdentityKind::kLocalBroker, "r1", "m1", ""),
                               Identity::make(IdentityKind::kBridge, "r1", "m1", ""),
                               Identity::make(IdentityKind::kService, "", "", "secmgr"),
                               Identity::make(IdentityKind::kCentralBroker, "", "", "")}) {
    auto parsed = parse_common_name(identity.common_name());
    ASSERT_TRUE(parsed.has_value()) << identity.common_name();
    EXPECT_EQ(*parsed, identity);
  }
  for (const char* bad : {"", "rec_r1_m1", "rec_R1_m1_d", "bridge_r1", "ems_", "ems_a_b",
                          "rec_r1_m1_d_extra", "broker__m1", "recmesh Root CA"}) {
    EXPECT_FALSE(parse_common_name(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace recmesh::pki
