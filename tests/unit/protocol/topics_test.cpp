#include "recmesh/protocol/topics.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/core/identifier.hpp"
#include "recmesh/protocol/limits.hpp"

namespace recmesh::protocol {
namespace {

Topic local(Channel channel, std::string device = {}, std::string metric = {},
            LogLevel level = LogLevel::kInfo) {
  Topic t;
  t.form = TopicForm::kLocal;
  t.channel = channel;
  t.device = std::move(device);
  t.metric = std::move(metric);
  t.level = level;
  return t;
}

Topic central(Channel channel, std::string device = {}, std::string metric = {},
              LogLevel level = LogLevel::kInfo) {
  Topic t = local(channel, std::move(device), std::move(metric), level);
  t.form = TopicForm::kCentral;
  t.rec = "r1";
  t.member = "m1";
  return t;
}

struct Case {
  std::string name;
  Topic topic;
};

std::vector<Case> local_cases() {
  return {
      {"/device/pv1/status", local(Channel::kDeviceStatus, "pv1")},
      {"/device/pv1/status/info", local(Channel::kDeviceStatusInfo, "pv1")},
      {"/device/pv1/diagnostic", local(Channel::kDeviceDiagnostic, "pv1")},
      {"/device/pv1/metrics/snapshot", local(Channel::kDeviceMetrics, "pv1", "snapshot")},
      {"/device/pv1/metrics/dc/string_1", local(Channel::kDeviceMetrics, "pv1", "dc/string_1")},
      {"/device/pv1/log/ERROR", local(Channel::kDeviceLog, "pv1", {}, LogLevel::kError)},
      {"/device/pv1/log/DEBUG", local(Channel::kDeviceLog, "pv1", {}, LogLevel::kDebug)},
      {"/device/pv1/control", local(Channel::kDeviceControl, "pv1")},
      {"/device/pv1/control/response", local(Channel::kDeviceControlResponse, "pv1")},
      {"/smart-gateway/status", local(Channel::kGatewayStatus)},
      {"/smart-gateway/status/info", local(Channel::kGatewayStatusInfo)},
      {"/smart-gateway/diagnostic", local(Channel::kGatewayDiagnostic)},
      {"/bridge/status", local(Channel::kBridgeStatus)},
      {"/bridge/status/info", local(Channel::kBridgeStatusInfo)},
      {"/platform/metrics/aggregate", local(Channel::kMemberMetrics, {}, "aggregate")},
      {"/platform/control", local(Channel::kMemberControl)},
      {"/platform/control/response", local(Channel::kMemberControlResponse)},
      {"/platform/logs/FATAL", local(Channel::kMemberLogs, {}, {}, LogLevel::kFatal)},
      {"/platform/keys", local(Channel::kMemberKeys)},
      {"/platform/keys/response", local(Channel::kMemberKeysResponse)},
      {"/security/events", local(Channel::kSecurityEvents)},
  };
}

std::vector<Case> central_cases() {
  Topic ems;
  ems.form = TopicForm::kCentral;
  ems.channel = Channel::kPlatformSecurityEvents;
  return {
      {"/r1/m1/device/pv1/status", central(Channel::kDeviceStatus, "pv1")},
      {"/r1/m1/device/pv1/status/info", central(Channel::kDeviceStatusInfo, "pv1")},
      {"/r1/m1/device/pv1/diagnostic", central(Channel::kDeviceDiagnostic, "pv1")},
      {"/r1/m1/smart-gateway/status", central(Channel::kGatewayStatus)},
      {"/r1/m1/smart-gateway/status/info", central(Channel::kGatewayStatusInfo)},
      {"/r1/m1/smart-gateway/diagnostic", central(Channel::kGatewayDiagnostic)},
      {"/r1/m1/bridge/status", central(Channel::kBridgeStatus)},
      {"/r1/m1/bridge/status/info", central(Channel::kBridgeStatusInfo)},
      {"/r1/m1/bridge/diagnostic", central(Channel::kBridgeDiagnostic)},
      {"/r1/m1/metrics/aggregate", central(Channel::kMemberMetrics, {}, "aggregate")},
      {"/r1/m1/metrics/pv/energy-today", central(Channel::kMemberMetrics, {}, "pv/energy-today")},
      {"/r1/m1/control", central(Channel::kMemberControl)},
      {"/r1/m1/control/response", central(Channel::kMemberControlResponse)},
      {"/r1/m1/logs/WARN", central(Channel::kMemberLogs, {}, {}, LogLevel::kWarn)},
      {"/r1/m1/keys", central(Channel::kMemberKeys)},
      {"/r1/m1/keys/response", central(Channel::kMemberKeysResponse)},
      {"/r1/m1/security/events", central(Channel::kSecurityEvents)},
      {"/ems/security/events", ems},
  };
}

TEST(TopicsTest, ParsesEveryLocalChannel) {
  for (const auto& c : local_cases()) {
    auto parsed = parse_local_topic(c.name);
    ASSERT_TRUE(parsed.ok()) << c.name << ": " << parsed.status().message;
    EXPECT_EQ(*parsed, c.topic) << c.name;
    auto formatted = format_topic(c.topic);
    ASSERT_TRUE(formatted.ok()) << formatted.status().message;
    EXPECT_EQ(*formatted, c.name);
  }
}

TEST(TopicsTest, ParsesEveryCentralChannel) {
  for (const auto& c : central_cases()) {
    auto parsed = parse_central_topic(c.name);
    ASSERT_TRUE(parsed.ok()) << c.name << ": " << parsed.status().message;
    EXPECT_EQ(*parsed, c.topic) << c.name;
    auto formatted = format_topic(c.topic);
    ASSERT_TRUE(formatted.ok()) << formatted.status().message;
    EXPECT_EQ(*formatted, c.name);
  }
}

TEST(TopicsTest, EveryChannelHasACaseInEachFormItExistsIn) {
  for (int i = 0; i <= static_cast<int>(Channel::kPlatformSecurityEvents); ++i) {
    auto channel = static_cast<Channel>(i);
    for (auto form : {TopicForm::kLocal, TopicForm::kCentral}) {
      auto cases = form == TopicForm::kLocal ? local_cases() : central_cases();
      bool covered = false;
      for (const auto& c : cases) {
        covered = covered || c.topic.channel == channel;
      }
      EXPECT_EQ(covered, exists_in(channel, form)) << to_string(channel);
    }
  }
}

TEST(TopicsTest, TheFormDecidesHowAmbiguousNamesRead) {
  // A REC called "device" with a member "pv1": the same bytes are two different flows.
  auto as_local = parse_local_topic("/device/pv1/control");
  auto as_central = parse_central_topic("/device/pv1/control");
  ASSERT_TRUE(as_local.ok());
  ASSERT_TRUE(as_central.ok());
  EXPECT_EQ(as_local->channel, Channel::kDeviceControl);
  EXPECT_EQ(as_central->channel, Channel::kMemberControl);
  EXPECT_EQ(as_central->rec, "device");
  // "ems" is an ordinary REC ID except for the platform's own security events.
  auto ems_member = parse_central_topic("/ems/m1/control");
  ASSERT_TRUE(ems_member.ok());
  EXPECT_EQ(ems_member->rec, "ems");
}

TEST(TopicsTest, ParseTopicDispatchesOnTheForm) {
  EXPECT_TRUE(parse_topic(TopicForm::kLocal, "/platform/control").ok());
  EXPECT_FALSE(parse_topic(TopicForm::kCentral, "/platform/control").ok());
  EXPECT_TRUE(parse_topic(TopicForm::kCentral, "/r1/m1/control").ok());
  EXPECT_FALSE(parse_topic(TopicForm::kLocal, "/r1/m1/control").ok());
}

void expect_rejected(TopicForm form, const std::string& name, const std::string& reason) {
  auto parsed = parse_topic(form, name);
  ASSERT_FALSE(parsed.ok()) << quote_untrusted(name, 200);
  EXPECT_EQ(parsed.status().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message.find(reason), std::string::npos)
      << quote_untrusted(name, 200) << " -> " << parsed.status().message;
}

TEST(TopicsTest, RejectsEveryMalformedName) {
  const auto local_form = TopicForm::kLocal;
  const auto central_form = TopicForm::kCentral;
  expect_rejected(local_form, "", "empty");
  expect_rejected(local_form, "device/pv1/status", "must start with '/'");
  expect_rejected(local_form, "/device//status", "empty level");
  expect_rejected(local_form, "/device/pv1/status/", "empty level");
  expect_rejected(local_form, "//device/pv1/status", "empty level");
  expect_rejected(local_form, "/device/+/status", "wildcards");
  expect_rejected(local_form, "/platform/metrics/#", "wildcards");
  expect_rejected(central_form, "/+/+/control", "wildcards");
  expect_rejected(local_form, std::string("/device/pv1\0/status", 19), "NUL");
  expect_rejected(local_form, "/device/pv\xc3\xa9/status", "printable ASCII");
  expect_rejected(local_form, "/device/pv 1/status", "printable ASCII");
  expect_rejected(local_form, "/platform/metrics/" + std::string(kMaxTopicBytes, 'a'), "bytes");
  expect_rejected(local_form, "/device/PV1/status", "invalid device ID");
  expect_rejected(local_form, "/device/pv_1/status", "invalid device ID");
  expect_rejected(local_form, "/device/-pv/status", "invalid device ID");
  expect_rejected(local_form, "/device/" + std::string(33, 'a') + "/status", "invalid device ID");
  expect_rejected(local_form, "/device/gateway/status", "reserved");
  expect_rejected(central_form, "/R1/m1/control", "invalid REC ID");
  expect_rejected(central_form, "/r1/m_1/control", "invalid member ID");
  expect_rejected(central_form, "/r1/m1/device/Pv/status", "invalid device ID");
  expect_rejected(local_form, "/device/pv1/log/error", "unknown log level");
  expect_rejected(local_form, "/platform/logs/NOTICE", "unknown log level");
  expect_rejected(local_form, "/device/pv1/metrics", "metric name is missing");
  expect_rejected(local_form, "/device/pv1/metrics/Power", "invalid metric name level");
  expect_rejected(local_form, "/device/pv1/metrics/a/b/c/d/e/f/g/h/i", "levels");
  expect_rejected(local_form, "/device/pv1/status/extra", "not a channel");
  expect_rejected(local_form, "/device/pv1", "a device topic is");
  expect_rejected(local_form, "/device/pv1/log", "not a channel");
  expect_rejected(local_form, "/device/pv1/log/ERROR/x", "not a channel");
  expect_rejected(local_form, "/platform/unknown", "not a channel");
  expect_rejected(local_form, "/bridge/diagnostic", "not a channel");  // central only
  expect_rejected(local_form, "/ems/security/events", "not a channel");
  expect_rejected(central_form, "/r1/m1/device/pv1/metrics/snapshot",
                  "not a channel");  // local only
  expect_rejected(central_form, "/r1/m1/device/pv1/control", "not a channel");
  expect_rejected(central_form, "/r1/m1/platform/control", "not a channel");
  expect_rejected(central_form, "/r1/m1", "a central topic is");
  expect_rejected(central_form, "/r1/m1/smart-gateway", "not a channel");
  expect_rejected(central_form, "/ems/security", "a central topic is");
}

TEST(TopicsTest, AcceptsLimitsExactly) {
  std::string id32(32, 'a');
  EXPECT_TRUE(parse_local_topic("/device/" + id32 + "/status").ok());
  std::string name = "/platform/metrics/a";
  std::string eight = "/device/pv1/metrics/a/b/c/d/e/f/g/h";
  EXPECT_TRUE(parse_local_topic(eight).ok());
  EXPECT_TRUE(parse_local_topic("/device/pv1/metrics/" + std::string(64, 'x')).ok());
  EXPECT_FALSE(parse_local_topic("/device/pv1/metrics/" + std::string(65, 'x')).ok());
}

TEST(TopicsTest, FormatRejectsWhatParseWould) {
  Topic t = local(Channel::kDeviceStatus, "PV1");
  EXPECT_FALSE(format_topic(t).ok());
  t = local(Channel::kDeviceStatus, "pv1/status/info");
  EXPECT_FALSE(format_topic(t).ok());
  t = local(Channel::kBridgeDiagnostic);
  EXPECT_FALSE(format_topic(t).ok());  // central only
  t = local(Channel::kMemberControl, "pv1");
  EXPECT_FALSE(format_topic(t).ok());  // device does not apply
  t = local(Channel::kMemberControl, {}, {}, LogLevel::kError);
  EXPECT_FALSE(format_topic(t).ok());  // level does not apply
  t = local(Channel::kMemberMetrics, {}, "");
  EXPECT_FALSE(format_topic(t).ok());  // metric name missing
  t = local(Channel::kMemberMetrics, {}, "a//b");
  EXPECT_FALSE(format_topic(t).ok());
  t = central(Channel::kMemberControl);
  t.rec = "";
  EXPECT_FALSE(format_topic(t).ok());
  t = local(Channel::kMemberControl);
  t.rec = "r1";
  EXPECT_FALSE(format_topic(t).ok());  // rec only in the central form
}

TEST(TopicsTest, ConvenienceBuilders) {
  EXPECT_EQ(*local_device_topic(Channel::kDeviceControl, "ev-1"), "/device/ev-1/control");
  EXPECT_EQ(*central_member_topic(Channel::kMemberControl, "r1", "m1"), "/r1/m1/control");
  EXPECT_EQ(*central_device_topic(Channel::kDeviceStatus, "r1", "m1", "pv1"),
            "/r1/m1/device/pv1/status");
  EXPECT_FALSE(local_device_topic(Channel::kDeviceControl, "ev_1").ok());
  EXPECT_FALSE(local_device_topic(Channel::kMemberControl, "ev1").ok());
  EXPECT_FALSE(central_member_topic(Channel::kMemberControl, "r1", "").ok());
}

TEST(TopicsTest, FixedTopicConstantsParse) {
  for (auto name :
       {kGatewayStatusTopic, kGatewayStatusInfoTopic, kGatewayDiagnosticTopic, kBridgeStatusTopic,
        kBridgeStatusInfoTopic, kPlatformControlTopic, kPlatformControlResponseTopic,
        kPlatformKeysTopic, kPlatformKeysResponseTopic, kSecurityEventsTopic}) {
    EXPECT_TRUE(parse_local_topic(name).ok()) << name;
  }
  EXPECT_TRUE(parse_central_topic(kPlatformSecurityEventsTopic).ok());
}

TEST(TopicsTest, ValidatesFilters) {
  for (const char* good : {"/device/+/metrics/#", "/+/+/control/response", "#", "+", "/", "a",
                           "/device/pv1/control"}) {
    EXPECT_TRUE(is_valid_topic_filter(good)) << good;
  }
  for (const std::string& bad : std::vector<std::string>{
           "", "/device/pv+/status", "/a/#/b", "/a/b#", "/a/#b", std::string("/a\0b", 4),
           std::string(kMaxTopicBytes + 1, 'a'), "/a/\xff"}) {
    EXPECT_FALSE(is_valid_topic_filter(bad)) << quote_untrusted(bad);
  }
}

TEST(TopicsTest, MatchesFiltersAsMqttDoes) {
  EXPECT_TRUE(topic_matches_filter("/device/+/metrics/#", "/device/pv1/metrics/snapshot"));
  EXPECT_TRUE(topic_matches_filter("/device/+/metrics/#", "/device/pv1/metrics/a/b"));
  EXPECT_TRUE(topic_matches_filter("/device/+/metrics/#", "/device/pv1/metrics"));
  EXPECT_FALSE(topic_matches_filter("/device/+/metrics/#", "/device/pv1/log/INFO"));
  EXPECT_TRUE(topic_matches_filter("/+/+/control/response", "/r1/m1/control/response"));
  EXPECT_FALSE(topic_matches_filter("/+/+/control/response", "/r1/m1/control"));
  EXPECT_FALSE(topic_matches_filter("/+/+/control", "/r1/m1/control/response"));
  EXPECT_TRUE(topic_matches_filter("#", "/anything/at/all"));
  EXPECT_FALSE(topic_matches_filter("#", "$SYS/broker/uptime"));
  EXPECT_FALSE(topic_matches_filter("+/broker/uptime", "$SYS/broker/uptime"));
  EXPECT_FALSE(topic_matches_filter("/device/+/status", "/device/+/status"));
  EXPECT_FALSE(topic_matches_filter("/a/#/b", "/a/x/b"));
}

TEST(TopicsTest, RoleSubscriptionsAreValidFilters) {
  std::vector<std::vector<std::string>> all = {
      *device_subscriptions("pv1"),
      gateway_subscriptions(),
      *gateway_subscriptions(std::vector<std::string>{"pv1", "bat1"}),
      bridge_local_subscriptions(),
      *bridge_central_subscriptions("r1", "m1"),
      ems_engine_subscriptions(),
      log_management_subscriptions()};
  for (const auto& filters : all) {
    EXPECT_FALSE(filters.empty());
    for (const auto& filter : filters) {
      EXPECT_TRUE(is_valid_topic_filter(filter)) << filter;
    }
  }
  EXPECT_FALSE(device_subscriptions("PV1").ok());
  EXPECT_FALSE(gateway_subscriptions(std::vector<std::string>{"pv1", "gw_1"}).ok());
  EXPECT_FALSE(bridge_central_subscriptions("r1", "M1").ok());
}

TEST(TopicsTest, GatewaySubscribesAsTheThesisSays) {
  auto filters = gateway_subscriptions();
  EXPECT_NE(std::find(filters.begin(), filters.end(), "/device/+/metrics/#"), filters.end());
  EXPECT_NE(std::find(filters.begin(), filters.end(), "/device/+/log/+"), filters.end());
  EXPECT_NE(std::find(filters.begin(), filters.end(), "/device/+/control/response"), filters.end());
  EXPECT_EQ(std::find(filters.begin(), filters.end(), "/device/+/diagnostic"), filters.end());
  auto ems = ems_engine_subscriptions();
  EXPECT_NE(std::find(ems.begin(), ems.end(), "/+/+/control/response"), ems.end());
}

// SPEC §6: every topic and filter of the access matrix, with r = r1, m = m1, <d> = pv1. A
// filter comes with a name it must match; every name must parse in its broker's form.
struct MatrixEntry {
  std::string pattern;
  std::string example;  // equal to pattern when it holds no wildcard
};

struct MatrixRow {
  std::string identity;
  TopicForm form;
  std::vector<MatrixEntry> write;
  std::vector<MatrixEntry> read;
};

std::vector<MatrixRow> access_matrix() {
  const auto local_form = TopicForm::kLocal;
  const auto central_form = TopicForm::kCentral;
  return {
      {"rec_r1_m1_pv1",
       local_form,
       {{"/device/pv1/status", "/device/pv1/status"},
        {"/device/pv1/status/info", "/device/pv1/status/info"},
        {"/device/pv1/diagnostic", "/device/pv1/diagnostic"},
        {"/device/pv1/metrics/#", "/device/pv1/metrics/snapshot"},
        {"/device/pv1/log/+", "/device/pv1/log/ERROR"},
        {"/device/pv1/control/response", "/device/pv1/control/response"}},
       {{"/device/pv1/control", "/device/pv1/control"}}},
      {"rec_r1_m1_gateway",
       local_form,
       {{"/device/pv1/control", "/device/pv1/control"},
        {"/platform/metrics/#", "/platform/metrics/aggregate"},
        {"/platform/control/response", "/platform/control/response"},
        {"/platform/logs/+", "/platform/logs/CRITICAL"},
        {"/platform/keys/response", "/platform/keys/response"},
        {"/smart-gateway/status", "/smart-gateway/status"},
        {"/smart-gateway/status/info", "/smart-gateway/status/info"},
        {"/smart-gateway/diagnostic", "/smart-gateway/diagnostic"}},
       {{"/device/pv1/status", "/device/pv1/status"},
        {"/device/pv1/status/info", "/device/pv1/status/info"},
        {"/device/pv1/metrics/#", "/device/pv1/metrics/snapshot"},
        {"/device/pv1/log/+", "/device/pv1/log/INFO"},
        {"/device/pv1/control/response", "/device/pv1/control/response"},
        {"/platform/control", "/platform/control"},
        {"/platform/keys", "/platform/keys"}}},
      {"bridge_r1_m1 (local)",
       local_form,
       {{"/platform/control", "/platform/control"},
        {"/platform/keys", "/platform/keys"},
        {"/bridge/status", "/bridge/status"}},
       {{"/device/+/status", "/device/pv1/status"},
        {"/device/+/status/info", "/device/pv1/status/info"},
        {"/smart-gateway/status", "/smart-gateway/status"},
        {"/smart-gateway/status/info", "/smart-gateway/status/info"},
        {"/device/+/diagnostic", "/device/pv1/diagnostic"},
        {"/smart-gateway/diagnostic", "/smart-gateway/diagnostic"},
        {"/platform/metrics/#", "/platform/metrics/aggregate"},
        {"/platform/control/response", "/platform/control/response"},
        {"/platform/logs/+", "/platform/logs/ERROR"},
        {"/platform/keys/response", "/platform/keys/response"},
        {"/security/events", "/security/events"}}},
      {"bridge_r1_m1 (central)",
       central_form,
       {{"/r1/m1/device/+/status", "/r1/m1/device/pv1/status"},
        {"/r1/m1/device/+/status/info", "/r1/m1/device/pv1/status/info"},
        {"/r1/m1/smart-gateway/status", "/r1/m1/smart-gateway/status"},
        {"/r1/m1/smart-gateway/status/info", "/r1/m1/smart-gateway/status/info"},
        {"/r1/m1/device/+/diagnostic", "/r1/m1/device/pv1/diagnostic"},
        {"/r1/m1/smart-gateway/diagnostic", "/r1/m1/smart-gateway/diagnostic"},
        {"/r1/m1/metrics/#", "/r1/m1/metrics/aggregate"},
        {"/r1/m1/control/response", "/r1/m1/control/response"},
        {"/r1/m1/logs/+", "/r1/m1/logs/FATAL"},
        {"/r1/m1/keys/response", "/r1/m1/keys/response"},
        {"/r1/m1/security/events", "/r1/m1/security/events"},
        {"/r1/m1/bridge/status", "/r1/m1/bridge/status"},
        {"/r1/m1/bridge/diagnostic", "/r1/m1/bridge/diagnostic"}},
       {{"/r1/m1/control", "/r1/m1/control"}, {"/r1/m1/keys", "/r1/m1/keys"}}},
      {"ems_engine",
       central_form,
       {{"/+/+/control", "/r1/m1/control"}, {"/+/+/keys", "/r1/m1/keys"}},
       {{"/+/+/metrics/#", "/r1/m1/metrics/aggregate"},
        {"/+/+/control/response", "/r1/m1/control/response"},
        {"/+/+/keys/response", "/r1/m1/keys/response"},
        {"/+/+/device/+/status", "/r1/m1/device/pv1/status"},
        {"/+/+/device/+/status/info", "/r1/m1/device/pv1/status/info"},
        {"/+/+/device/+/diagnostic", "/r1/m1/device/pv1/diagnostic"},
        {"/+/+/smart-gateway/#", "/r1/m1/smart-gateway/status/info"},
        {"/+/+/bridge/#", "/r1/m1/bridge/diagnostic"}}},
      {"ems_lms",
       central_form,
       {},
       {{"/+/+/logs/+", "/r1/m1/logs/ERROR"},
        {"/+/+/security/events", "/r1/m1/security/events"},
        {"/ems/security/events", "/ems/security/events"}}},
  };
}

std::vector<std::string> patterns(const std::vector<MatrixEntry>& entries) {
  std::vector<std::string> out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    out.push_back(e.pattern);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(TopicsTest, EveryTopicOfTheAccessMatrixParses) {
  for (const auto& row : access_matrix()) {
    for (const auto* entries : {&row.write, &row.read}) {
      for (const auto& entry : *entries) {
        EXPECT_TRUE(is_valid_topic_filter(entry.pattern)) << row.identity << " " << entry.pattern;
        EXPECT_TRUE(topic_matches_filter(entry.pattern, entry.example))
            << row.identity << " " << entry.pattern << " vs " << entry.example;
        auto parsed = parse_topic(row.form, entry.example);
        EXPECT_TRUE(parsed.ok()) << row.identity << " " << entry.example << ": "
                                 << (parsed.ok() ? "" : parsed.status().message);
      }
    }
  }
}

TEST(TopicsTest, RoleSubscriptionsAreTheReadColumnOfTheMatrix) {
  auto rows = access_matrix();
  EXPECT_EQ(sorted(*device_subscriptions("pv1")), patterns(rows[0].read));
  EXPECT_EQ(sorted(*gateway_subscriptions(std::vector<std::string>{"pv1"})),
            patterns(rows[1].read));
  EXPECT_EQ(sorted(bridge_local_subscriptions()), patterns(rows[2].read));
  EXPECT_EQ(sorted(*bridge_central_subscriptions("r1", "m1")), patterns(rows[3].read));
  EXPECT_EQ(sorted(ems_engine_subscriptions()), patterns(rows[4].read));
  EXPECT_EQ(sorted(log_management_subscriptions()), patterns(rows[5].read));
  // The wildcard form of the gateway's subscriptions covers the same names.
  for (const auto& entry : rows[1].read) {
    auto filters = gateway_subscriptions();
    EXPECT_TRUE(std::any_of(filters.begin(), filters.end(), [&](const auto& f) {
      return topic_matches_filter(f, entry.example);
    })) << entry.example;
  }
}

}  // namespace
}  // namespace recmesh::protocol
