#include "recmesh/policy/policy_matcher.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace recmesh::policy {
namespace {

const std::string kPv1 = "member/r1/m1:rec_r1_m1_pv1";
const std::string kGateway = "member/r1/m1:rec_r1_m1_gateway";

PolicyBundle sample() {
  PolicyBundle b;
  b.broker = "local/r1/m1";
  b.sequence = 3;
  b.default_quota.publish_per_second = 10;
  b.grants.push_back({kPv1,
                      {"/device/pv1/status", "/device/pv1/metrics/#", "/device/pv1/log/+"},
                      {"/device/pv1/control"},
                      std::nullopt});
  Quota gateway_quota;
  gateway_quota.max_subscriptions = 5;
  b.grants.push_back({kGateway, {"/device/pv1/control"}, {"/device/+/metrics/#"}, gateway_quota});
  b.revocations.serials.push_back({"member/r1/m1", "AB12"});
  b.revocations.identities.push_back("member/r1/m1:rec_r1_m1_bat1");
  b.revocations.domains.push_back("member/r1/m2");
  return b;
}

TEST(FilterTest, MatchesAsTheBrokerDoes) {
  EXPECT_TRUE(filter_matches("/device/+/metrics/#", "/device/pv1/metrics/power"));
  EXPECT_TRUE(filter_matches("/device/+/metrics/#", "/device/pv1/metrics"));
  EXPECT_FALSE(filter_matches("/device/+/metrics/#", "/device/pv1/log/INFO"));
  EXPECT_TRUE(filter_matches("/device/pv1/log/+", "/device/pv1/log/INFO"));
  EXPECT_FALSE(filter_matches("/device/pv1/log/+", "/device/pv1/log/INFO/x"));
  EXPECT_FALSE(filter_matches("/device/pv1/log/+", "/device/pv1/log"));
  EXPECT_TRUE(filter_matches("#", "/a"));
  EXPECT_FALSE(filter_matches("#", "$CONTROL/recmesh-guard/v1"));
  EXPECT_FALSE(filter_matches("+/recmesh-guard/v1", "$CONTROL/recmesh-guard/v1"));
  EXPECT_TRUE(filter_matches("$CONTROL/recmesh-guard/v1", "$CONTROL/recmesh-guard/v1"));
}

TEST(FilterTest, IntersectionIsSymmetricAndExact) {
  const std::pair<const char*, const char*> yes[] = {{"/+/+/metrics/#", "/r1/m1/metrics/#"},
                                                     {"/r1/m1/metrics/#", "/r1/+/metrics/power"},
                                                     {"#", "/anything"},
                                                     {"/a/b", "/a/b/#"},
                                                     {"/a/+", "/+/b"}};
  const std::pair<const char*, const char*> no[] = {{"/r1/m1/metrics/#", "/r1/m2/metrics/#"},
                                                    {"/a/+", "/a"},
                                                    {"/a/b/c", "/a/b"},
                                                    {"/a/+/c", "/a/b/d"}};
  for (auto [a, b] : yes) {
    EXPECT_TRUE(filters_intersect(a, b)) << a << " " << b;
    EXPECT_TRUE(filters_intersect(b, a)) << b << " " << a;
  }
  for (auto [a, b] : no) {
    EXPECT_FALSE(filters_intersect(a, b)) << a << " " << b;
    EXPECT_FALSE(filters_intersect(b, a)) << b << " " << a;
  }
}

TEST(PolicyMatcherTest, DecidesPerIdentityWithDefaultDeny) {
  const PolicyMatcher matcher(sample());
  const CompiledGrant* pv1 = matcher.grant_of(kPv1);
  ASSERT_NE(pv1, nullptr);
  EXPECT_TRUE(pv1->publish.matches("/device/pv1/status"));
  EXPECT_TRUE(pv1->publish.matches("/device/pv1/metrics/power/dc"));
  EXPECT_TRUE(pv1->publish.matches("/device/pv1/log/ERROR"));
  EXPECT_FALSE(pv1->publish.matches("/device/pv2/status"));
  EXPECT_FALSE(pv1->publish.matches("/device/pv1/control"));
  EXPECT_TRUE(pv1->receive.matches("/device/pv1/control"));
  EXPECT_FALSE(pv1->receive.matches("/device/pv2/control"));
  EXPECT_TRUE(pv1->receive.intersects("/device/+/control"));  // receives only its own
  EXPECT_FALSE(pv1->receive.intersects("/device/+/status"));
  EXPECT_EQ(pv1->quota.publish_per_second, 10u);  // the default

  const CompiledGrant* gateway = matcher.grant_of(kGateway);
  ASSERT_NE(gateway, nullptr);
  EXPECT_EQ(gateway->quota.max_subscriptions, 5u);
  EXPECT_EQ(gateway->quota.publish_per_second, 0u);  // its own quota replaces the default

  EXPECT_EQ(matcher.grant_of("bridge:bridge_r1_m1"), nullptr);
  EXPECT_EQ(matcher.grant_of("member/r1/m2:rec_r1_m1_pv1"), nullptr);
  EXPECT_EQ(PolicyMatcher().grant_of(kPv1), nullptr);
}

TEST(PolicyMatcherTest, RevocationsBySerialIdentityAndDomain) {
  const PolicyMatcher matcher(sample());
  const auto pv1 = *make_client_identity(CaDomain::of_member("r1", "m1"), "rec_r1_m1_pv1");
  EXPECT_FALSE(matcher.revocation_of(pv1, "CD34").has_value());
  EXPECT_TRUE(matcher.revocation_of(pv1, "AB12").has_value());
  const auto bat1 = *make_client_identity(CaDomain::of_member("r1", "m1"), "rec_r1_m1_bat1");
  EXPECT_TRUE(matcher.revocation_of(bat1).has_value());
  const auto other = *make_client_identity(CaDomain::of_member("r1", "m2"), "rec_r1_m2_gateway");
  EXPECT_TRUE(matcher.revocation_of(other).has_value());
  // The same serial under another CA is another certificate.
  const auto bridge = *make_client_identity(CaDomain::bridge(), "bridge_r1_m1");
  EXPECT_FALSE(matcher.revocation_of(bridge, "AB12").has_value());
}

TEST(PolicyMatcherTest, BuiltinGrantsAddToTheBundle) {
  const Grant secmgr{"ems:ems_secmgr", {"$CONTROL/recmesh-guard/v1"}, {}, std::nullopt};
  const PolicyMatcher matcher(PolicyBundle{}, std::span<const Grant>(&secmgr, 1));
  ASSERT_NE(matcher.grant_of("ems:ems_secmgr"), nullptr);
  EXPECT_TRUE(matcher.grant_of("ems:ems_secmgr")->publish.matches("$CONTROL/recmesh-guard/v1"));
}

TEST(PolicyMatcherTest, ThousandsOfIdentitiesWithExactTopics) {
  PolicyBundle b;
  for (int i = 0; i < 2000; ++i) {
    const std::string d = fmt::format("d{}", i);
    b.grants.push_back({fmt::format("member/r1/m1:rec_r1_m1_{}", d),
                        {fmt::format("/device/{}/status", d)},
                        {fmt::format("/device/{}/control", d)},
                        std::nullopt});
  }
  const PolicyMatcher matcher(b);
  EXPECT_EQ(matcher.identities(), 2000u);
  const CompiledGrant* g = matcher.grant_of("member/r1/m1:rec_r1_m1_d1234");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(g->publish.matches("/device/d1234/status"));
  EXPECT_FALSE(g->publish.matches("/device/d1235/status"));
}

}  // namespace
}  // namespace recmesh::policy

