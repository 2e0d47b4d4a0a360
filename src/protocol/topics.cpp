#include "recmesh/protocol/topics.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>

#include <fmt/format.h>

#include "recmesh/core/identifier.hpp"
#include "recmesh/protocol/bridge_mapping.hpp"
#include "recmesh/protocol/limits.hpp"

#include "topic_levels.hpp"
#include "utf8.hpp"

namespace recmesh::protocol {
namespace {

// Who a channel belongs to; decides the prefix in each form.
enum class Owner {
  kDevice,    // /device/<d>/...           /<r>/<m>/device/<d>/...
  kGateway,   // /smart-gateway/...        /<r>/<m>/smart-gateway/...
  kBridge,    // /bridge/...               /<r>/<m>/bridge/...
  kPlatform,  // /platform/...             /<r>/<m>/...
  kMember,    // /...                      /<r>/<m>/...
  kEms,       // (none)                    /ems/...
};

enum class Suffix { kNone, kMetricName, kLogLevel };

struct ChannelSpec {
  Channel channel;
  std::string_view name;
  Owner owner;
  std::string_view tail;  // levels after the owner's prefix
  Suffix suffix;
  bool local;
  bool central;
};

// The grammar of SPEC §4 as data: one row per channel.
constexpr std::array<ChannelSpec, 21> kChannels{{
    {Channel::kDeviceStatus, "device-status", Owner::kDevice, "status", Suffix::kNone, true, true},
    {Channel::kDeviceStatusInfo, "device-status-info", Owner::kDevice, "status/info", Suffix::kNone,
     true, true},
    {Channel::kDeviceDiagnostic, "device-diagnostic", Owner::kDevice, "diagnostic", Suffix::kNone,
     true, true},
    {Channel::kDeviceMetrics, "device-metrics", Owner::kDevice, "metrics", Suffix::kMetricName,
     true, false},
    {Channel::kDeviceLog, "device-log", Owner::kDevice, "log", Suffix::kLogLevel, true, false},
    {Channel::kDeviceControl, "device-control", Owner::kDevice, "control", Suffix::kNone, true,
     false},
    {Channel::kDeviceControlResponse, "device-control-response", Owner::kDevice, "control/response",
     Suffix::kNone, true, false},
    {Channel::kGatewayStatus, "gateway-status", Owner::kGateway, "status", Suffix::kNone, true,
     true},
    {Channel::kGatewayStatusInfo, "gateway-status-info", Owner::kGateway, "status/info",
     Suffix::kNone, true, true},
    {Channel::kGatewayDiagnostic, "gateway-diagnostic", Owner::kGateway, "diagnostic",
     Suffix::kNone, true, true},
    {Channel::kBridgeStatus, "bridge-status", Owner::kBridge, "status", Suffix::kNone, true, true},
    {Channel::kBridgeStatusInfo, "bridge-status-info", Owner::kBridge, "status/info", Suffix::kNone,
     true, true},
    {Channel::kBridgeDiagnostic, "bridge-diagnostic", Owner::kBridge, "diagnostic", Suffix::kNone,
     false, true},
    {Channel::kMemberMetrics, "member-metrics", Owner::kPlatform, "metrics", Suffix::kMetricName,
     true, true},
    {Channel::kMemberControl, "member-control", Owner::kPlatform, "control", Suffix::kNone, true,
     true},
    {Channel::kMemberControlResponse, "member-control-response", Owner::kPlatform,
     "control/response", Suffix::kNone, true, true},
    {Channel::kMemberLogs, "member-logs", Owner::kPlatform, "logs", Suffix::kLogLevel, true, true},
    {Channel::kMemberKeys, "member-keys", Owner::kPlatform, "keys", Suffix::kNone, true, true},
    {Channel::kMemberKeysResponse, "member-keys-response", Owner::kPlatform, "keys/response",
     Suffix::kNone, true, true},
    {Channel::kSecurityEvents, "security-events", Owner::kMember, "security/events", Suffix::kNone,
     true, true},
    {Channel::kPlatformSecurityEvents, "platform-security-events", Owner::kEms, "security/events",
     Suffix::kNone, false, true},
}};

constexpr std::string_view kGatewayDevice = "gateway";  // reserved: the gateway's own CN

const ChannelSpec& spec_of(Channel channel) {
  for (const auto& spec : kChannels) {
    if (spec.channel == channel) {
      return spec;
    }
  }
  return kChannels.front();  // unreachable: every enumerator has a row
}

Result<Topic> reject(std::string_view name, std::string_view reason) {
  return Result<Topic>::failure(ErrorCode::kInvalidArgument,
                                fmt::format("topic {}: {}", quote_untrusted(name, 96), reason));
}

// Why `id` is not an ID, for an error message.
std::string id_problem(std::string_view what, std::string_view id) {
  return fmt::format("invalid {} ID {} (allowed: [a-z0-9][a-z0-9-]{{0,31}})", what,
                     quote_untrusted(id));
}

bool is_metric_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool is_valid_metric_level(std::string_view level) {
  return !level.empty() && level.size() <= kMaxMetricLevelBytes && level.front() != '-' &&
         level.front() != '_' && std::all_of(level.begin(), level.end(), is_metric_char);
}

std::optional<std::string> metric_problem(std::span<const std::string_view> levels) {
  if (levels.empty()) {
    return "a metric name is missing after metrics/";
  }
  if (levels.size() > kMaxMetricLevels) {
    return fmt::format("a metric name has {} levels, at most {} are allowed", levels.size(),
                       kMaxMetricLevels);
  }
  for (auto level : levels) {
    if (!is_valid_metric_level(level)) {
      return fmt::format("invalid metric name level {} (allowed: [a-z0-9][a-z0-9_-]{{0,63}})",
                         quote_untrusted(level));
    }
  }
  return std::nullopt;
}

std::string join(std::span<const std::string_view> levels) {
  std::string out;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    out += levels[i];
  }
  return out;
}

// Matches `rest` (the levels after an owner's prefix) against the channels of `owners` in
// `form`; fills channel, metric and level of `topic`.
Result<Topic> match_channel(std::string_view name, TopicForm form,
                            std::initializer_list<Owner> owners,
                            std::span<const std::string_view> rest, Topic topic) {
  for (const auto& spec : kChannels) {
    if (std::find(owners.begin(), owners.end(), spec.owner) == owners.end() ||
        !(form == TopicForm::kLocal ? spec.local : spec.central)) {
      continue;
    }
    auto tail = split_levels(spec.tail);
    if (rest.size() < tail.size() || !std::equal(tail.begin(), tail.end(), rest.begin())) {
      continue;
    }
    auto after = rest.subspan(tail.size());
    switch (spec.suffix) {
      case Suffix::kNone:
        if (!after.empty()) {
          continue;
        }
        break;
      case Suffix::kMetricName:
        if (auto problem = metric_problem(after)) {
          return reject(name, *problem);
        }
        topic.metric = join(after);
        break;
      case Suffix::kLogLevel: {
        if (after.size() != 1) {
          continue;
        }
        auto level = parse_log_level(after.front());
        if (!level) {
          return reject(name, level.status().message);
        }
        topic.level = *level;
        break;
      }
    }
    topic.channel = spec.channel;
    return topic;
  }
  return reject(name, fmt::format("not a channel of the {} form (see docs/protocol/messages.md)",
                                  form == TopicForm::kLocal ? "local" : "central"));
}

// Checks every byte and level of a topic name; returns the levels after the leading '/'.
Result<std::vector<std::string_view>> checked_levels(std::string_view name) {
  using Levels = Result<std::vector<std::string_view>>;
  const auto fail = [&](std::string_view reason) {
    return Levels::failure(ErrorCode::kInvalidArgument,
                           fmt::format("topic {}: {}", quote_untrusted(name, 96), reason));
  };
  if (name.empty()) {
    return fail("empty");
  }
  if (name.size() > kMaxTopicBytes) {
    return fail(fmt::format("{} bytes, at most {} are allowed", name.size(), kMaxTopicBytes));
  }
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '+' || c == '#') {
      return fail("wildcards are not allowed in a topic name");
    }
    if (byte <= 0x20 || byte >= 0x7f) {
      return fail(c == '\0' ? "NUL is not allowed" : "only printable ASCII is allowed");
    }
  }
  if (name.front() != '/') {
    return fail("must start with '/'");
  }
  auto levels = split_levels(name.substr(1));
  if (std::any_of(levels.begin(), levels.end(), [](auto level) { return level.empty(); })) {
    return fail("empty level");
  }
  return levels;
}

