#include "device/device_model.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

namespace recmesh::device {
namespace {

using protocol::DeviceCommandType;
using protocol::DeviceKind;
using protocol::DeviceState;

}  // namespace

DeviceModel::DeviceModel(const DeviceSpec& spec, double cloudiness, std::uint64_t seed)
    : kind_(spec.kind),
      rated_w_(spec.rated_power_w.value_or(default_rated_power(spec.kind))),
      capacity_wh_(spec.capacity_wh),
      voltage_nominal_(spec.voltage_v),
      cloudiness_(cloudiness),
      profile_w_(spec.profile_w),
      rng_(seed),
      voltage_v_(spec.voltage_v) {
  if (kind_ == DeviceKind::kAccumulator) {
    soc_percent_ = spec.initial_soc_percent;
    state_ = DeviceState::kIdle;
  } else if ((kind_ == DeviceKind::kGenerator || kind_ == DeviceKind::kLoad) &&
             !spec.initially_on) {
    state_ = DeviceState::kOff;
  }
}

double DeviceModel::noise(double amplitude) {
  std::uniform_real_distribution<double> d(-amplitude, amplitude);
  return d(rng_);
}

void DeviceModel::advance(double seconds, double hour_of_day, double member_net_w) {
  voltage_v_ = voltage_nominal_ * (1.0 + noise(0.01));
  double power = 0;
  switch (state_) {
    case DeviceState::kFault:
    case DeviceState::kOff:
    case DeviceState::kOffline:
    case DeviceState::kIdle:
      power = 0;
      break;
    case DeviceState::kOn:
    case DeviceState::kCurtailed:
    case DeviceState::kCharging:
    case DeviceState::kDischarging:
      switch (kind_) {
        case DeviceKind::kGenerator: {
          // Daylight from 06:00 to 18:00, a sine peaking at noon, dimmed by passing clouds.
          const double sun = std::max(0.0, std::sin(std::numbers::pi * (hour_of_day - 6.0) / 12.0));
          const double clouds = 1.0 - cloudiness_ * (0.5 + noise(0.5));
          power = rated_w_ * sun * clouds * curtail_percent_ / 100.0;
          break;
        }
        case DeviceKind::kLoad:
          power = -rated_w_ * (0.95 + noise(0.05));
          break;
        case DeviceKind::kPassiveLoad:
          power = -rated_w_ * (0.6 + noise(0.4));
          break;
        case DeviceKind::kAccumulator:
          if (state_ == DeviceState::kCharging) {
            power = soc_percent_ < 100 ? -rated_w_ : 0;
          } else if (state_ == DeviceState::kDischarging) {
            power = soc_percent_ > 0 ? rated_w_ : 0;
          }
          break;
        case DeviceKind::kMeter:
          power = profile_w_.value_or(member_net_w);
          break;
      }
      break;
  }
  if (kind_ == DeviceKind::kAccumulator && capacity_wh_ > 0 && power != 0) {
    // Never move past empty or full: clip the energy of this step to what is left.
    const double wanted_wh = -power * seconds / 3600.0;  // positive while charging
    const double room_wh = (100.0 - soc_percent_) / 100.0 * capacity_wh_;
    const double stored_wh = soc_percent_ / 100.0 * capacity_wh_;
    const double moved_wh = std::clamp(wanted_wh, -stored_wh, room_wh);
    soc_percent_ = std::clamp(soc_percent_ + moved_wh / capacity_wh_ * 100.0, 0.0, 100.0);
    if (seconds > 0) {
      power = -moved_wh * 3600.0 / seconds;
    }
  }
  power_w_ = power;
  const double energy_wh = std::abs(power) * seconds / 3600.0;
  if (power > 0) {
    delivered_wh_ += energy_wh;
  } else {
    absorbed_wh_ += energy_wh;
  }
  // First-order warming towards 25 °C plus 20 °C at full power.
  const double target = 25.0 + (rated_w_ > 0 ? 20.0 * std::abs(power) / rated_w_ : 0.0);
  const double k = std::min(1.0, seconds / 600.0);
  temperature_c_ += (target - temperature_c_) * k;
}

Result<std::string> DeviceModel::apply(DeviceCommandType type, const nlohmann::json& params) {
  if (!protocol::accepts_command(kind_, type)) {
    return Status{ErrorCode::kInvalidArgument,
                  fmt::format("a {} does not accept {}", protocol::to_string(kind_),
                              protocol::to_string(type))};
  }
  switch (type) {
    case DeviceCommandType::kPowerOn:
      state_ = curtail_percent_ < 100 ? DeviceState::kCurtailed : DeviceState::kOn;
      return std::string("powered on");
    case DeviceCommandType::kShutdown:
      state_ = DeviceState::kOff;
      power_w_ = 0;
      return std::string("shut down");
    case DeviceCommandType::kCurtail: {
      const auto it = params.find("percentage");
      if (it == params.end() || !it->is_number()) {
        return Status{ErrorCode::kInvalidArgument, "params.percentage is required"};
      }
      const double percentage = it->get<double>();
      if (!(percentage >= 0 && percentage <= 100)) {
        return Status{ErrorCode::kInvalidArgument, "params.percentage is outside 0 .. 100"};
      }
      curtail_percent_ = percentage;
      if (state_ != DeviceState::kOff) {
        state_ = percentage < 100 ? DeviceState::kCurtailed : DeviceState::kOn;
      }
      return fmt::format("output limited to {}%", percentage);
    }
    case DeviceCommandType::kIdleMode:
      state_ = DeviceState::kIdle;
      return std::string("idle");
    case DeviceCommandType::kChargeMode:
      state_ = DeviceState::kCharging;
      return std::string("charging");
    case DeviceCommandType::kDischargeMode:
      state_ = DeviceState::kDischarging;
      return std::string("discharging");
    case DeviceCommandType::kReboot:
    case DeviceCommandType::kDiagnostic:
      return std::string();
  }
  return std::string();
}

void DeviceModel::crash() {
  state_ = DeviceState::kFault;
  power_w_ = 0;
}

void DeviceModel::reset() {
  curtail_percent_ = 100;
  power_w_ = 0;
  state_ = kind_ == DeviceKind::kAccumulator ? DeviceState::kIdle : DeviceState::kOn;
}

protocol::DeviceMetrics DeviceModel::snapshot(protocol::Timestamp at) const {
  protocol::DeviceMetrics m;
  m.kind = kind_;
  m.state = state_;
  m.voltage_v = voltage_v_;
  m.power_w = power_w_;
  m.current_a = voltage_v_ > 0 ? power_w_ / voltage_v_ : 0;
  m.energy_delivered_wh = delivered_wh_;
  m.energy_absorbed_wh = absorbed_wh_;
  m.temperature_c = temperature_c_;
  if (kind_ == DeviceKind::kAccumulator) {
    m.soc_percent = soc_percent_;
  }
  m.timestamp = at;
  return m;
}

}  // namespace recmesh::device
