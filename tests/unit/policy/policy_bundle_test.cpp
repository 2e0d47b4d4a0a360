#include "recmesh/policy/policy_bundle.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace recmesh::policy {
namespace {

using json = nlohmann::json;

PolicyBundle sample() {
  PolicyBundle b;
  b.broker = "local/r1/m1";
  b.sequence = 7;
  b.issued_at = 1795315107;
  b.default_quota.publish_per_second = 50;
  b.default_quota.max_payload_bytes = 65536;
  Quota tight;
  tight.max_retained = 4;
  b.grants.push_back({"member/r1/m1:rec_r1_m1_pv1",
                      {"/device/pv1/status", "/device/pv1/metrics/#"},
                      {"/device/pv1/control"},
                      tight});
  b.grants.push_back({"bridge:bridge_r1_m1", {"/platform/control"}, {}, std::nullopt});
  b.revocations.serials.push_back({"member/r1/m1", "4A1F"});
  b.revocations.identities.push_back("member/r1/m1:rec_r1_m1_bat1");
  b.revocations.domains.push_back("member/r1/m2");
  return b;
}

TEST(PolicyBundleTest, RoundTripsThroughCanonicalJson) {
  const PolicyBundle b = sample();
  auto back = parse_policy_bundle(to_json(b));
  ASSERT_TRUE(back.ok()) << back.status().message;
  EXPECT_EQ(*back, b);
  EXPECT_EQ(to_json(*back), to_json(b));
}

// Every way a bundle can be wrong is refused with the field named.
TEST(PolicyBundleTest, MalformedBundlesAreRefusedWithTheField) {
  const json good = json::parse(to_json(sample()));
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* expect;
  };
  const Case cases[] = {
      {"unknown key", [](json& j) { j["extra"] = 1; }, "unknown key"},
      {"missing sequence", [](json& j) { j.erase("sequence"); }, "bundle.sequence"},
      {"sequence zero", [](json& j) { j["sequence"] = 0; }, "bundle.sequence"},
      {"negative sequence", [](json& j) { j["sequence"] = -3; }, "bundle.sequence"},
      {"string sequence", [](json& j) { j["sequence"] = "8"; }, "bundle.sequence"},
      {"version", [](json& j) { j["version"] = 2; }, "bundle.version"},
      {"broker", [](json& j) { j["broker"] = "local/r1"; }, "bundle.broker"},
      {"identity outside its domain",
       [](json& j) { j["grants"][0]["identity"] = "member/r1/m1:bridge_r1_m1"; },
       "bundle.grants[0].identity"},
      {"bad filter", [](json& j) { j["grants"][0]["publish"][0] = "/a/#/b"; },
       "bundle.grants[0].publish[0]"},
      {"grant key", [](json& j) { j["grants"][1]["admin"] = true; }, "bundle.grants[1]"},
      {"quota type", [](json& j) { j["default_quota"]["max_retained"] = "x"; },
       "bundle.default_quota.max_retained"},
      {"quota bound", [](json& j) { j["default_quota"]["max_retained"] = 1ULL << 40; },
       "bundle.default_quota.max_retained"},
      {"keepalive order",
       [](json& j) {
         j["default_quota"]["keepalive_min_s"] = 100;
         j["default_quota"]["keepalive_max_s"] = 10;
       },
       "keepalive"},
      {"serial", [](json& j) { j["revocations"]["serials"][0]["serial"] = "zz"; },
       "bundle.revocations.serials[0].serial"},
      {"domain", [](json& j) { j["revocations"]["domains"][0] = "root"; },
       "bundle.revocations.domains[0]"},
      {"revocation identity", [](json& j) { j["revocations"]["identities"][0] = "x"; },
       "bundle.revocations.identities[0]"},
      {"grants not array", [](json& j) { j["grants"] = json::object(); }, "bundle.grants"},
  };
  for (const auto& c : cases) {
    json doc = good;
    c.edit(doc);
    auto parsed = parse_policy_bundle(doc.dump());
    ASSERT_FALSE(parsed.ok()) << c.name;
    EXPECT_EQ(parsed.status().code, ErrorCode::kInvalidArgument) << c.name;
    EXPECT_NE(parsed.status().message.find(c.expect), std::string::npos)
        << c.name << ": " << parsed.status().message;
  }
}

TEST(PolicyBundleTest, NonJsonDeepAndOversizeInputIsRefused) {
  for (std::string bad : {std::string(""), std::string("{"), std::string("[]"), std::string("null"),
                          std::string(100000, '['), std::string(R"({"a":"\"[[[[[[[[[[[[[[["})")}) {
    EXPECT_FALSE(parse_policy_bundle(bad).ok()) << bad.substr(0, 20);
  }
  std::string huge = to_json(sample());
  huge.insert(huge.size() - 1, std::string(kMaxBundleBytes, ' '));
  auto parsed = parse_policy_bundle(huge);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message.find("exceeds"), std::string::npos);
}

// A grant holds kMaxTopicsPerGrant topics in each list; one more is refused before the bundle is
// used, naming the list. The largest derived list is a member's gateway's, five per device
// (AccessMatrixTest.TheLargestGrantIsAMembersAndFitsItsBoundWithRoom).
TEST(PolicyBundleTest, AGrantHoldsTopicsUpToItsBound) {
  PolicyBundle b;
  b.broker = "local/r1/m1";
  b.sequence = 1;
  b.issued_at = 1795315107;
  Grant gateway{"member/r1/m1:rec_r1_m1_gateway", {}, {}, std::nullopt};
  for (std::size_t d = 0; gateway.subscribe.size() < kMaxTopicsPerGrant; ++d) {
    gateway.publish.push_back("/device/d" + std::to_string(d) + "/control");
    gateway.subscribe.push_back("/device/d" + std::to_string(d) + "/status");
  }
  b.grants.push_back(gateway);
  auto parsed = parse_policy_bundle(to_json(b));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message;
  EXPECT_EQ(parsed->grants.front().publish.size(), kMaxTopicsPerGrant);
  EXPECT_EQ(parsed->grants.front().subscribe.size(), kMaxTopicsPerGrant);

  for (const char* list : {"publish", "subscribe"}) {
    json over = json::parse(to_json(b));
    over["grants"][0][list].push_back("/device/one-more/status");
    auto refused = parse_policy_bundle(over.dump());
    ASSERT_FALSE(refused.ok()) << list;
    EXPECT_NE(refused.status().message.find(std::string("bundle.grants[0].") + list),
              std::string::npos)
        << refused.status().message;
  }
}

TEST(PolicyBundleTest, BrokerIds) {
  EXPECT_EQ(parse_broker_id("central")->kind, BrokerId::Kind::kCentral);
  EXPECT_EQ(*parse_broker_id("local/r1/m1"), BrokerId::local("r1", "m1"));
  EXPECT_EQ(BrokerId::local("r1", "m1").to_string(), "local/r1/m1");
  for (const char* bad : {"", "local", "local/r1", "local/r1/m1/x", "Central", "local/r_1/m1"}) {
    EXPECT_FALSE(parse_broker_id(bad).ok()) << bad;
  }
}

TEST(PolicyBundleTest, ResponsesRoundTrip) {
  GuardResponse r{false, "central", 5, 4, "sequence 5 is old"};
  auto back = parse_guard_response(to_json(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->reason, r.reason);
  EXPECT_EQ(back->current_sequence, 4u);
  EXPECT_FALSE(parse_guard_response(R"({"accepted":true})").ok());
}

}  // namespace
}  // namespace recmesh::policy