Result<Topic> parse_local(std::string_view name, std::span<const std::string_view> levels) {
  Topic topic;
  topic.form = TopicForm::kLocal;
  const std::string_view first = levels.front();
  if (first == "device") {
    if (levels.size() < 3) {
      return reject(name, "a device topic is /device/<device>/<channel>");
    }
    if (!is_valid_identifier(levels[1])) {
      return reject(name, id_problem("device", levels[1]));
    }
    if (levels[1] == kGatewayDevice) {
      return reject(name, "device ID \"gateway\" is reserved for the smart gateway");
    }
    topic.device = std::string(levels[1]);
    return match_channel(name, TopicForm::kLocal, {Owner::kDevice}, levels.subspan(2), topic);
  }
  if (first == "smart-gateway") {
    return match_channel(name, TopicForm::kLocal, {Owner::kGateway}, levels.subspan(1), topic);
  }
  if (first == "bridge") {
    return match_channel(name, TopicForm::kLocal, {Owner::kBridge}, levels.subspan(1), topic);
  }
  if (first == "platform") {
    return match_channel(name, TopicForm::kLocal, {Owner::kPlatform}, levels.subspan(1), topic);
  }
  return match_channel(name, TopicForm::kLocal, {Owner::kMember}, levels, topic);
}

Result<Topic> parse_central(std::string_view name, std::span<const std::string_view> levels) {
  Topic topic;
  topic.form = TopicForm::kCentral;
  if (levels.size() >= 1 && levels.front() == "ems") {
    auto ems = match_channel(name, TopicForm::kCentral, {Owner::kEms}, levels.subspan(1), topic);
    if (ems) {
      return ems;
    }
    // Otherwise "ems" is an ordinary REC ID.
  }
  if (levels.size() < 3) {
    return reject(name, "a central topic is /<rec>/<member>/<channel>");
  }
  if (!is_valid_identifier(levels[0])) {
    return reject(name, id_problem("REC", levels[0]));
  }
  if (!is_valid_identifier(levels[1])) {
    return reject(name, id_problem("member", levels[1]));
  }
  topic.rec = std::string(levels[0]);
  topic.member = std::string(levels[1]);
  auto rest = levels.subspan(2);
  if (rest.front() == "device") {
    if (rest.size() < 3) {
      return reject(name, "a device topic is /<rec>/<member>/device/<device>/<channel>");
    }
    if (!is_valid_identifier(rest[1])) {
      return reject(name, id_problem("device", rest[1]));
    }
    if (rest[1] == kGatewayDevice) {
      return reject(name, "device ID \"gateway\" is reserved for the smart gateway");
    }
    topic.device = std::string(rest[1]);
    return match_channel(name, TopicForm::kCentral, {Owner::kDevice}, rest.subspan(2), topic);
  }
  if (rest.front() == "smart-gateway") {
    return match_channel(name, TopicForm::kCentral, {Owner::kGateway}, rest.subspan(1), topic);
  }
  if (rest.front() == "bridge") {
    return match_channel(name, TopicForm::kCentral, {Owner::kBridge}, rest.subspan(1), topic);
  }
  return match_channel(name, TopicForm::kCentral, {Owner::kPlatform, Owner::kMember}, rest, topic);
}

