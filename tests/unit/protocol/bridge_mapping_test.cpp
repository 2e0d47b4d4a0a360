#include "recmesh/protocol/bridge_mapping.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/protocol/topics.hpp"

namespace recmesh::protocol {
namespace {

struct Row {
  std::string local;
  std::string central;
  BridgeDirection direction;
};

// SPEC §4.5 with rec r1, member m1 and device pv1, one concrete name per row.
std::vector<Row> spec_table() {
  using enum BridgeDirection;
  return {
      {"/device/pv1/status", "/r1/m1/device/pv1/status", kOut},
      {"/device/pv1/status/info", "/r1/m1/device/pv1/status/info", kOut},
      {"/smart-gateway/status", "/r1/m1/smart-gateway/status", kOut},
      {"/smart-gateway/status/info", "/r1/m1/smart-gateway/status/info", kOut},
      {"/device/pv1/diagnostic", "/r1/m1/device/pv1/diagnostic", kOut},
      {"/smart-gateway/diagnostic", "/r1/m1/smart-gateway/diagnostic", kOut},
      {"/platform/metrics/aggregate", "/r1/m1/metrics/aggregate", kOut},
      {"/platform/metrics/pv/dc/string-2", "/r1/m1/metrics/pv/dc/string-2", kOut},
      {"/platform/control/response", "/r1/m1/control/response", kOut},
      {"/platform/control", "/r1/m1/control", kIn},
      {"/platform/logs/ERROR", "/r1/m1/logs/ERROR", kOut},
      {"/platform/keys/response", "/r1/m1/keys/response", kOut},
      {"/platform/keys", "/r1/m1/keys", kIn},
      {"/security/events", "/r1/m1/security/events", kOut},
      {"/bridge/status", "/r1/m1/bridge/status", kBoth},
      {"/bridge/status/info", "/r1/m1/bridge/status/info", kBoth},
  };
}

TEST(BridgeMappingTest, MapsEveryRowOfTheSpecTableInItsDirection) {
  for (const auto& row : spec_table()) {
    auto out = map_local_to_central("r1", "m1", row.local);
    auto in = map_central_to_local("r1", "m1", row.central);
    const bool goes_out = row.direction != BridgeDirection::kIn;
    const bool goes_in = row.direction != BridgeDirection::kOut;
    EXPECT_EQ(out.has_value(), goes_out) << row.local;
    EXPECT_EQ(in.has_value(), goes_in) << row.central;
    if (out) {
      EXPECT_EQ(*out, row.central);
    }
    if (in) {
      EXPECT_EQ(*in, row.local);
    }
    const BridgeRule* local_rule = find_local_rule(row.local);
    const BridgeRule* central_rule = find_central_rule("r1", "m1", row.central);
    ASSERT_NE(local_rule, nullptr) << row.local;
    EXPECT_EQ(local_rule, central_rule) << row.local;
    EXPECT_EQ(local_rule->direction, row.direction) << row.local;
  }
}

TEST(BridgeMappingTest, EveryRuleIsCoveredByTheSpecTable) {
  for (const auto& rule : bridge_rules()) {
    bool covered = false;
    for (const auto& row : spec_table()) {
      covered = covered || find_local_rule(row.local) == &rule;
    }
    EXPECT_TRUE(covered) << rule.local;
    EXPECT_GE(rule.qos, 1) << rule.local;
  }
}

TEST(BridgeMappingTest, OnlyStatusIsRetained) {
  for (const auto& rule : bridge_rules()) {
    std::string_view local = rule.local;
    bool is_status = local.ends_with("/status") || local.ends_with("/status/info");
    EXPECT_EQ(rule.retain, is_status) << rule.local;
  }
}

TEST(BridgeMappingTest, MappedNamesParseInTheOtherForm) {
  for (const auto& row : spec_table()) {
    auto local = parse_local_topic(row.local);
    auto central = parse_central_topic(row.central);
    ASSERT_TRUE(local.ok()) << row.local;
    ASSERT_TRUE(central.ok()) << row.central;
    EXPECT_EQ(local->channel, central->channel) << row.local;
    EXPECT_EQ(local->device, central->device);
    EXPECT_EQ(local->metric, central->metric);
    EXPECT_EQ(local->level, central->level);
  }
}

TEST(BridgeMappingTest, LeavesEverythingElseAlone) {
  // Local-only flows never leave the member.
  for (const char* local : {"/device/pv1/metrics/snapshot", "/device/pv1/log/ERROR",
                            "/device/pv1/control", "/device/pv1/control/response"}) {
    EXPECT_FALSE(map_local_to_central("r1", "m1", local).has_value()) << local;
    EXPECT_EQ(find_local_rule(local), nullptr) << local;
  }
  // Invalid names, even when a rule's filter would match them.
  for (const char* local : {"/device/PV/status", "/platform/metrics", "/platform/logs/error",
                            "/device/+/status", "/security/events/x", ""}) {
    EXPECT_FALSE(map_local_to_central("r1", "m1", local).has_value()) << local;
  }
  // Another member's topics, central-only flows and bad member IDs.
  EXPECT_FALSE(map_central_to_local("r1", "m1", "/r1/m2/control").has_value());
  EXPECT_FALSE(map_central_to_local("r1", "m1", "/r2/m1/control").has_value());
  EXPECT_FALSE(map_central_to_local("r1", "m1", "/r1/m1/bridge/diagnostic").has_value());
  EXPECT_FALSE(map_central_to_local("r1", "m1", "/ems/security/events").has_value());
  EXPECT_FALSE(map_central_to_local("r1", "m1", "/+/+/control").has_value());
  EXPECT_FALSE(map_local_to_central("R1", "m1", "/platform/control/response").has_value());
  EXPECT_FALSE(map_local_to_central("r1", "m_1", "/platform/control/response").has_value());
  EXPECT_FALSE(map_central_to_local("r1", "", "/r1//control").has_value());
}

TEST(BridgeMappingTest, DirectionNames) {
  EXPECT_EQ(to_string(BridgeDirection::kOut), "out");
  EXPECT_EQ(to_string(BridgeDirection::kIn), "in");
  EXPECT_EQ(to_string(BridgeDirection::kBoth), "both");
}

}  // namespace
}  // namespace recmesh::protocol
