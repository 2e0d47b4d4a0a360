#include "recmesh/protocol/control_messages.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "recmesh/pki/identity.hpp"
#include "recmesh/protocol/limits.hpp"

#include "enum_names.hpp"
#include "json_codec.hpp"

namespace recmesh::protocol {
namespace {

constexpr EnumNames<MemberControlType, 5> kControlTypeNames{{
    {MemberControlType::kDiagnostic, "diagnostic"},
    {MemberControlType::kDeviceCommand, "device-command"},
    {MemberControlType::kStoreSurplus, "store-surplus"},
    {MemberControlType::kCoverDeficit, "cover-deficit"},
    {MemberControlType::kActivateLoad, "activate-load"},
}};

constexpr EnumNames<ControlIntent, 2> kIntentNames{{
    {ControlIntent::kIdempotent, "idempotent"},
    {ControlIntent::kNonIdempotent, "non-idempotent"},
}};

constexpr EnumNames<DeviceCommandStatus, 4> kCommandStatusNames{{
    {DeviceCommandStatus::kReceived, "RECEIVED"},
    {DeviceCommandStatus::kExecuting, "EXECUTING"},
    {DeviceCommandStatus::kCompleted, "COMPLETED"},
    {DeviceCommandStatus::kFailed, "FAILED"},
}};

constexpr EnumNames<MemberControlStatus, 5> kControlStatusNames{{
    {MemberControlStatus::kReceived, "RECEIVED"},
    {MemberControlStatus::kExecuting, "EXECUTING"},
    {MemberControlStatus::kSuccess, "SUCCESS"},
    {MemberControlStatus::kPartial, "PARTIAL"},
    {MemberControlStatus::kFailed, "FAILED"},
}};

constexpr EnumNames<DeviceOutcome, 2> kOutcomeNames{{
    {DeviceOutcome::kSuccess, "SUCCESS"},
    {DeviceOutcome::kFailed, "FAILED"},
}};

constexpr std::uint64_t kMaxRetries = 16;
constexpr std::uint64_t kMaxBackoffMs = 3'600'000;
constexpr std::int64_t kMinExitCode = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kMaxExitCode = std::numeric_limits<std::int32_t>::max();

// The params of one device command at nesting `depth`: curtail takes exactly a percentage,
// every other command nothing.
json read_command_params(DeviceCommandType type, const json& value, std::size_t depth,
                         const std::string& path, DecodeErrors& errors) {
  ObjectReader params(value, path, errors, depth);
  if (type == DeviceCommandType::kCurtail) {
    (void)params.unsigned_integer("percentage", 100);
  }
  params.finish();
  return errors.failed() ? json::object() : value;
}

// A diagnostic's params: {} or {"signed_commands": {<device>: <JWS>}}, the EMS-signed
// DeviceCommand for each target device, which the gateway forwards unchanged.
json read_diagnostic_params(const json& value, std::size_t depth, const std::string& path,
                            const std::vector<std::string>& devices, DecodeErrors& errors) {
  ObjectReader params(value, path, errors, depth);
  if (const json* commands = params.optional("signed_commands"); commands != nullptr) {
    const std::string commands_path = params.path("signed_commands");
    if (!commands->is_object()) {
      errors.fail(commands_path, "must be an object");
    } else {
      for (const auto& [device, jws] : commands->items()) {
        const std::string item_path = join_path(commands_path, device);
        if (std::find(devices.begin(), devices.end(), device) == devices.end()) {
          errors.fail(item_path, "not in target.device_ids");
          break;
        }
        if (!jws.is_string() || jws.get_ref<const std::string&>().empty() ||
            jws.get_ref<const std::string&>().find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                std::string::npos) {
          errors.fail(item_path, "must be a JWS compact serialization");
          break;
        }
      }
    }
  }
  params.finish();
  return errors.failed() ? json::object() : value;
}

// A list of distinct device IDs at `path`.
std::vector<std::string> read_device_ids(ObjectReader& reader, std::string_view key) {
  std::vector<std::string> ids;
  const std::string path = reader.path(key);
  for (const json* item : reader.array(key, kMaxDevicesPerControl)) {
    std::string id = read_identifier(*item, index_path(path, ids.size()), reader.errors());
    if (reader.errors().failed()) {
      return {};
    }
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      reader.errors().fail(index_path(path, ids.size()),
                           fmt::format("device \"{}\" is listed twice", id));
      return {};
    }
    ids.push_back(std::move(id));
  }
  return ids;
}

void require_after(ObjectReader& reader, Timestamp earlier, Timestamp later,
                   std::string_view later_key, std::string_view earlier_key) {
  if (!reader.errors().failed() && later <= earlier) {
    reader.errors().fail(reader.path(later_key), fmt::format("must be after {}", earlier_key));
  }
}

// 0 while a command is pending or done, anything else when it failed.
void check_exit_code(ObjectReader& reader, bool failed, std::int64_t exit_code) {
  if (reader.errors().failed()) {
    return;
  }
  if (failed && exit_code == kExitOk) {
    reader.errors().fail(reader.path("exit_code"), "must not be 0 when status is FAILED");
  } else if (!failed && exit_code != kExitOk) {
    reader.errors().fail(reader.path("exit_code"), "must be 0 unless status is FAILED");
  }
}

MemberControl read_member_control(ObjectReader& r) {
  MemberControl m;
  m.control_id = r.uuid("control_id");
  if (const json* target = r.required("target")) {
    ObjectReader t(*target, r.path("target"), r.errors(), r.depth() + 1);
    m.member_id = t.identifier("member_id");
    m.device_ids = read_device_ids(t, "device_ids");
    t.finish();
  }
  m.type = r.enumeration("type", parse_member_control_type);
  m.intent = r.enumeration("intent", parse_control_intent);
  if (const json* params = r.required("params"); params != nullptr && !r.errors().failed()) {
    const std::size_t depth = r.depth() + 1;
    switch (m.type) {
      case MemberControlType::kDiagnostic:
        m.params =
            read_diagnostic_params(*params, depth, r.path("params"), m.device_ids, r.errors());
        break;
      case MemberControlType::kDeviceCommand: {
        ObjectReader p(*params, r.path("params"), r.errors(), depth);
        auto command = p.enumeration("command", parse_device_command_type);
        if (const json* inner = p.required("params"); inner != nullptr && !r.errors().failed()) {
          (void)read_command_params(command, *inner, depth + 1, p.path("params"), r.errors());
        }
        p.finish();
        m.params = r.errors().failed() ? json::object() : *params;
        break;
      }
      case MemberControlType::kStoreSurplus:
      case MemberControlType::kCoverDeficit:
      case MemberControlType::kActivateLoad:
        m.params = read_free_object(*params, depth, r.path("params"), r.errors());
        break;
    }
  }
  const bool needs_devices = m.type == MemberControlType::kDiagnostic ||
                             m.type == MemberControlType::kDeviceCommand ||
                             m.type == MemberControlType::kActivateLoad;
  if (!r.errors().failed() && needs_devices && m.device_ids.empty()) {
    r.errors().fail("target.device_ids",
                    fmt::format("must list at least one device for {}", to_string(m.type)));
  }
  m.issued_by = r.common_name("issued_by");
  m.issued_at = r.timestamp("issued_at");
  m.expire_at = r.timestamp("expire_at");
  require_after(r, m.issued_at, m.expire_at, "expire_at", "issued_at");
  m.sequence = r.unsigned_integer("sequence", kMaxWireInteger);
  if (const json* policy = r.required("retry_policy")) {
    ObjectReader p(*policy, r.path("retry_policy"), r.errors(), r.depth() + 1);
    m.retry_policy.max_retries =
        static_cast<std::uint32_t>(p.unsigned_integer("max_retries", kMaxRetries));
    if (const json* backoff = p.required("backoff")) {
      ObjectReader b(*backoff, p.path("backoff"), r.errors(), p.depth() + 1);
      m.retry_policy.backoff_initial_ms =
          static_cast<std::uint32_t>(b.unsigned_integer("initial", kMaxBackoffMs));
      m.retry_policy.backoff_exponential = b.boolean("exponential");
      b.finish();
    }
    p.finish();
  }
  return m;
}

json to_json(const MemberControl& m) {
  json target = json::object();
  target["member_id"] = m.member_id;
  target["device_ids"] = m.device_ids;
  json backoff = json::object();
  backoff["initial"] = m.retry_policy.backoff_initial_ms;
  backoff["exponential"] = m.retry_policy.backoff_exponential;
  json policy = json::object();
  policy["max_retries"] = m.retry_policy.max_retries;
  policy["backoff"] = std::move(backoff);
  json j = json::object();
  j["control_id"] = m.control_id.str();
  j["target"] = std::move(target);
  j["type"] = to_string(m.type);
  j["intent"] = to_string(m.intent);
  j["params"] = m.params;
  j["issued_by"] = m.issued_by;
  j["issued_at"] = format_timestamp(m.issued_at);
  j["expire_at"] = format_timestamp(m.expire_at);
  j["sequence"] = m.sequence;
  j["retry_policy"] = std::move(policy);
  return j;
}

DeviceCommand read_device_command(ObjectReader& r) {
  DeviceCommand c;
  if (const json* control_id = r.required("control_id"); control_id && !control_id->is_null()) {
    c.control_id = read_uuid(*control_id, r.path("control_id"), r.errors());
  }
  c.command_id = r.uuid("command_id");
  c.device_id = r.identifier("device_id");
  c.type = r.enumeration("type", parse_device_command_type);
  if (const json* params = r.required("params"); params != nullptr && !r.errors().failed()) {
    c.params = read_command_params(c.type, *params, r.depth() + 1, r.path("params"), r.errors());
  }
  c.issued_by = r.common_name("issued_by");
  c.issued_at = r.timestamp("issued_at");
  c.expire_at = r.timestamp("expire_at");
  require_after(r, c.issued_at, c.expire_at, "expire_at", "issued_at");
  c.sequence = r.unsigned_integer("sequence", kMaxWireInteger);
  return c;
}

json to_json(const DeviceCommand& c) {
  json j = json::object();
  j["control_id"] = c.control_id ? json(c.control_id->str()) : json(nullptr);
  j["command_id"] = c.command_id.str();
  j["device_id"] = c.device_id;
  j["type"] = to_string(c.type);
  j["params"] = c.params;
  j["issued_by"] = c.issued_by;
  j["issued_at"] = format_timestamp(c.issued_at);
  j["expire_at"] = format_timestamp(c.expire_at);
  j["sequence"] = c.sequence;
  return j;
}

DeviceCommandResponse read_device_command_response(ObjectReader& r) {
  DeviceCommandResponse d;
  d.command_id = r.uuid("command_id");
  d.device_id = r.identifier("device_id");
  d.status = r.enumeration("status", parse_device_command_status);
  d.exit_code =
      static_cast<std::int32_t>(r.signed_integer("exit_code", kMinExitCode, kMaxExitCode));
  check_exit_code(r, d.status == DeviceCommandStatus::kFailed, d.exit_code);
  d.issued_at = r.timestamp("issued_at");
  d.details = r.object_or_text("details");
  return d;
}

json to_json(const DeviceCommandResponse& d) {
  json j = json::object();
  j["command_id"] = d.command_id.str();
  j["device_id"] = d.device_id;
  j["status"] = to_string(d.status);
  j["exit_code"] = d.exit_code;
  j["issued_at"] = format_timestamp(d.issued_at);
  j["details"] = d.details;
  return j;
}

DeviceResult read_device_result(ObjectReader& r) {
  DeviceResult d;
  d.device_id = r.identifier("device_id");
  d.status = r.enumeration("status", parse_device_outcome);
  d.exit_code =
      static_cast<std::int32_t>(r.signed_integer("exit_code", kMinExitCode, kMaxExitCode));
  check_exit_code(r, d.status == DeviceOutcome::kFailed, d.exit_code);
  d.details = r.object_or_text("details");
  d.executed_at = r.timestamp("executed_at");
  return d;
}

MemberControlResponse read_member_control_response(ObjectReader& r) {
  MemberControlResponse m;
  m.control_id = r.uuid("control_id");
  m.gateway_id = r.common_name("gateway_id");
  if (!r.errors().failed() &&
      pki::parse_common_name(m.gateway_id)->kind != pki::IdentityKind::kGateway) {
    r.errors().fail(r.path("gateway_id"),
                    "must be a gateway's common name, rec_<rec>_<member>_"
                    "gateway");
  }
  m.status = r.enumeration("status", parse_member_control_status);
  if (const json* details = r.required("details")) {
    ObjectReader d(*details, r.path("details"), r.errors(), r.depth() + 1);
    if (const json* general = d.required("general"); general && !general->is_null()) {
      m.general = read_text(*general, d.path("general"), r.errors());
    }
    const std::string per_device_path = d.path("per_device");
    auto entries = d.array("per_device", kMaxDevicesPerControl);
    for (std::size_t i = 0; i < entries.size() && !r.errors().failed(); ++i) {
      ObjectReader e(*entries[i], index_path(per_device_path, i), r.errors(), d.depth() + 2);
      DeviceResult result = read_device_result(e);
      e.finish();
      bool repeated = std::any_of(m.per_device.begin(), m.per_device.end(),
                                  [&](const auto& x) { return x.device_id == result.device_id; });
      if (!r.errors().failed() && repeated) {
        r.errors().fail(e.path("device_id"),
                        fmt::format("device \"{}\" is listed twice", result.device_id));
      }
      m.per_device.push_back(std::move(result));
    }
    d.finish();
  }
  if (!r.errors().failed()) {
    auto count = [&](DeviceOutcome outcome) {
      return std::count_if(m.per_device.begin(), m.per_device.end(),
                           [&](const auto& x) { return x.status == outcome; });
    };
    if (m.status == MemberControlStatus::kSuccess && count(DeviceOutcome::kFailed) > 0) {
      r.errors().fail("details.per_device", "lists a FAILED device although status is SUCCESS");
    } else if (m.status == MemberControlStatus::kPartial &&
               (count(DeviceOutcome::kFailed) == 0 || count(DeviceOutcome::kSuccess) == 0)) {
      r.errors().fail("details.per_device",
                      "must list SUCCESS and FAILED devices when status is PARTIAL");
    }
  }
  m.issued_at = r.timestamp("issued_at");
  return m;
}

json to_json(const MemberControlResponse& m) {
  json per_device = json::array();
  for (const auto& d : m.per_device) {
    json entry = json::object();
    entry["device_id"] = d.device_id;
    entry["status"] = to_string(d.status);
    entry["exit_code"] = d.exit_code;
    entry["details"] = d.details;
    entry["executed_at"] = format_timestamp(d.executed_at);
    per_device.push_back(std::move(entry));
  }
  json details = json::object();
  details["general"] = m.general ? json(*m.general) : json(nullptr);
  details["per_device"] = std::move(per_device);
  json j = json::object();
  j["control_id"] = m.control_id.str();
  j["gateway_id"] = m.gateway_id;
  j["status"] = to_string(m.status);
  j["details"] = std::move(details);
  j["issued_at"] = format_timestamp(m.issued_at);
  return j;
}

}  // namespace