std::string prefix_of(const ChannelSpec& spec, const Topic& topic) {
  if (topic.form == TopicForm::kLocal) {
    switch (spec.owner) {
      case Owner::kDevice:
        return fmt::format("/device/{}/", topic.device);
      case Owner::kGateway:
        return "/smart-gateway/";
      case Owner::kBridge:
        return "/bridge/";
      case Owner::kPlatform:
        return "/platform/";
      case Owner::kMember:
      case Owner::kEms:
        return "/";
    }
  }
  switch (spec.owner) {
    case Owner::kDevice:
      return fmt::format("/{}/{}/device/{}/", topic.rec, topic.member, topic.device);
    case Owner::kGateway:
      return fmt::format("/{}/{}/smart-gateway/", topic.rec, topic.member);
    case Owner::kBridge:
      return fmt::format("/{}/{}/bridge/", topic.rec, topic.member);
    case Owner::kPlatform:
    case Owner::kMember:
      return fmt::format("/{}/{}/", topic.rec, topic.member);
    case Owner::kEms:
      return "/ems/";
  }
  return "/";
}

}  // namespace

std::string_view to_string(Channel channel) {
  return spec_of(channel).name;
}

bool is_device_channel(Channel channel) {
  return spec_of(channel).owner == Owner::kDevice;
}

