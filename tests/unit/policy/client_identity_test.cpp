#include "recmesh/policy/client_identity.hpp"

#include <gtest/gtest.h>

namespace recmesh::policy {
namespace {

const CaDomain kMember = CaDomain::of_member("r1", "m1");

TEST(ClientIdentityTest, EachCaNamesOnlyItsOwnDomain) {
  EXPECT_TRUE(make_client_identity(kMember, "rec_r1_m1_pv1").ok());
  EXPECT_TRUE(make_client_identity(kMember, "rec_r1_m1_gateway").ok());
  EXPECT_TRUE(make_client_identity(CaDomain::bridge(), "bridge_r1_m1").ok());
  EXPECT_TRUE(make_client_identity(CaDomain::ems(), "ems_engine").ok());
  EXPECT_TRUE(make_client_identity(CaDomain::ems(), "ems_secmgr").ok());
}

// The collision Dynamic Security cannot see (mosquitto#2423): same name, other CA.
TEST(ClientIdentityTest, NamesOfAnotherDomainAreRefused) {
  for (const char* cn : {"bridge_r1_m1", "ems_engine", "ems_secmgr", "rec_r1_m2_pv1",
                         "rec_r2_m1_pv1", "broker_r1_m1", "pv1", ""}) {
    auto identity = make_client_identity(kMember, cn);
    ASSERT_FALSE(identity.ok()) << cn;
    EXPECT_EQ(identity.status().code, ErrorCode::kPermissionDenied);
  }
  EXPECT_FALSE(make_client_identity(CaDomain::bridge(), "rec_r1_m1_pv1").ok());
  EXPECT_FALSE(make_client_identity(CaDomain::bridge(), "ems_engine").ok());
  EXPECT_FALSE(make_client_identity(CaDomain::ems(), "bridge_r1_m1").ok());
  EXPECT_FALSE(make_client_identity(CaDomain::ems(), "ems_broker").ok());  // a server name
  EXPECT_FALSE(make_client_identity(CaDomain::ems(), "rec_r1_m1_pv1").ok());
}

TEST(ClientIdentityTest, KeyRoundTripsAndSeparatesDomains) {
  auto a = make_client_identity(kMember, "rec_r1_m1_pv1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->key(), "member/r1/m1:rec_r1_m1_pv1");
  auto back = parse_identity_key(a->key());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *a);
  EXPECT_FALSE(parse_identity_key("member/r1/m1:bridge_r1_m1").ok());
  EXPECT_FALSE(parse_identity_key("rec_r1_m1_pv1").ok());
  EXPECT_FALSE(parse_identity_key("root:ems_engine").ok());
  EXPECT_FALSE(parse_identity_key("member/r1:rec_r1_m1_pv1").ok());
  EXPECT_FALSE(parse_identity_key("member/R1/m1:rec_r1_m1_pv1").ok());
}

TEST(ClientIdentityTest, DomainsParseStrictly) {
  EXPECT_EQ(parse_ca_domain("ems")->kind, DomainKind::kEms);
  EXPECT_EQ(parse_ca_domain("bridge")->kind, DomainKind::kBridge);
  EXPECT_EQ(*parse_ca_domain("member/r1/m1"), kMember);
  for (const char* bad :
       {"root", "rec", "member/", "member/r1", "member/r1/m1/x", "member/r_1/m1", "EMS", ""}) {
    EXPECT_FALSE(parse_ca_domain(bad).ok()) << bad;
  }
}

TEST(ClientIdentityTest, SerialsNormaliseToThePkiSpelling) {
  EXPECT_EQ(*normalise_serial("00ab12"), "AB12");
  EXPECT_EQ(*normalise_serial("4F"), "4F");
  EXPECT_EQ(*normalise_serial("0"), "0");
  EXPECT_FALSE(normalise_serial("").ok());
  EXPECT_FALSE(normalise_serial("xyz").ok());
  EXPECT_FALSE(normalise_serial(std::string(41, 'A')).ok());
}

TEST(ClientIdentityTest, PkiIdentitiesMapToTheirIssuingDomain) {
  using pki::Identity;
  using pki::IdentityKind;
  EXPECT_EQ(client_identity_of(Identity::make(IdentityKind::kDevice, "r1", "m1", "pv1")).key(),
            "member/r1/m1:rec_r1_m1_pv1");
  EXPECT_EQ(client_identity_of(Identity::make(IdentityKind::kBridge, "r1", "m1", "")).key(),
            "bridge:bridge_r1_m1");
  EXPECT_EQ(client_identity_of(Identity::make(IdentityKind::kService, "", "", "lms")).key(),
            "ems:ems_lms");
}

}  // namespace
}  // namespace recmesh::policy