std::string_view to_string(MemberControlType type) {
  return enum_name(kControlTypeNames, type);
}
Result<MemberControlType> parse_member_control_type(std::string_view text) {
  return parse_enum(kControlTypeNames, "member control type", text);
}

std::string_view to_string(ControlIntent intent) {
  return enum_name(kIntentNames, intent);
}
Result<ControlIntent> parse_control_intent(std::string_view text) {
  return parse_enum(kIntentNames, "intent", text);
}

std::string_view to_string(DeviceCommandStatus status) {
  return enum_name(kCommandStatusNames, status);
}
Result<DeviceCommandStatus> parse_device_command_status(std::string_view text) {
  return parse_enum(kCommandStatusNames, "device command status", text);
}

std::string_view to_string(MemberControlStatus status) {
  return enum_name(kControlStatusNames, status);
}
Result<MemberControlStatus> parse_member_control_status(std::string_view text) {
  return parse_enum(kControlStatusNames, "member control status", text);
}

std::string_view to_string(DeviceOutcome outcome) {
  return enum_name(kOutcomeNames, outcome);
}
Result<DeviceOutcome> parse_device_outcome(std::string_view text) {
  return parse_enum(kOutcomeNames, "device outcome", text);
}

Result<MemberControl> MemberControl::decode(std::string_view payload) {
  return decode_payload(payload, "member control", read_member_control);
}
Result<std::string> MemberControl::encode() const {
  return encode_payload(to_json(*this), "member control", read_member_control);
}

Result<DeviceCommand> DeviceCommand::decode(std::string_view payload) {
  return decode_payload(payload, "device command", read_device_command);
}
Result<std::string> DeviceCommand::encode() const {
  return encode_payload(to_json(*this), "device command", read_device_command);
}

Result<DeviceCommandResponse> DeviceCommandResponse::decode(std::string_view payload) {
  return decode_payload(payload, "device command response", read_device_command_response);
}
Result<std::string> DeviceCommandResponse::encode() const {
  return encode_payload(to_json(*this), "device command response", read_device_command_response);
}

Result<MemberControlResponse> MemberControlResponse::decode(std::string_view payload) {
  return decode_payload(payload, "member control response", read_member_control_response);
}
Result<std::string> MemberControlResponse::encode() const {
  return encode_payload(to_json(*this), "member control response", read_member_control_response);
}

}  // namespace recmesh::protocol