bool has_metric_name(Channel channel) {
  return spec_of(channel).suffix == Suffix::kMetricName;
}

bool has_log_level(Channel channel) {
  return spec_of(channel).suffix == Suffix::kLogLevel;
}

bool exists_in(Channel channel, TopicForm form) {
  const auto& spec = spec_of(channel);
  return form == TopicForm::kLocal ? spec.local : spec.central;
}

Result<Topic> parse_topic(TopicForm form, std::string_view name) {
  auto levels = checked_levels(name);
  if (!levels) {
    return levels.status();
  }
  return form == TopicForm::kLocal ? parse_local(name, *levels) : parse_central(name, *levels);
}

Result<Topic> parse_local_topic(std::string_view name) {
  return parse_topic(TopicForm::kLocal, name);
}

Result<Topic> parse_central_topic(std::string_view name) {
  return parse_topic(TopicForm::kCentral, name);
}

Result<std::string> format_topic(const Topic& topic) {
  using Name = Result<std::string>;
  const auto& spec = spec_of(topic.channel);
  const auto fail = [&](std::string_view reason) {
    return Name::failure(ErrorCode::kInvalidArgument,
                         fmt::format("cannot name a {} topic: {}", spec.name, reason));
  };
  const bool local = topic.form == TopicForm::kLocal;
  if (!exists_in(topic.channel, topic.form)) {
    return fail(fmt::format("the channel has no {} form", local ? "local" : "central"));
  }
  const bool member_scoped = !local && spec.owner != Owner::kEms;
  if (member_scoped) {
    if (!is_valid_identifier(topic.rec)) {
      return fail(id_problem("REC", topic.rec));
    }
    if (!is_valid_identifier(topic.member)) {
      return fail(id_problem("member", topic.member));
    }
  } else if (!topic.rec.empty() || !topic.member.empty()) {
    return fail("rec and member apply only to central member topics");
  }
  if (spec.owner == Owner::kDevice) {
    if (!is_valid_identifier(topic.device)) {
      return fail(id_problem("device", topic.device));
    }
  } else if (!topic.device.empty()) {
    return fail("device applies only to device channels");
  }
  if (spec.suffix != Suffix::kMetricName && !topic.metric.empty()) {
    return fail("metric applies only to metrics channels");
  }
  if (spec.suffix != Suffix::kLogLevel && topic.level != LogLevel::kInfo) {
    return fail("level applies only to log channels");
  }
  std::string name = prefix_of(spec, topic);
  name += spec.tail;
  if (spec.suffix == Suffix::kMetricName) {
    name += '/';
    name += topic.metric;
  } else if (spec.suffix == Suffix::kLogLevel) {
    name += '/';
    name += to_string(topic.level);
  }
  // The parser is the grammar's one definition: what it does not read back is not a name.
  auto parsed = parse_topic(topic.form, name);
  if (!parsed) {
    return fail(parsed.status().message);
  }
  if (*parsed != topic) {
    return fail(fmt::format("{} reads back as a different topic", quote_untrusted(name, 96)));
  }
  return name;
}

Result<std::string> local_device_topic(Channel channel, std::string_view device) {
  Topic topic;
  topic.form = TopicForm::kLocal;
  topic.channel = channel;
  topic.device = device;
  return format_topic(topic);
}

