#include "recmesh/protocol/control_messages.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/protocol/limits.hpp"

namespace recmesh::protocol {
namespace {

using nlohmann::json;

constexpr std::string_view kMemberControl = R"({
  "control_id": "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f",
  "target": {"member_id": "m1", "device_ids": ["bat1", "pv1"]},
  "type": "device-command",
  "intent": "idempotent",
  "params": {"command": "curtail", "params": {"percentage": 40}},
  "issued_by": "ems_engine",
  "issued_at": "2025-06-01T12:00:00.000Z",
  "expire_at": "2025-06-01T12:05:00.000Z",
  "sequence": 42,
  "retry_policy": {"max_retries": 3, "backoff": {"initial": 500, "exponential": true}}
})";

constexpr std::string_view kDeviceCommand = R"({
  "control_id": "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f",
  "command_id": "0b7e5d0c-2f4a-4e61-8a3d-9c1e2f3a4b5c",
  "device_id": "pv1",
  "type": "curtail",
  "params": {"percentage": 40},
  "issued_by": "rec_r1_m1_gateway",
  "issued_at": "2025-06-01T12:00:00.250Z",
  "expire_at": "2025-06-01T12:04:00.000Z",
  "sequence": 7
})";

constexpr std::string_view kDeviceCommandResponse = R"({
  "command_id": "0b7e5d0c-2f4a-4e61-8a3d-9c1e2f3a4b5c",
  "device_id": "pv1",
  "status": "COMPLETED",
  "exit_code": 0,
  "issued_at": "2025-06-01T12:00:01.100Z",
  "details": {"applied_percentage": 40}
})";

constexpr std::string_view kMemberControlResponse = R"({
  "control_id": "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f",
  "gateway_id": "rec_r1_m1_gateway",
  "status": "PARTIAL",
  "details": {
    "general": "bat1 did not answer before the deadline",
    "per_device": [
      {"device_id": "pv1", "status": "SUCCESS", "exit_code": 0, "details": {},
       "executed_at": "2025-06-01T12:00:01.100Z"},
      {"device_id": "bat1", "status": "FAILED", "exit_code": 5, "details": "timeout",
       "executed_at": "2025-06-01T12:00:31.000Z"}
    ]
  },
  "issued_at": "2025-06-01T12:00:31.500Z"
})";

std::string canonical(std::string_view pretty) {
  return json::parse(pretty).dump();
}

template <typename T>
void expect_round_trip(std::string_view sample) {
  auto decoded = T::decode(sample);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message;
  auto encoded = decoded->encode();
  ASSERT_TRUE(encoded.ok()) << encoded.status().message;
  EXPECT_EQ(*encoded, canonical(sample));  // sorted keys, no whitespace
  auto again = T::decode(*encoded);
  ASSERT_TRUE(again.ok()) << again.status().message;
  EXPECT_EQ(*again, *decoded);
}

TEST(ControlMessagesTest, RoundTripsCanonically) {
  expect_round_trip<MemberControl>(kMemberControl);
  expect_round_trip<DeviceCommand>(kDeviceCommand);
  expect_round_trip<DeviceCommandResponse>(kDeviceCommandResponse);
  expect_round_trip<MemberControlResponse>(kMemberControlResponse);
}

TEST(ControlMessagesTest, DecodesTheFieldsOfListingOne) {
  auto m = MemberControl::decode(kMemberControl);
  ASSERT_TRUE(m.ok()) << m.status().message;
  EXPECT_EQ(m->control_id.str(), "3f6c2a9e-8b1d-4c7a-9e2f-5a1b3c4d5e6f");
  EXPECT_EQ(m->member_id, "m1");
  EXPECT_EQ(m->device_ids, (std::vector<std::string>{"bat1", "pv1"}));
  EXPECT_EQ(m->type, MemberControlType::kDeviceCommand);
  EXPECT_EQ(m->intent, ControlIntent::kIdempotent);
  EXPECT_EQ(m->params["params"]["percentage"], 40);
  EXPECT_EQ(m->issued_by, "ems_engine");
  EXPECT_EQ(format_timestamp(m->expire_at), "2025-06-01T12:05:00.000Z");
  EXPECT_EQ(m->sequence, 42u);
  EXPECT_EQ(m->retry_policy, (RetryPolicy{3, 500, true}));
}

