#include "recmesh/protocol/bridge_mapping.hpp"

#include <array>

#include "recmesh/core/identifier.hpp"
#include "recmesh/protocol/topics.hpp"

#include "topic_levels.hpp"

namespace recmesh::protocol {
namespace {

using enum BridgeDirection;

// SPEC §4.5. `/bridge/status/info` follows its status flag as every other status info does.
constexpr std::array<BridgeRule, 15> kRules{{
    {"/device/+/status", "/<rec>/<member>/device/+/status", kOut, 1, true},
    {"/device/+/status/info", "/<rec>/<member>/device/+/status/info", kOut, 1, true},
    {"/smart-gateway/status", "/<rec>/<member>/smart-gateway/status", kOut, 1, true},
    {"/smart-gateway/status/info", "/<rec>/<member>/smart-gateway/status/info", kOut, 1, true},
    {"/device/+/diagnostic", "/<rec>/<member>/device/+/diagnostic", kOut, 1, false},
    {"/smart-gateway/diagnostic", "/<rec>/<member>/smart-gateway/diagnostic", kOut, 1, false},
    {"/platform/metrics/#", "/<rec>/<member>/metrics/#", kOut, 1, false},
    {"/platform/control/response", "/<rec>/<member>/control/response", kOut, 1, false},
    {"/platform/control", "/<rec>/<member>/control", kIn, 1, false},
    {"/platform/logs/+", "/<rec>/<member>/logs/+", kOut, 1, false},
    {"/platform/keys/response", "/<rec>/<member>/keys/response", kOut, 1, false},
    {"/platform/keys", "/<rec>/<member>/keys", kIn, 1, false},
    {"/security/events", "/<rec>/<member>/security/events", kOut, 1, false},
    {"/bridge/status", "/<rec>/<member>/bridge/status", kBoth, 1, true},
    {"/bridge/status/info", "/<rec>/<member>/bridge/status/info", kBoth, 1, true},
}};

bool is_member(std::string_view rec, std::string_view member) {
  return is_valid_identifier(rec) && is_valid_identifier(member);
}

}  // namespace

std::string_view to_string(BridgeDirection direction) {
  switch (direction) {
    case kOut:
      return "out";
    case kIn:
      return "in";
    case kBoth:
      return "both";
  }
  return "unknown";
}

std::span<const BridgeRule> bridge_rules() {
  return kRules;
}

std::string central_filter(const BridgeRule& rule, std::string_view rec, std::string_view member) {
  return fill_member(rule.central, rec, member);
}

const BridgeRule* find_local_rule(std::string_view local_topic) {
  if (!parse_local_topic(local_topic)) {
    return nullptr;
  }
  for (const auto& rule : kRules) {
    if (capture_wildcards(rule.local, local_topic)) {
      return &rule;
    }
  }
  return nullptr;
}

const BridgeRule* find_central_rule(std::string_view rec, std::string_view member,
                                    std::string_view central_topic) {
  if (!is_member(rec, member)) {
    return nullptr;
  }
  auto topic = parse_central_topic(central_topic);
  if (!topic || topic->rec != rec || topic->member != member) {
    return nullptr;
  }
  for (const auto& rule : kRules) {
    if (capture_wildcards(fill_member(rule.central, rec, member), central_topic)) {
      return &rule;
    }
  }
  return nullptr;
}

std::optional<std::string> map_local_to_central(std::string_view rec, std::string_view member,
                                                std::string_view topic) {
  if (!is_member(rec, member)) {
    return std::nullopt;
  }
  const BridgeRule* rule = find_local_rule(topic);
  if (rule == nullptr || rule->direction == kIn) {
    return std::nullopt;
  }
  auto captures = capture_wildcards(rule->local, topic);
  return fill_pattern(rule->central, rec, member, *captures);
}

std::optional<std::string> map_central_to_local(std::string_view rec, std::string_view member,
                                                std::string_view topic) {
  const BridgeRule* rule = find_central_rule(rec, member, topic);
  if (rule == nullptr || rule->direction == kOut) {
    return std::nullopt;
  }
  auto captures = capture_wildcards(fill_member(rule->central, rec, member), topic);
  return fill_pattern(rule->local, rec, member, *captures);
}

}  // namespace recmesh::protocol
