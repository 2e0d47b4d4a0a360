#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/result.hpp"
#include "recmesh/protocol/log_level.hpp"

namespace recmesh::protocol {

// Topic names of the communication model (SPEC §4, docs/protocol/messages.md "Topics").
//
// The same flow has two spellings: the local form on a member's broker (`/device/pv1/status`,
// `/platform/control`) and the central form on the platform's broker, prefixed with the REC and
// member (`/r1/m1/device/pv1/status`, `/r1/m1/control`). The two grammars overlap
// (`/device/pv1/control` is a local device command and also a central member control of a REC
// called "device"), so a parser is always told which broker the topic came from.
enum class TopicForm { kLocal, kCentral };

// Which flow a topic carries; the comment gives the local form, then the central one.
enum class Channel {
  kDeviceStatus,            // /device/<d>/status             /<r>/<m>/device/<d>/status
  kDeviceStatusInfo,        // /device/<d>/status/info        /<r>/<m>/device/<d>/status/info
  kDeviceDiagnostic,        // /device/<d>/diagnostic         /<r>/<m>/device/<d>/diagnostic
  kDeviceMetrics,           // /device/<d>/metrics/<name...>  (local only)
  kDeviceLog,               // /device/<d>/log/<LEVEL>        (local only)
  kDeviceControl,           // /device/<d>/control            (local only)
  kDeviceControlResponse,   // /device/<d>/control/response   (local only)
  kGatewayStatus,           // /smart-gateway/status          /<r>/<m>/smart-gateway/status
  kGatewayStatusInfo,       // /smart-gateway/status/info     /<r>/<m>/smart-gateway/status/info
  kGatewayDiagnostic,       // /smart-gateway/diagnostic      /<r>/<m>/smart-gateway/diagnostic
  kBridgeStatus,            // /bridge/status                 /<r>/<m>/bridge/status
  kBridgeStatusInfo,        // /bridge/status/info            /<r>/<m>/bridge/status/info
  kBridgeDiagnostic,        // (central only)                 /<r>/<m>/bridge/diagnostic
  kMemberMetrics,           // /platform/metrics/<name...>    /<r>/<m>/metrics/<name...>
  kMemberControl,           // /platform/control              /<r>/<m>/control
  kMemberControlResponse,   // /platform/control/response     /<r>/<m>/control/response
  kMemberLogs,              // /platform/logs/<LEVEL>         /<r>/<m>/logs/<LEVEL>
  kMemberKeys,              // /platform/keys                 /<r>/<m>/keys
  kMemberKeysResponse,      // /platform/keys/response        /<r>/<m>/keys/response
  kSecurityEvents,          // /security/events               /<r>/<m>/security/events
  kPlatformSecurityEvents,  // (central only)                 /ems/security/events
};

std::string_view to_string(Channel channel);
bool is_device_channel(Channel channel);  // carries a device ID
bool has_metric_name(Channel channel);    // ends in metrics/<name...>
bool has_log_level(Channel channel);      // ends in a log level
bool exists_in(Channel channel, TopicForm form);

// A parsed topic name. Fields that do not apply to the channel stay empty (and `level` stays
// kInfo), so two topics are equal exactly when their names are.
struct Topic {
  TopicForm form = TopicForm::kLocal;
  Channel channel = Channel::kDeviceStatus;
  std::string rec;     // central form of member topics
  std::string member;  // central form of member topics
  std::string device;  // device channels
  std::string metric;  // metrics channels: the levels after `metrics/`, e.g. "snapshot", "pv/dc"
  LogLevel level = LogLevel::kInfo;  // log channels