TEST(ControlMessagesTest, BuildsAndEncodesInCode) {
  DeviceCommand c;
  c.command_id = Uuid::random_v4();
  c.device_id = "bat1";
  c.type = DeviceCommandType::kChargeMode;
  c.issued_by = "rec_r1_m1_gateway";
  c.issued_at = *parse_timestamp("2025-06-01T12:00:00.000Z");
  c.expire_at = c.issued_at + std::chrono::minutes(1);
  auto encoded = c.encode();
  ASSERT_TRUE(encoded.ok()) << encoded.status().message;
  EXPECT_NE(encoded->find("\"control_id\":null"), std::string::npos);  // scenario 3
  auto decoded = DeviceCommand::decode(*encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message;
  EXPECT_EQ(*decoded, c);
  EXPECT_FALSE(decoded->control_id.has_value());
}

TEST(ControlMessagesTest, DiagnosticCarriesSignedCommandsForItsTargetsOnly) {
  json j = json::parse(kMemberControl);
  j["type"] = "diagnostic";
  j["target"]["device_ids"] = {"pv1"};
  j["params"] = {{"signed_commands", {{"pv1", "eyJh.eyJi.c2ln"}}}};
  auto decoded = MemberControl::decode(j.dump());
  ASSERT_TRUE(decoded.ok()) << decoded.status().message;
  EXPECT_EQ(decoded->params["signed_commands"]["pv1"], "eyJh.eyJi.c2ln");
  EXPECT_EQ(MemberControl::decode(*decoded->encode()).value(), *decoded);

  j["params"] = {{"signed_commands", {{"bat1", "eyJh.eyJi.c2ln"}}}};
  auto other = MemberControl::decode(j.dump());
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message.find("params.signed_commands.bat1: not in target.device_ids"),
            std::string::npos)
      << other.status().message;
  j["params"] = {{"signed_commands", {{"pv1", "not a jws"}}}};
  EXPECT_FALSE(MemberControl::decode(j.dump()).ok());
  j["params"] = {{"signed_commands", "pv1"}};
  EXPECT_FALSE(MemberControl::decode(j.dump()).ok());
}

struct Rejection {
  std::string what;
  std::function<void(json&)> mutate;
  std::string message;  // a fragment the error must contain, usually the field's path
};

template <typename T>
void expect_rejections(std::string_view sample, const std::vector<Rejection>& cases) {
  for (const auto& c : cases) {
    json j = json::parse(sample);
    c.mutate(j);
    auto decoded = T::decode(j.dump());
    ASSERT_FALSE(decoded.ok()) << c.what;
    EXPECT_EQ(decoded.status().code, ErrorCode::kInvalidArgument) << c.what;
    EXPECT_NE(decoded.status().message.find(c.message), std::string::npos)
        << c.what << ": " << decoded.status().message;
  }
}

