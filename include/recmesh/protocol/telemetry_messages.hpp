#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "recmesh/core/result.hpp"
#include "recmesh/protocol/device_commands.hpp"
#include "recmesh/protocol/log_level.hpp"
#include "recmesh/protocol/timestamp.hpp"
#include "recmesh/protocol/uuid.hpp"

namespace recmesh::protocol {

// Monitoring payloads: status, diagnostics, metrics and logs (thesis §3.4.1-§3.4.3). Each type
// has the same strict `decode` and canonical `encode` as the control messages
// (control_messages.hpp). Optional fields are omitted when absent, never null.

// The status flag payload: the bare bytes "online" or "offline", not JSON. Published retained
// at QoS >= 1, and "offline" is also the Last Will.
enum class StatusFlag { kOnline, kOffline };
std::string_view to_string(StatusFlag flag);
Result<StatusFlag> parse_status_flag(std::string_view payload);

// <status topic>/info, retained. An empty retained payload clears stale info: callers test
// for it before decoding, since decode rejects an empty payload.
struct StatusInfo {
  Timestamp timestamp;
  StatusFlag status = StatusFlag::kOnline;
  std::optional<std::string> reason;                // why the status changed, <= 4 KiB
  std::optional<std::uint32_t> reconnect_attempts;  // attempts before this connection
  std::optional<nlohmann::json> fields;             // further details, an object <= 4 KiB

  static Result<StatusInfo> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const StatusInfo&) const = default;
};

// What a device is doing. kOffline is only ever counted by the gateway (from status flags): a
// device that publishes metrics is online.
enum class DeviceState { kOn, kOff, kIdle, kCharging, kDischarging, kCurtailed, kFault, kOffline };
inline constexpr std::size_t kDeviceStateCount = 8;
std::string_view to_string(DeviceState state);
Result<DeviceState> parse_device_state(std::string_view text);

// /device/<d>/metrics/snapshot: one device's readings. Power and current are signed from the
// member's side: positive when the device delivers energy (a generator, a discharging battery),
// negative when it absorbs it (a load, a charging battery).
struct DeviceMetrics {
  DeviceKind kind = DeviceKind::kGenerator;
  DeviceState state = DeviceState::kOn;  // never kOffline
  double voltage_v = 0;                  // 0..1e6
  double current_a = 0;                  // -1e6..1e6
  double power_w = 0;                    // -1e9..1e9
  double energy_delivered_wh = 0;        // lifetime counter, 0..1e15
  double energy_absorbed_wh = 0;         // lifetime counter, 0..1e15
  std::optional<double> temperature_c;   // -100..300
  std::optional<double> soc_percent;     // 0..100; present exactly for accumulators
  Timestamp timestamp;

  static Result<DeviceMetrics> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const DeviceMetrics&) const = default;
};

// Energy that flowed during an aggregation window, all >= 0 (wire object "energy").
struct WindowEnergy {
  double produced_wh = 0;
  double consumed_wh = 0;
  double charged_wh = 0;
  double discharged_wh = 0;
  double exported_wh = 0;  // to the grid
  double imported_wh = 0;  // from the grid

  bool operator==(const WindowEnergy&) const = default;
};

// How many devices are in each state (wire object "devices", every state present).
struct DeviceCounts {
  std::array<std::uint32_t, kDeviceStateCount> by_state{};

  std::uint32_t& operator[](DeviceState state) { return by_state[static_cast<std::size_t>(state)]; }
  std::uint32_t operator[](DeviceState state) const {
    return by_state[static_cast<std::size_t>(state)];
  }
  bool operator==(const DeviceCounts&) const = default;
};

// /platform/metrics/aggregate -> /<rec>/<member>/metrics/aggregate: the gateway's view of the
// member over [window_start, window_end). Powers are means over the window.
struct MemberMetrics {
  Timestamp window_start;
  Timestamp window_end;                       // strictly after window_start
  double production_w = 0;                    // >= 0
  double consumption_w = 0;                   // >= 0
  double storage_power_w = 0;                 // positive while discharging
  std::optional<double> storage_soc_percent;  // capacity-weighted; absent without storage
  double net_exchange_w = 0;                  // positive while exporting to the grid
  WindowEnergy energy;
  DeviceCounts devices;

  static Result<MemberMetrics> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const MemberMetrics&) const = default;
};

// Why a diagnostic report was published (thesis §3.4.1).
enum class DiagnosticTrigger { kCommand, kUpdate, kReset };
std::string_view to_string(DiagnosticTrigger trigger);
Result<DiagnosticTrigger> parse_diagnostic_trigger(std::string_view text);

// /device/<d>/diagnostic, /smart-gateway/diagnostic, /<rec>/<member>/bridge/diagnostic.
// Never retained. The publisher signs it in the end-to-end envelope (SPEC §5).
struct DiagnosticReport {
  Timestamp timestamp;
  DiagnosticTrigger trigger = DiagnosticTrigger::kCommand;
  std::optional<Uuid> command_id;         // the diagnostic command answered; present exactly for
                                          // trigger "command", otherwise encoded as null
  std::string software_version;           // label: printable ASCII, no spaces, 1..64 bytes
  std::string firmware_version;           // label
  std::string firmware_sha256;            // 64 lower-case hex digits
  std::uint64_t uptime_s = 0;             // 0..2^53-1
  std::uint64_t memory_total_bytes = 0;   // "memory.total_bytes", 0..2^53-1
  std::uint64_t memory_used_bytes = 0;    // "memory.used_bytes", <= total
  double cpu_load_percent = 0;            // 0..100
  std::optional<nlohmann::json> details;  // anything else, an object <= 4 KiB

  static Result<DiagnosticReport> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const DiagnosticReport&) const = default;
};

// /device/<d>/log/<LEVEL> and, forwarded by the gateway, /platform/logs/<LEVEL>.
struct LogRecord {
  LogLevel level = LogLevel::kInfo;  // equal to the level of the topic it is published on
  Timestamp timestamp;
  std::string source;                    // label: the device ID or the component that logged
  std::string message;                   // 1..4096 bytes of UTF-8
  std::optional<nlohmann::json> fields;  // structured context, an object <= 4 KiB

  static Result<LogRecord> decode(std::string_view payload);
  Result<std::string> encode() const;
  bool operator==(const LogRecord&) const = default;
};

}  // namespace recmesh::protocol
