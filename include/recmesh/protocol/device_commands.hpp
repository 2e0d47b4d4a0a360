#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "recmesh/core/result.hpp"

namespace recmesh::protocol {

// What a device is, for aggregation and for which commands it accepts (SPEC §4.6).
enum class DeviceKind {
  kGenerator,    // "generator": PV and other producers
  kLoad,         // "load": a controllable consumer (EV charger, heat pump)
  kPassiveLoad,  // "passive-load": a consumer that cannot be steered
  kAccumulator,  // "accumulator": a battery, producer and consumer
  kMeter,        // "meter": the smart meter at the DSO interface
};

std::string_view to_string(DeviceKind kind);
Result<DeviceKind> parse_device_kind(std::string_view text);

// Device-level commands the gateway sends on /device/<d>/control (SPEC §4.6).
enum class DeviceCommandType {
  kPowerOn,        // "power-on"
  kShutdown,       // "shutdown"
  kReboot,         // "reboot"
  kDiagnostic,     // "diagnostic": publish a diagnostic report (EMS-signed end to end)
  kCurtail,        // "curtail": limit output to params.percentage (0..100) of nominal power
  kIdleMode,       // "idle-mode"
  kChargeMode,     // "charge-mode"
  kDischargeMode,  // "discharge-mode"
};

std::string_view to_string(DeviceCommandType type);
Result<DeviceCommandType> parse_device_command_type(std::string_view text);

// SPEC §4.6: generators power-on, shutdown, reboot, diagnostic, curtail; controllable loads the
// same without curtail; accumulators shutdown, reboot, idle-mode, charge-mode, discharge-mode,
// diagnostic; the meter diagnostic only; passive loads nothing (they answer every command with
// FAILED and kExitUnsupported).
bool accepts_command(DeviceKind kind, DeviceCommandType type);
std::span<const DeviceCommandType> accepted_commands(DeviceKind kind);

// exit_code values of command responses. 0 is success; any other value is a failure, and
// devices may use their own codes above 63.
inline constexpr std::int32_t kExitOk = 0;
inline constexpr std::int32_t kExitFailed = 1;         // the action was tried and failed
inline constexpr std::int32_t kExitUnsupported = 2;    // the device kind does not accept it
inline constexpr std::int32_t kExitInvalidParams = 3;  // params out of range for this device
inline constexpr std::int32_t kExitExpired = 4;        // arrived after expire_at
inline constexpr std::int32_t kExitTimeout = 5;        // no answer before the deadline
inline constexpr std::int32_t kExitBadSignature = 6;   // diagnostic not signed by the EMS

}  // namespace recmesh::protocol