TEST(ControlMessagesTest, MemberControlRejectsEveryClassOfBadInput) {
  expect_rejections<MemberControl>(
      kMemberControl,
      {
          {"missing field", [](json& j) { j.erase("sequence"); }, "sequence: missing"},
          {"missing nested", [](json& j) { j["target"].erase("member_id"); },
           "target.member_id: missing"},
          {"unknown top-level field", [](json& j) { j["signature"] = "x"; },
           "unknown field \"signature\""},
          {"unknown nested field", [](json& j) { j["retry_policy"]["backoff"]["max"] = 1; },
           "retry_policy.backoff: unknown field \"max\""},
          {"wrong type", [](json& j) { j["sequence"] = "42"; }, "sequence: must be an integer"},
          {"float for integer", [](json& j) { j["sequence"] = 42.0; },
           "sequence: must be an integer"},
          {"negative sequence", [](json& j) { j["sequence"] = -1; }, "sequence: must be in"},
          {"sequence beyond 2^53", [](json& j) { j["sequence"] = std::uint64_t{1} << 53; },
           "sequence: must be in"},
          {"target not an object", [](json& j) { j["target"] = json::array(); },
           "target: must be an object"},
          {"unknown enum", [](json& j) { j["type"] = "explode"; }, "type: unknown member"},
          {"enum wrong case", [](json& j) { j["intent"] = "IDEMPOTENT"; }, "intent: unknown"},
          {"bad uuid", [](json& j) { j["control_id"] = "3F6C2A9E-8B1D-4C7A-9E2F-5A1B3C4D5E6F"; },
           "control_id"},
          {"nil uuid", [](json& j) { j["control_id"] = "00000000-0000-0000-0000-000000000000"; },
           "nil UUID"},
          {"bad member id", [](json& j) { j["target"]["member_id"] = "M1"; }, "target.member_id"},
          {"bad device id", [](json& j) { j["target"]["device_ids"][1] = "pv_1"; },
           "target.device_ids[1]"},
          {"duplicate device", [](json& j) { j["target"]["device_ids"][1] = "bat1"; },
           "listed twice"},
          {"too many devices",
           [](json& j) {
             j["target"]["device_ids"] = json::array();
             for (std::size_t i = 0; i <= kMaxDevicesPerControl; ++i) {
               j["target"]["device_ids"].push_back("d" + std::to_string(i));
             }
           },
           "at most 256"},
          {"no device for a device command",
           [](json& j) { j["target"]["device_ids"] = json::array(); },
           "target.device_ids: must list at least one device"},
          {"bad issuer", [](json& j) { j["issued_by"] = "engine"; }, "issued_by"},
          {"bad timestamp", [](json& j) { j["issued_at"] = "2025-06-01T12:00:00Z"; }, "issued_at"},
          {"offset timestamp", [](json& j) { j["issued_at"] = "2025-06-01T14:00:00.000+02:00"; },
           "issued_at"},
          {"expire before issue", [](json& j) { j["expire_at"] = "2025-06-01T11:59:59.999Z"; },
           "expire_at: must be after issued_at"},
          {"expire at issue", [](json& j) { j["expire_at"] = j["issued_at"]; },
           "expire_at: must be after issued_at"},
          {"too many retries", [](json& j) { j["retry_policy"]["max_retries"] = 17; },
           "retry_policy.max_retries"},
          {"backoff too long", [](json& j) { j["retry_policy"]["backoff"]["initial"] = 3600001; },
           "retry_policy.backoff.initial"},
          {"exponential not bool", [](json& j) { j["retry_policy"]["backoff"]["exponential"] = 1; },
           "retry_policy.backoff.exponential"},
          {"unknown device command", [](json& j) { j["params"]["command"] = "self-destruct"; },
           "params.command"},
          {"curtail without percentage", [](json& j) { j["params"]["params"] = json::object(); },
           "params.params.percentage: missing"},
          {"curtail above 100", [](json& j) { j["params"]["params"]["percentage"] = 101; },
           "params.params.percentage"},
          {"params for a command without any",
           [](json& j) {
             j["params"] = {{"command", "reboot"}, {"params", {{"now", true}}}};
           },
           "unknown field \"now\""},
          {"diagnostic with params",
           [](json& j) {
             j["type"] = "diagnostic";
             j["params"] = {{"x", 1}};
           },
           "params: unknown field"},
          {"params not an object",
           [](json& j) {
             j["type"] = "store-surplus";
             j["params"] = "all";
           },
           "params: must be an object"},
          {"params too big",
           [](json& j) {
             j["type"] = "store-surplus";
             j["params"] = {{"blob", std::string(kMaxObjectBytes, 'x')}};
           },
           "params: has"},
      });
}

TEST(ControlMessagesTest, DeviceCommandRejectsEveryClassOfBadInput) {
  expect_rejections<DeviceCommand>(
      kDeviceCommand,
      {
          {"missing control id", [](json& j) { j.erase("control_id"); }, "control_id: missing"},
          {"bad control id", [](json& j) { j["control_id"] = 5; }, "control_id: must be"},
          {"unknown command", [](json& j) { j["type"] = "power-off"; }, "type: unknown device"},
          {"percentage not an integer", [](json& j) { j["params"]["percentage"] = 40.5; },
           "params.percentage: must be an integer"},
          {"negative percentage", [](json& j) { j["params"]["percentage"] = -1; },
           "params.percentage"},
          {"reserved device id", [](json& j) { j["device_id"] = "PV1"; }, "device_id"},
          {"issuer with bad id", [](json& j) { j["issued_by"] = "rec_r1_m1_GW"; }, "issued_by"},
          {"expire before issue", [](json& j) { j["expire_at"] = "2025-06-01T12:00:00.000Z"; },
           "expire_at"},
          {"unknown field", [](json& j) { j["priority"] = 1; }, "unknown field"},
      });
}

