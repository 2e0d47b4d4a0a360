#include "recmesh/protocol/telemetry_messages.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "recmesh/protocol/limits.hpp"

#include "enum_names.hpp"
#include "json_codec.hpp"

namespace recmesh::protocol {
namespace {

constexpr EnumNames<StatusFlag, 2> kFlagNames{{
    {StatusFlag::kOnline, "online"},
    {StatusFlag::kOffline, "offline"},
}};

constexpr EnumNames<DeviceState, kDeviceStateCount> kStateNames{{
    {DeviceState::kOn, "on"},
    {DeviceState::kOff, "off"},
    {DeviceState::kIdle, "idle"},
    {DeviceState::kCharging, "charging"},
    {DeviceState::kDischarging, "discharging"},
    {DeviceState::kCurtailed, "curtailed"},
    {DeviceState::kFault, "fault"},
    {DeviceState::kOffline, "offline"},
}};

constexpr EnumNames<DiagnosticTrigger, 3> kTriggerNames{{
    {DiagnosticTrigger::kCommand, "command"},
    {DiagnosticTrigger::kUpdate, "update"},
    {DiagnosticTrigger::kReset, "reset"},
}};

// Physical ranges: wide enough for any device of a community, narrow enough to catch garbage.
constexpr double kMaxVoltage = 1e6;
constexpr double kMaxCurrent = 1e6;
constexpr double kMaxPower = 1e9;
constexpr double kMaxEnergy = 1e15;
constexpr double kMinTemperature = -100;
constexpr double kMaxTemperature = 300;
constexpr std::uint64_t kMaxCount = 0xffff'ffff;

std::optional<double> optional_number(ObjectReader& r, std::string_view key, double min,
                                      double max) {
  const json* v = r.optional(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  return read_number(*v, min, max, r.path(key), r.errors());
}

std::optional<json> optional_object(ObjectReader& r, std::string_view key) {
  const json* v = r.optional(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  return read_free_object(*v, r.depth() + 1, r.path(key), r.errors());
}

void put_optional(json& j, std::string_view key, const std::optional<double>& v) {
  if (v) {
    j[std::string(key)] = canonical_double(*v);
  }
}

void put_optional(json& j, std::string_view key, const std::optional<json>& v) {
  if (v) {
    j[std::string(key)] = *v;
  }
}

StatusInfo read_status_info(ObjectReader& r) {
  StatusInfo s;
  s.timestamp = r.timestamp("timestamp");
  s.status = r.enumeration("status", parse_status_flag);
  if (const json* reason = r.optional("reason")) {
    s.reason = read_text(*reason, r.path("reason"), r.errors());
  }
  if (const json* attempts = r.optional("reconnect_attempts")) {
    s.reconnect_attempts = static_cast<std::uint32_t>(
        read_unsigned(*attempts, kMaxCount, r.path("reconnect_attempts"), r.errors()));
  }
  s.fields = optional_object(r, "fields");
  return s;
}

json to_json(const StatusInfo& s) {
  json j = json::object();
  j["timestamp"] = format_timestamp(s.timestamp);
  j["status"] = to_string(s.status);
  if (s.reason) {
    j["reason"] = *s.reason;
  }
  if (s.reconnect_attempts) {
    j["reconnect_attempts"] = *s.reconnect_attempts;
  }
  put_optional(j, "fields", s.fields);
  return j;
}

DeviceMetrics read_device_metrics(ObjectReader& r) {
  DeviceMetrics m;
  m.kind = r.enumeration("kind", parse_device_kind);
  m.state = r.enumeration("state", parse_device_state);
  if (!r.errors().failed() && m.state == DeviceState::kOffline) {
    r.errors().fail(r.path("state"), "a device publishing metrics is not offline");
  }
  m.voltage_v = r.number("voltage_v", 0, kMaxVoltage);
  m.current_a = r.number("current_a", -kMaxCurrent, kMaxCurrent);
  m.power_w = r.number("power_w", -kMaxPower, kMaxPower);
  m.energy_delivered_wh = r.number("energy_delivered_wh", 0, kMaxEnergy);
  m.energy_absorbed_wh = r.number("energy_absorbed_wh", 0, kMaxEnergy);
  m.temperature_c = optional_number(r, "temperature_c", kMinTemperature, kMaxTemperature);
  m.soc_percent = optional_number(r, "soc_percent", 0, 100);
  if (!r.errors().failed() && (m.kind == DeviceKind::kAccumulator) != m.soc_percent.has_value()) {
    r.errors().fail(r.path("soc_percent"),
                    m.soc_percent ? "applies only to accumulators" : "missing for an accumulator");
  }
  m.timestamp = r.timestamp("timestamp");
  return m;
}

json to_json(const DeviceMetrics& m) {
  json j = json::object();
  j["kind"] = to_string(m.kind);
  j["state"] = to_string(m.state);
  j["voltage_v"] = canonical_double(m.voltage_v);
  j["current_a"] = canonical_double(m.current_a);
  j["power_w"] = canonical_double(m.power_w);
  j["energy_delivered_wh"] = canonical_double(m.energy_delivered_wh);
  j["energy_absorbed_wh"] = canonical_double(m.energy_absorbed_wh);
  put_optional(j, "temperature_c", m.temperature_c);
  put_optional(j, "soc_percent", m.soc_percent);
  j["timestamp"] = format_timestamp(m.timestamp);
  return j;
}

MemberMetrics read_member_metrics(ObjectReader& r) {
  MemberMetrics m;
  m.window_start = r.timestamp("window_start");
  m.window_end = r.timestamp("window_end");
  if (!r.errors().failed() && m.window_end <= m.window_start) {
    r.errors().fail(r.path("window_end"), "must be after window_start");
  }
  m.production_w = r.number("production_w", 0, kMaxPower);
  m.consumption_w = r.number("consumption_w", 0, kMaxPower);
  m.storage_power_w = r.number("storage_power_w", -kMaxPower, kMaxPower);
  m.storage_soc_percent = optional_number(r, "storage_soc_percent", 0, 100);
  m.net_exchange_w = r.number("net_exchange_w", -kMaxPower, kMaxPower);
  if (const json* energy = r.required("energy")) {
    ObjectReader e(*energy, r.path("energy"), r.errors(), r.depth() + 1);
    m.energy.produced_wh = e.number("produced_wh", 0, kMaxEnergy);
    m.energy.consumed_wh = e.number("consumed_wh", 0, kMaxEnergy);
    m.energy.charged_wh = e.number("charged_wh", 0, kMaxEnergy);
    m.energy.discharged_wh = e.number("discharged_wh", 0, kMaxEnergy);
    m.energy.exported_wh = e.number("exported_wh", 0, kMaxEnergy);
    m.energy.imported_wh = e.number("imported_wh", 0, kMaxEnergy);
    e.finish();
  }
  if (const json* devices = r.required("devices")) {
    ObjectReader d(*devices, r.path("devices"), r.errors(), r.depth() + 1);
    for (const auto& [state, name] : kStateNames) {
      m.devices[state] = static_cast<std::uint32_t>(d.unsigned_integer(name, kMaxCount));
    }
    d.finish();
  }
  return m;
}

json to_json(const MemberMetrics& m) {
  json energy = json::object();
  energy["produced_wh"] = canonical_double(m.energy.produced_wh);
  energy["consumed_wh"] = canonical_double(m.energy.consumed_wh);
  energy["charged_wh"] = canonical_double(m.energy.charged_wh);
  energy["discharged_wh"] = canonical_double(m.energy.discharged_wh);
  energy["exported_wh"] = canonical_double(m.energy.exported_wh);
  energy["imported_wh"] = canonical_double(m.energy.imported_wh);
  json devices = json::object();
  for (const auto& [state, name] : kStateNames) {
    devices[std::string(name)] = m.devices[state];
  }
  json j = json::object();
  j["window_start"] = format_timestamp(m.window_start);
  j["window_end"] = format_timestamp(m.window_end);
  j["production_w"] = canonical_double(m.production_w);
  j["consumption_w"] = canonical_double(m.consumption_w);
  j["storage_power_w"] = canonical_double(m.storage_power_w);
  put_optional(j, "storage_soc_percent", m.storage_soc_percent);
  j["net_exchange_w"] = canonical_double(m.net_exchange_w);
  j["energy"] = std::move(energy);
  j["devices"] = std::move(devices);
  return j;
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

DiagnosticReport read_diagnostic_report(ObjectReader& r) {
  DiagnosticReport d;
  d.timestamp = r.timestamp("timestamp");
  d.trigger = r.enumeration("trigger", parse_diagnostic_trigger);
  if (const json* command = r.required("command_id"); command && !command->is_null()) {
    d.command_id = read_uuid(*command, r.path("command_id"), r.errors());
  }
  if (!r.errors().failed() &&
      (d.trigger == DiagnosticTrigger::kCommand) != d.command_id.has_value()) {
    r.errors().fail(r.path("command_id"), d.command_id
                                              ? "must be null unless trigger is command"
                                              : "must name the command when trigger is command");
  }
  d.software_version = r.label("software_version");
  d.firmware_version = r.label("firmware_version");
  if (const json* hash = r.required("firmware_sha256")) {
    if (!hash->is_string() || !is_sha256_hex(hash->get_ref<const std::string&>())) {
      r.errors().fail(r.path("firmware_sha256"), "must be 64 lower-case hex digits");
    } else {
      d.firmware_sha256 = hash->get<std::string>();
    }
  }
  d.uptime_s = r.unsigned_integer("uptime_s", kMaxWireInteger);
  if (const json* memory = r.required("memory")) {
    ObjectReader m(*memory, r.path("memory"), r.errors(), r.depth() + 1);
    d.memory_total_bytes = m.unsigned_integer("total_bytes", kMaxWireInteger);
    d.memory_used_bytes = m.unsigned_integer("used_bytes", kMaxWireInteger);
    if (!r.errors().failed() && d.memory_used_bytes > d.memory_total_bytes) {
      r.errors().fail(m.path("used_bytes"), "must not exceed total_bytes");
    }
    m.finish();
  }
  d.cpu_load_percent = r.number("cpu_load_percent", 0, 100);
  d.details = optional_object(r, "details");
  return d;
}

json to_json(const DiagnosticReport& d) {
  json memory = json::object();
  memory["total_bytes"] = d.memory_total_bytes;
  memory["used_bytes"] = d.memory_used_bytes;
  json j = json::object();
  j["timestamp"] = format_timestamp(d.timestamp);
  j["trigger"] = to_string(d.trigger);
  j["command_id"] = d.command_id ? json(d.command_id->str()) : json(nullptr);
  j["software_version"] = d.software_version;
  j["firmware_version"] = d.firmware_version;
  j["firmware_sha256"] = d.firmware_sha256;
  j["uptime_s"] = d.uptime_s;
  j["memory"] = std::move(memory);
  j["cpu_load_percent"] = canonical_double(d.cpu_load_percent);
  put_optional(j, "details", d.details);
  return j;
}

LogRecord read_log_record(ObjectReader& r) {
  LogRecord l;
  l.level = r.enumeration("level", parse_log_level);
  l.timestamp = r.timestamp("timestamp");
  l.source = r.label("source");
  l.message = r.text("message");
  if (!r.errors().failed() && l.message.empty()) {
    r.errors().fail(r.path("message"), "must not be empty");
  }
  l.fields = optional_object(r, "fields");
  return l;
}

json to_json(const LogRecord& l) {
  json j = json::object();
  j["level"] = to_string(l.level);
  j["timestamp"] = format_timestamp(l.timestamp);
  j["source"] = l.source;
  j["message"] = l.message;
  put_optional(j, "fields", l.fields);
  return j;
}

}  // namespace

std::string_view to_string(StatusFlag flag) {
  return enum_name(kFlagNames, flag);
}
Result<StatusFlag> parse_status_flag(std::string_view payload) {
  return parse_enum(kFlagNames, "status flag", payload);
}

std::string_view to_string(DeviceState state) {
  return enum_name(kStateNames, state);
}
Result<DeviceState> parse_device_state(std::string_view text) {
  return parse_enum(kStateNames, "device state", text);
}

std::string_view to_string(DiagnosticTrigger trigger) {
  return enum_name(kTriggerNames, trigger);
}
Result<DiagnosticTrigger> parse_diagnostic_trigger(std::string_view text) {
  return parse_enum(kTriggerNames, "diagnostic trigger", text);
}

Result<StatusInfo> StatusInfo::decode(std::string_view payload) {
  return decode_payload(payload, "status info", read_status_info);
}
Result<std::string> StatusInfo::encode() const {
  return encode_payload(to_json(*this), "status info", read_status_info);
}

Result<DeviceMetrics> DeviceMetrics::decode(std::string_view payload) {
  return decode_payload(payload, "device metrics", read_device_metrics);
}
Result<std::string> DeviceMetrics::encode() const {
  return encode_payload(to_json(*this), "device metrics", read_device_metrics);
}

Result<MemberMetrics> MemberMetrics::decode(std::string_view payload) {
  return decode_payload(payload, "member metrics", read_member_metrics);
}
Result<std::string> MemberMetrics::encode() const {
  return encode_payload(to_json(*this), "member metrics", read_member_metrics);
}

Result<DiagnosticReport> DiagnosticReport::decode(std::string_view payload) {
  return decode_payload(payload, "diagnostic report", read_diagnostic_report);
}
Result<std::string> DiagnosticReport::encode() const {
  return encode_payload(to_json(*this), "diagnostic report", read_diagnostic_report);
}

Result<LogRecord> LogRecord::decode(std::string_view payload) {
  return decode_payload(payload, "log record", read_log_record);
}
Result<std::string> LogRecord::encode() const {
  return encode_payload(to_json(*this), "log record", read_log_record);
}

}  // namespace recmesh::protocol