  bool operator==(const Topic&) const = default;
};

// A topic name from a broker. Rejects (kInvalidArgument, naming the problem): more than
// kMaxTopicBytes, NUL or non-ASCII bytes, no leading '/', empty levels, wildcards, IDs outside
// [a-z0-9][a-z0-9-]{0,31}, metric levels outside [a-z0-9][a-z0-9_-]{0,63} or more than
// kMaxMetricLevels of them, unknown log levels, and any name that is not a channel of the form.
Result<Topic> parse_topic(TopicForm form, std::string_view name);
Result<Topic> parse_local_topic(std::string_view name);
Result<Topic> parse_central_topic(std::string_view name);

// The name of `topic`; fails on what parse_topic would reject (a channel absent from the form,
// invalid IDs, fields set that do not apply). parse_topic(format_topic(t)) == t.
Result<std::string> format_topic(const Topic& topic);

// Convenience builders over format_topic.
Result<std::string> local_device_topic(Channel channel, std::string_view device);
Result<std::string> central_member_topic(Channel channel, std::string_view rec,
                                         std::string_view member);
Result<std::string> central_device_topic(Channel channel, std::string_view rec,
                                         std::string_view member, std::string_view device);

// Local topics without IDs.
inline constexpr std::string_view kGatewayStatusTopic = "/smart-gateway/status";
inline constexpr std::string_view kGatewayStatusInfoTopic = "/smart-gateway/status/info";
inline constexpr std::string_view kGatewayDiagnosticTopic = "/smart-gateway/diagnostic";
inline constexpr std::string_view kBridgeStatusTopic = "/bridge/status";
inline constexpr std::string_view kBridgeStatusInfoTopic = "/bridge/status/info";
inline constexpr std::string_view kPlatformControlTopic = "/platform/control";
inline constexpr std::string_view kPlatformControlResponseTopic = "/platform/control/response";
inline constexpr std::string_view kPlatformKeysTopic = "/platform/keys";
inline constexpr std::string_view kPlatformKeysResponseTopic = "/platform/keys/response";
inline constexpr std::string_view kSecurityEventsTopic = "/security/events";
// Where the central broker's own recmesh-guard reports.
inline constexpr std::string_view kPlatformSecurityEventsTopic = "/ems/security/events";

// Metric names the model defines: a device's snapshot (DeviceMetrics) and the gateway's member
// aggregate (MemberMetrics). Other names under metrics/ are free for extensions.
inline constexpr std::string_view kDeviceSnapshotMetric = "snapshot";
inline constexpr std::string_view kMemberAggregateMetric = "aggregate";

// MQTT topic filters (subscriptions and ACL patterns).
// Valid: 1..kMaxTopicBytes bytes, no NUL, '+' only as a whole level, '#' only as the whole
// last level.
bool is_valid_topic_filter(std::string_view filter);
// MQTT matching: '+' matches one level (possibly empty), '#' the parent and every descendant.
// False when the filter is invalid or the name holds wildcards.
bool topic_matches_filter(std::string_view filter, std::string_view name);

// What each role subscribes to (SPEC §6, column R), all at QoS 1.
// A device: its own command topic. Fails on an invalid device ID.
Result<std::vector<std::string>> device_subscriptions(std::string_view device);
// The smart gateway, over every device of the member (thesis §3.4: `/device/+/metrics/#`).
std::vector<std::string> gateway_subscriptions();
// The smart gateway, listing each device (least privilege: exact topics before wildcards).
Result<std::vector<std::string>> gateway_subscriptions(std::span<const std::string> devices);
// The bridging module on the local broker: the local side of every *out* rule of §4.5.
std::vector<std::string> bridge_local_subscriptions();
// The bridging module on the central broker: the central side of every *in* rule of §4.5.
Result<std::vector<std::string>> bridge_central_subscriptions(std::string_view rec,
                                                              std::string_view member);
// The EMS engine on the central broker, over every member.
std::vector<std::string> ems_engine_subscriptions();
// Every member's logs on the central broker, `/+/+/logs/+`.
std::string member_logs_subscription();
// Log management on the central broker.
std::vector<std::string> log_management_subscriptions();

}  // namespace recmesh::protocol
