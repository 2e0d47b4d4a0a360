#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace recmesh::protocol {

// Which way the bridging module moves a flow (SPEC §4.5).
enum class BridgeDirection {
  kOut,   // local broker -> central broker
  kIn,    // central broker -> local broker
  kBoth,  // the bridge publishes it on both brokers itself; never forwarded (it would loop)
};

std::string_view to_string(BridgeDirection direction);

// One row of the §4.5 table. Patterns are MQTT filters; the central one starts with the
// placeholders `<rec>` and `<member>`. Both sides hold the same wildcards in the same order:
// the levels a '+' or '#' matches on one side fill the other.
struct BridgeRule {
  std::string_view local;
  std::string_view central;
  BridgeDirection direction;
  std::uint8_t qos;
  // Whether the forwarded message keeps the publisher's retain flag. Only status flags and
  // status info are retained by convention (an empty retained message clears them, and that
  // must cross too); diagnostics must never be retained, and a retained control or key
  // message would be replayed to every new subscriber.
  bool retain;
};

// The §4.5 table, in its order.
std::span<const BridgeRule> bridge_rules();

// The central name of a local topic that a rule with direction out (or both) covers, for the
// member `rec`/`member`; nothing for a topic that is invalid or that no such rule covers.
std::optional<std::string> map_local_to_central(std::string_view rec, std::string_view member,
                                                std::string_view topic);
// The local name of a central topic of member `rec`/`member` that a rule with direction in (or
// both) covers; nothing for an invalid topic, another member's topic, or one no rule covers.
std::optional<std::string> map_central_to_local(std::string_view rec, std::string_view member,
                                                std::string_view topic);

// The central filter of `rule` for member `rec`/`member` (its placeholders filled).
std::string central_filter(const BridgeRule& rule, std::string_view rec, std::string_view member);

// The rule that covers a valid topic name in either direction, or nothing.
const BridgeRule* find_local_rule(std::string_view local_topic);
const BridgeRule* find_central_rule(std::string_view rec, std::string_view member,
                                    std::string_view central_topic);

}  // namespace recmesh::protocol
