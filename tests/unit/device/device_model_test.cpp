#include "device/device_model.hpp"

#include <gtest/gtest.h>

namespace recmesh::device {
namespace {

using protocol::DeviceCommandType;
using protocol::DeviceKind;
using protocol::DeviceState;

DeviceSpec spec(DeviceKind kind) {
  DeviceSpec s;
  s.id = "d1";
  s.kind = kind;
  s.rated_power_w = default_rated_power(kind);
  return s;
}

TEST(DeviceModel, GeneratorFollowsDaylightAndCurtailment) {
  DeviceModel pv(spec(DeviceKind::kGenerator), 0.0, 1);
  pv.advance(1, 0.0);
  EXPECT_EQ(pv.power_w(), 0);  // midnight
  pv.advance(1, 12.0);
  EXPECT_NEAR(pv.power_w(), 5000, 1e-6);
  ASSERT_TRUE(pv.apply(DeviceCommandType::kCurtail, {{"percentage", 40}}));
  pv.advance(1, 12.0);
  EXPECT_NEAR(pv.power_w(), 2000, 1e-6);
  EXPECT_EQ(pv.state(), DeviceState::kCurtailed);
  EXPECT_FALSE(pv.apply(DeviceCommandType::kCurtail, {{"percentage", 140}}));
}

TEST(DeviceModel, SameSeedGivesSameNoise) {
  DeviceModel a(spec(DeviceKind::kGenerator), 0.5, 7);
  DeviceModel b(spec(DeviceKind::kGenerator), 0.5, 7);
  for (int i = 0; i < 10; ++i) {
    a.advance(1, 11.0);
    b.advance(1, 11.0);
    EXPECT_EQ(a.power_w(), b.power_w());
  }
}

TEST(DeviceModel, BatteryIntegratesWithinCapacity) {
  DeviceSpec s = spec(DeviceKind::kAccumulator);
  s.capacity_wh = 1000;
  s.rated_power_w = 1000;
  s.initial_soc_percent = 50;
  DeviceModel battery(s, 0, 1);
  ASSERT_TRUE(battery.apply(DeviceCommandType::kChargeMode, {}));
  battery.advance(360, 12);  // 100 Wh in
  EXPECT_NEAR(battery.soc_percent(), 60, 1e-9);
  EXPECT_NEAR(battery.power_w(), -1000, 1e-9);
  battery.advance(36000, 12);  // far more than the room left
  EXPECT_DOUBLE_EQ(battery.soc_percent(), 100);
  ASSERT_TRUE(battery.apply(DeviceCommandType::kDischargeMode, {}));
  battery.advance(720, 12);
  EXPECT_NEAR(battery.soc_percent(), 80, 1e-9);
  EXPECT_GT(battery.power_w(), 0);
  ASSERT_TRUE(battery.apply(DeviceCommandType::kIdleMode, {}));
  battery.advance(720, 12);
  EXPECT_NEAR(battery.soc_percent(), 80, 1e-9);
  EXPECT_FALSE(battery.apply(DeviceCommandType::kPowerOn, {}));
}

TEST(DeviceModel, PassiveLoadRefusesEveryCommand) {
  DeviceModel house(spec(DeviceKind::kPassiveLoad), 0, 1);
  for (const auto type : {DeviceCommandType::kPowerOn, DeviceCommandType::kShutdown,
                          DeviceCommandType::kReboot, DeviceCommandType::kDiagnostic}) {
    EXPECT_FALSE(house.apply(type, {}));
  }
  house.advance(1, 12);
  EXPECT_LT(house.power_w(), 0);
}

TEST(DeviceModel, CrashStopsOutputUntilReset) {
  DeviceModel load(spec(DeviceKind::kLoad), 0, 1);
  load.crash();
  load.advance(1, 12);
  EXPECT_EQ(load.power_w(), 0);
  EXPECT_EQ(load.snapshot({}).state, DeviceState::kFault);
  load.reset();
  load.advance(1, 12);
  EXPECT_LT(load.power_w(), 0);
}

TEST(DeviceModel, MeterReportsMemberNetOrProfile) {
  DeviceModel meter(spec(DeviceKind::kMeter), 0, 1);
  meter.advance(1, 12, -1500);
  EXPECT_EQ(meter.power_w(), -1500);
  DeviceSpec s = spec(DeviceKind::kMeter);
  s.profile_w = 200;
  DeviceModel fixed(s, 0, 1);
  fixed.advance(1, 12, -1500);
  EXPECT_EQ(fixed.power_w(), 200);
}

}  // namespace
}  // namespace recmesh::device