Result<std::string> central_member_topic(Channel channel, std::string_view rec,
                                         std::string_view member) {
  Topic topic;
  topic.form = TopicForm::kCentral;
  topic.channel = channel;
  topic.rec = rec;
  topic.member = member;
  return format_topic(topic);
}

Result<std::string> central_device_topic(Channel channel, std::string_view rec,
                                         std::string_view member, std::string_view device) {
  Topic topic;
  topic.form = TopicForm::kCentral;
  topic.channel = channel;
  topic.rec = rec;
  topic.member = member;
  topic.device = device;
  return format_topic(topic);
}

bool is_valid_topic_filter(std::string_view filter) {
  if (filter.empty() || filter.size() > kMaxTopicBytes ||
      filter.find('\0') != std::string_view::npos || !is_valid_utf8(filter)) {
    return false;
  }
  auto levels = split_levels(filter);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    auto level = levels[i];
    bool has_wildcard = level.find_first_of("+#") != std::string_view::npos;
    if (has_wildcard && level != "+" && level != "#") {
      return false;
    }
    if (level == "#" && i + 1 != levels.size()) {
      return false;
    }
  }
  return true;
}

bool topic_matches_filter(std::string_view filter, std::string_view name) {
  if (!is_valid_topic_filter(filter) || name.empty() ||
      name.find_first_of("+#") != std::string_view::npos) {
    return false;
  }
  // MQTT: wildcards at the first level do not match names starting with '$'.
  if (name.front() == '$' && (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  return capture_wildcards(filter, name).has_value();
}

Result<std::vector<std::string>> device_subscriptions(std::string_view device) {
  auto control = local_device_topic(Channel::kDeviceControl, device);
  if (!control) {
    return control.status();
  }
  return std::vector<std::string>{*control};
}

std::vector<std::string> gateway_subscriptions() {
  return {"/device/+/status",
          "/device/+/status/info",
          "/device/+/metrics/#",
          "/device/+/log/+",
          "/device/+/control/response",
          std::string(kPlatformControlTopic),
          std::string(kPlatformKeysTopic)};
}

Result<std::vector<std::string>> gateway_subscriptions(std::span<const std::string> devices) {
  std::vector<std::string> filters;
  for (const auto& device : devices) {
    auto status = local_device_topic(Channel::kDeviceStatus, device);
    if (!status) {
      return status.status();
    }
    const std::string prefix = fmt::format("/device/{}/", device);
    for (std::string_view tail :
         {"status", "status/info", "metrics/#", "log/+", "control/response"}) {
      filters.push_back(prefix + std::string(tail));
    }
  }
  filters.emplace_back(kPlatformControlTopic);
  filters.emplace_back(kPlatformKeysTopic);
  return filters;
}

std::vector<std::string> bridge_local_subscriptions() {
  std::vector<std::string> filters;
  for (const auto& rule : bridge_rules()) {
    if (rule.direction == BridgeDirection::kOut) {
      filters.emplace_back(rule.local);
    }
  }
  return filters;
}

Result<std::vector<std::string>> bridge_central_subscriptions(std::string_view rec,
                                                              std::string_view member) {
  if (!is_valid_identifier(rec) || !is_valid_identifier(member)) {
    return Status{ErrorCode::kInvalidArgument,
                  is_valid_identifier(rec) ? id_problem("member", member) : id_problem("REC", rec)};
  }
  std::vector<std::string> filters;
  for (const auto& rule : bridge_rules()) {
    if (rule.direction == BridgeDirection::kIn) {
      filters.push_back(fill_member(rule.central, rec, member));
    }
  }
  return filters;
}

std::vector<std::string> ems_engine_subscriptions() {
  return {"/+/+/metrics/#",
          "/+/+/control/response",
          "/+/+/keys/response",
          "/+/+/device/+/status",
          "/+/+/device/+/status/info",
          "/+/+/device/+/diagnostic",
          "/+/+/smart-gateway/#",
          "/+/+/bridge/#"};
}

std::string member_logs_subscription() {
  return "/+/+/logs/+";
}

std::vector<std::string> log_management_subscriptions() {
  return {member_logs_subscription(), "/+/+/security/events",
          std::string(kPlatformSecurityEventsTopic)};
}

}  // namespace recmesh::protocol
