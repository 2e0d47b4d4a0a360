#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "recmesh/core/result.hpp"
#include "recmesh/protocol/device_commands.hpp"
#include "recmesh/protocol/timestamp.hpp"
#include "recmesh/protocol/uuid.hpp"

namespace recmesh::protocol {

// The four messages of the remote control protocol (thesis §3.4.4, listings 1-4). The wire
// format, with an example of each, is docs/protocol/messages.md.
//
// Every message type has:
//   static Result<T> decode(std::string_view payload);
//     Strict: unknown or missing fields, wrong types, unknown enum values, out-of-range numbers,
//     oversize input, invalid UTF-8, duplicate keys and inconsistent fields all give
//     kInvalidArgument with a message naming the field (e.g. "retry_policy.backoff.initial").
//     Never throws.
//   Result<std::string> encode() const;
//     Canonical JSON (keys sorted, no whitespace): equal values give equal bytes, so the
//     output can be signed. Fails, with the same messages, on a value decode would reject.
//     Never throws.
// The listings' "authentication data" is not a field here: the end-to-end envelope (SPEC §5)
// wraps these payloads and carries it.

// What the EMS engine asks of a member (MemberControl.type).
enum class MemberControlType {
  kDiagnostic,     // "diagnostic": devices in target.device_ids publish a diagnostic report
  kDeviceCommand,  // "device-command": pass one device command through to target.device_ids
  kStoreSurplus,   // "store-surplus": charge storage from surplus production
  kCoverDeficit,   // "cover-deficit": discharge storage or raise production to cover demand
  kActivateLoad,   // "activate-load": switch on the loads in target.device_ids (EV charger)
};
std::string_view to_string(MemberControlType type);
Result<MemberControlType> parse_member_control_type(std::string_view text);

enum class ControlIntent {
  kIdempotent,     // "idempotent": safe to apply again; a retry may resend it
  kNonIdempotent,  // "non-idempotent": applied at most once; receivers deduplicate by ID
};
std::string_view to_string(ControlIntent intent);
Result<ControlIntent> parse_control_intent(std::string_view text);

// How the gateway retries device commands that end FAILED or time out.
struct RetryPolicy {
  std::uint32_t max_retries = 0;         // 0..16
  std::uint32_t backoff_initial_ms = 0;  // "backoff.initial", milliseconds, 0..3600000
  bool backoff_exponential = false;      // "backoff.exponential": double the delay each retry

  bool operator==(const RetryPolicy&) const = default;
};

// Listing 1: EMS engine -> /<rec>/<member>/control -> /platform/control -> gateway.
struct MemberControl {
  Uuid control_id;
  std::string member_id;                // "target.member_id"
  std::vector<std::string> device_ids;  // "target.device_ids": distinct, <= 256
  MemberControlType type = MemberControlType::kDiagnostic;
  ControlIntent intent = ControlIntent::kIdempotent;
  // An object. diagnostic: {}. device-command: {"command": <device command>, "params": {..}}
  // under the rules of DeviceCommand.params. Energy controls: any object <= 4 KiB.
  nlohmann::json params = nlohmann::json::object();
  std::string issued_by;  // common name of the issuer's certificate, e.g. "ems_engine"
  Timestamp issued_at;
  Timestamp expire_at;         // strictly after issued_at
  std::uint64_t sequence = 0;  // monotonic per issuer, 0..2^53-1
  RetryPolicy retry_policy;

  static Result<MemberControl> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const MemberControl&) const = default;
};

// Listing 2: gateway -> /device/<d>/control -> device.
struct DeviceCommand {
  // The member control this command serves; empty when the gateway issues the command on its
  // own (thesis scenario 3), encoded as null.
  std::optional<Uuid> control_id;
  Uuid command_id;
  std::string device_id;
  DeviceCommandType type = DeviceCommandType::kDiagnostic;
  // curtail: exactly {"percentage": 0..100}; every other command: {}.
  nlohmann::json params = nlohmann::json::object();
  std::string issued_by;  // common name, e.g. "rec_r1_m1_gateway"
  Timestamp issued_at;
  Timestamp expire_at;  // strictly after issued_at
  std::uint64_t sequence = 0;

  static Result<DeviceCommand> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const DeviceCommand&) const = default;
};

enum class DeviceCommandStatus { kReceived, kExecuting, kCompleted, kFailed };
std::string_view to_string(DeviceCommandStatus status);
Result<DeviceCommandStatus> parse_device_command_status(std::string_view text);

// Listing 3: device -> /device/<d>/control/response -> gateway.
struct DeviceCommandResponse {
  Uuid command_id;
  std::string device_id;
  DeviceCommandStatus status = DeviceCommandStatus::kReceived;
  // kExitOk for RECEIVED, EXECUTING and COMPLETED; anything else for FAILED.
  std::int32_t exit_code = kExitOk;
  Timestamp issued_at;
  nlohmann::json details = nlohmann::json::object();  // an object or a string, <= 4 KiB

  static Result<DeviceCommandResponse> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const DeviceCommandResponse&) const = default;
};

enum class MemberControlStatus { kReceived, kExecuting, kSuccess, kPartial, kFailed };
std::string_view to_string(MemberControlStatus status);
Result<MemberControlStatus> parse_member_control_status(std::string_view text);

enum class DeviceOutcome { kSuccess, kFailed };
std::string_view to_string(DeviceOutcome outcome);
Result<DeviceOutcome> parse_device_outcome(std::string_view text);

// One entry of details.per_device.
struct DeviceResult {
  std::string device_id;
  DeviceOutcome status = DeviceOutcome::kSuccess;
  std::int32_t exit_code = kExitOk;                   // kExitOk exactly when status is SUCCESS
  nlohmann::json details = nlohmann::json::object();  // an object or a string
  Timestamp executed_at;

  bool operator==(const DeviceResult&) const = default;
};

// Listing 4: gateway -> /platform/control/response -> /<rec>/<member>/control/response -> EMS.
// SUCCESS lists no FAILED device; PARTIAL lists at least one of each outcome.
struct MemberControlResponse {
  Uuid control_id;
  std::string gateway_id;  // the gateway's common name, rec_<rec>_<member>_gateway
  MemberControlStatus status = MemberControlStatus::kReceived;
  std::optional<std::string> general;    // "details.general": text or null
  std::vector<DeviceResult> per_device;  // "details.per_device": distinct devices, <= 256
  Timestamp issued_at;

  static Result<MemberControlResponse> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const MemberControlResponse&) const = default;
};

}  // namespace recmesh::protocol