TEST(ControlMessagesTest, DeviceCommandResponseRejectsEveryClassOfBadInput) {
  expect_rejections<DeviceCommandResponse>(
      kDeviceCommandResponse,
      {
          {"status lower case", [](json& j) { j["status"] = "completed"; }, "status: unknown"},
          {"member status", [](json& j) { j["status"] = "SUCCESS"; }, "status: unknown"},
          {"exit code beyond int32", [](json& j) { j["exit_code"] = 2147483648LL; },
           "exit_code: must be in"},
          {"failure with exit 0", [](json& j) { j["status"] = "FAILED"; },
           "exit_code: must not be 0"},
          {"success with exit 2", [](json& j) { j["exit_code"] = 2; }, "exit_code: must be 0"},
          {"details a number", [](json& j) { j["details"] = 3; }, "details: must be an object or"},
          {"details null", [](json& j) { j["details"] = nullptr; }, "details"},
          {"details text too long", [](json& j) { j["details"] = std::string(5000, 'x'); },
           "details: has 5000 bytes"},
          {"details with NUL", [](json& j) { j["details"] = std::string("a\0b", 3); },
           "without NUL"},
      });
}

TEST(ControlMessagesTest, MemberControlResponseRejectsEveryClassOfBadInput) {
  expect_rejections<MemberControlResponse>(
      kMemberControlResponse,
      {
          {"gateway id of a device", [](json& j) { j["gateway_id"] = "rec_r1_m1_pv1"; },
           "gateway_id: must be a gateway"},
          {"gateway id not a cn", [](json& j) { j["gateway_id"] = "gateway"; }, "gateway_id"},
          {"general missing", [](json& j) { j["details"].erase("general"); },
           "details.general: missing"},
          {"general a number", [](json& j) { j["details"]["general"] = 1; },
           "details.general: must be a string"},
          {"per device status", [](json& j) { j["details"]["per_device"][0]["status"] = "OK"; },
           "details.per_device[0].status"},
          {"per device exit", [](json& j) { j["details"]["per_device"][1]["exit_code"] = 0; },
           "details.per_device[1].exit_code"},
          {"per device unknown field",
           [](json& j) { j["details"]["per_device"][0]["retries"] = 1; },
           "details.per_device[0]: unknown field"},
          {"per device repeated",
           [](json& j) { j["details"]["per_device"][1]["device_id"] = "pv1"; }, "listed twice"},
          {"partial without failure", [](json& j) { j["details"]["per_device"].erase(1); },
           "PARTIAL"},
          {"success with failure", [](json& j) { j["status"] = "SUCCESS"; }, "SUCCESS"},
          {"device status COMPLETED", [](json& j) { j["status"] = "COMPLETED"; },
           "status: unknown member control status"},
      });
}

TEST(ControlMessagesTest, RejectsMalformedPayloads) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty payload"},
      {"[]", "not a JSON object"},
      {"null", "not a JSON object"},
      {"{", "not valid JSON"},
      {"{} {}", "not valid JSON"},
      {R"({"sequence": 1, "sequence": 2})", "duplicate key \"sequence\""},
      {"{\"details\": \"\xff\"}", "not valid JSON"},
      {"{\"details\": \"\xc0\xaf\"}", "not valid JSON"},  // overlong '/'
      {R"({"details": "\ud800"})", "not valid JSON"},     // lone surrogate
      {"{\"a\": 1e999}", "not valid JSON"},
      {std::string(kMaxMessageBytes + 1, ' '), "exceeds"},
      {std::string(100000, '['), "exceeds"},
      {std::string(1000, '['), "nested deeper than 16"},
      {"{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}", "nested deeper than 16"},
  };
  for (const auto& [payload, message] : cases) {
    for (auto decoded :
         {MemberControl::decode(payload).ok() ? Status{ErrorCode::kInternal, "accepted"}
                                              : MemberControl::decode(payload).status(),
          MemberControlResponse::decode(payload).ok()
              ? Status{ErrorCode::kInternal, "accepted"}
              : MemberControlResponse::decode(payload).status()}) {
      EXPECT_EQ(decoded.code, ErrorCode::kInvalidArgument) << payload.substr(0, 40);
      EXPECT_NE(decoded.message.find(message), std::string::npos)
          << payload.substr(0, 40) << " -> " << decoded.message;
      // Safe to log: no raw bytes of the payload, bounded length.
      EXPECT_TRUE(std::all_of(decoded.message.begin(), decoded.message.end(), [](char c) {
        return c >= 0x20 && c < 0x7f;
      })) << decoded.message;
      EXPECT_LT(decoded.message.size(), 300u);
    }
  }
}