namespace recmesh::policy {
namespace {

// The level tree decides exactly as the reference matcher, filter by filter and combined.
TEST(TopicSetTest, TreeAgreesWithFilterMatching) {
  const std::vector<std::string> filters = {"#",
                                            "+",
                                            "/#",
                                            "/+",
                                            "/a/#",
                                            "/a/+",
                                            "/a/+/c",
                                            "/+/b/#",
                                            "/a/b",
                                            "a/#",
                                            "+/+",
                                            "$SYS/#",
                                            "/a/+/+/#",
                                            "/device/+/metrics/#",
                                            "/device/pv1/log/+",
                                            "+/recmesh-guard/v1"};
  const std::vector<std::string> topics = {"/",
                                           "/a",
                                           "/a/b",
                                           "/a/b/c",
                                           "/a/x/c",
                                           "/x/b",
                                           "/x/b/y/z",
                                           "a",
                                           "a/b",
                                           "$SYS/x",
                                           "$CONTROL/recmesh-guard/v1",
                                           "/a/b/c/d",
                                           "/device/pv1/metrics",
                                           "/device/pv1/metrics/p/q",
                                           "/device/pv1/log/INFO",
                                           "/a//c",
                                           "//"};
  TopicSet all;
  for (const auto& f : filters) {
    TopicSet one;
    one.add(f);
    all.add(f);
    for (const auto& t : topics) {
      EXPECT_EQ(one.matches(t), filter_matches(f, t)) << f << " vs " << t;
    }
  }
  for (const auto& t : topics) {
    bool any = false;
    for (const auto& f : filters) {
      any = any || filter_matches(f, t);
    }
    EXPECT_EQ(all.matches(t), any) << t;
  }
}

}  // namespace
}  // namespace recmesh::policy
