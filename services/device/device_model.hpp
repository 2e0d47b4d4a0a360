#pragma once

#include <cstdint>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "recmesh/core/result.hpp"
#include "recmesh/protocol/device_commands.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

#include "device/device_config.hpp"

namespace recmesh::device {

// The physics of one simulated device, apart from MQTT so that a test can drive it by hand.
// Power is signed from the member's side: positive delivered, negative absorbed.
class DeviceModel {
 public:
  // `hour_of_day` and `seed` make the run reproducible.
  DeviceModel(const DeviceSpec& spec, double cloudiness, std::uint64_t seed);

  // Moves the simulation forward by `seconds` at simulated time `hour_of_day` (0 .. 24). A meter
  // reports `member_net_w` (the member's other devices) unless it has a profile.
  void advance(double seconds, double hour_of_day, double member_net_w = 0);

  // Applies an accepted command; fails with the exit code and a reason for a command that the
  // kind does not accept or with invalid params. Diagnostic and reboot change nothing here.
  Result<std::string> apply(protocol::DeviceCommandType type, const nlohmann::json& params);

  // A crash: output stops and the device reports kFault until reset().
  void crash();
  // After a reboot: healthy again, on (or idle for an accumulator), curtailment lifted.
  void reset();

  protocol::DeviceMetrics snapshot(protocol::Timestamp at) const;

  protocol::DeviceKind kind() const { return kind_; }
  protocol::DeviceState state() const { return state_; }
  bool healthy() const { return state_ != protocol::DeviceState::kFault; }
  double power_w() const { return power_w_; }
  double soc_percent() const { return soc_percent_; }
  double curtail_percent() const { return curtail_percent_; }

 private:
  double noise(double amplitude);  // uniform in [-amplitude, amplitude]

  protocol::DeviceKind kind_;
  double rated_w_;
  double capacity_wh_;
  double voltage_nominal_;
  double cloudiness_;
  std::optional<double> profile_w_;
  std::mt19937_64 rng_;

  protocol::DeviceState state_ = protocol::DeviceState::kOn;
  double curtail_percent_ = 100;  // output limit in percent of rated power
  double power_w_ = 0;
  double voltage_v_;
  double soc_percent_ = 0;
  double temperature_c_ = 20;
  double delivered_wh_ = 0;
  double absorbed_wh_ = 0;
};

}  // namespace recmesh::device