TEST(ControlMessagesTest, AcceptsNestingUpToTheLimit) {
  json j = json::parse(kMemberControl);
  j["type"] = "store-surplus";
  json deep = json::object();
  for (std::size_t depth = 2; depth < kMaxJsonDepth; ++depth) {
    deep = json{{"n", deep}};
  }
  j["params"] = deep;  // params at depth 2 holds 14 more levels: 16 in all
  auto decoded = MemberControl::decode(j.dump());
  ASSERT_TRUE(decoded.ok()) << decoded.status().message;
  j["params"] = json{{"n", deep}};
  EXPECT_FALSE(MemberControl::decode(j.dump()).ok());
  // Encoding refuses the same value, so nothing leaves that a peer would refuse.
  MemberControl m = *decoded;
  m.params = json{{"n", deep}};
  auto encoded = m.encode();
  ASSERT_FALSE(encoded.ok());
  EXPECT_NE(encoded.status().message.find("nested deeper"), std::string::npos);
}

TEST(ControlMessagesTest, EncodeRefusesInvalidValuesWithoutThrowing) {
  auto base = *DeviceCommandResponse::decode(kDeviceCommandResponse);

  DeviceCommandResponse r = base;
  r.details = std::string("\xff\xfe");  // nlohmann's dump would throw on this
  EXPECT_FALSE(r.encode().ok());

  r = base;
  r.details = json{{"x", std::numeric_limits<double>::quiet_NaN()}};  // dump would write null
  auto nan = r.encode();
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message.find("not finite"), std::string::npos);

  r = base;
  r.details = json::array();
  EXPECT_FALSE(r.encode().ok());

  r = base;
  r.command_id = Uuid();
  auto empty = r.encode();
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message.find("command_id"), std::string::npos);

  MemberControl m = *MemberControl::decode(kMemberControl);
  m.expire_at = m.issued_at;
  EXPECT_FALSE(m.encode().ok());
  m = *MemberControl::decode(kMemberControl);
  m.sequence = kMaxWireInteger + 1;
  EXPECT_FALSE(m.encode().ok());
  m = *MemberControl::decode(kMemberControl);
  m.device_ids.push_back("pv1");
  EXPECT_FALSE(m.encode().ok());
}

TEST(ControlMessagesTest, EncodingDoesNotDependOnHowParamsWereBuilt) {
  auto a = *MemberControl::decode(kMemberControl);
  auto b = a;
  b.params = json::object();
  b.params["params"] = {{"percentage", 40}};
  b.params["command"] = "curtail";
  EXPECT_EQ(*a.encode(), *b.encode());
}

TEST(ControlMessagesTest, EnumNamesRoundTrip) {
  for (auto t : {MemberControlType::kDiagnostic, MemberControlType::kDeviceCommand,
                 MemberControlType::kStoreSurplus, MemberControlType::kCoverDeficit,
                 MemberControlType::kActivateLoad}) {
    EXPECT_EQ(*parse_member_control_type(to_string(t)), t);
  }
  for (auto s : {MemberControlStatus::kReceived, MemberControlStatus::kExecuting,
                 MemberControlStatus::kSuccess, MemberControlStatus::kPartial,
                 MemberControlStatus::kFailed}) {
    EXPECT_EQ(*parse_member_control_status(to_string(s)), s);
  }
  for (auto s : {DeviceCommandStatus::kReceived, DeviceCommandStatus::kExecuting,
                 DeviceCommandStatus::kCompleted, DeviceCommandStatus::kFailed}) {
    EXPECT_EQ(*parse_device_command_status(to_string(s)), s);
  }
  EXPECT_EQ(*parse_control_intent("non-idempotent"), ControlIntent::kNonIdempotent);
  EXPECT_EQ(*parse_device_outcome("FAILED"), DeviceOutcome::kFailed);
  auto bad = parse_member_control_status("DONE");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message.find("RECEIVED, EXECUTING, SUCCESS, PARTIAL or FAILED"),
            std::string::npos)
      << bad.status().message;
}

}  // namespace
}  // namespace recmesh::protocol
