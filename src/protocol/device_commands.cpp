#include "recmesh/protocol/device_commands.hpp"

#include <algorithm>
#include <array>

#include "enum_names.hpp"

namespace recmesh::protocol {
namespace {

using enum DeviceCommandType;

constexpr EnumNames<DeviceKind, 5> kKindNames{{
    {DeviceKind::kGenerator, "generator"},
    {DeviceKind::kLoad, "load"},
    {DeviceKind::kPassiveLoad, "passive-load"},
    {DeviceKind::kAccumulator, "accumulator"},
    {DeviceKind::kMeter, "meter"},
}};

constexpr EnumNames<DeviceCommandType, 8> kCommandNames{{
    {kPowerOn, "power-on"},
    {kShutdown, "shutdown"},
    {kReboot, "reboot"},
    {kDiagnostic, "diagnostic"},
    {kCurtail, "curtail"},
    {kIdleMode, "idle-mode"},
    {kChargeMode, "charge-mode"},
    {kDischargeMode, "discharge-mode"},
}};

// SPEC §4.6, one list per DeviceKind in declaration order.
constexpr std::array<DeviceCommandType, 5> kGeneratorCommands{kPowerOn, kShutdown, kReboot,
                                                              kDiagnostic, kCurtail};
constexpr std::array<DeviceCommandType, 4> kLoadCommands{kPowerOn, kShutdown, kReboot, kDiagnostic};
constexpr std::array<DeviceCommandType, 6> kAccumulatorCommands{
    kShutdown, kReboot, kIdleMode, kChargeMode, kDischargeMode, kDiagnostic};
// The meter is an energy probe: it answers the diagnostic command and nothing else.
constexpr std::array<DeviceCommandType, 1> kMeterCommands{kDiagnostic};

}  // namespace

std::string_view to_string(DeviceKind kind) {
  return enum_name(kKindNames, kind);
}

Result<DeviceKind> parse_device_kind(std::string_view text) {
  return parse_enum(kKindNames, "device kind", text);
}

std::string_view to_string(DeviceCommandType type) {
  return enum_name(kCommandNames, type);
}

Result<DeviceCommandType> parse_device_command_type(std::string_view text) {
  return parse_enum(kCommandNames, "device command", text);
}

std::span<const DeviceCommandType> accepted_commands(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kGenerator:
      return kGeneratorCommands;
    case DeviceKind::kLoad:
      return kLoadCommands;
    case DeviceKind::kAccumulator:
      return kAccumulatorCommands;
    case DeviceKind::kMeter:
      return kMeterCommands;
    case DeviceKind::kPassiveLoad:
      return {};
  }
  return {};
}

bool accepts_command(DeviceKind kind, DeviceCommandType type) {
  auto accepted = accepted_commands(kind);
  return std::find(accepted.begin(), accepted.end(), type) != accepted.end();
}

}  // namespace recmesh::protocol
