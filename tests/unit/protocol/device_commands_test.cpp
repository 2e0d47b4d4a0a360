#include "recmesh/protocol/device_commands.hpp"

#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

namespace recmesh::protocol {
namespace {

using enum DeviceCommandType;

constexpr DeviceCommandType kAll[] = {kPowerOn, kShutdown, kReboot,     kDiagnostic,
                                      kCurtail, kIdleMode, kChargeMode, kDischargeMode};

std::vector<DeviceCommandType> accepted(DeviceKind kind) {
  std::vector<DeviceCommandType> out;
  for (auto type : kAll) {
    if (accepts_command(kind, type)) {
      out.push_back(type);
    }
  }
  return out;
}

TEST(DeviceCommandsTest, NamesRoundTrip) {
  for (auto type : kAll) {
    auto parsed = parse_device_command_type(to_string(type));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, type);
  }
  EXPECT_EQ(to_string(kPowerOn), "power-on");
  EXPECT_EQ(to_string(kDischargeMode), "discharge-mode");
  EXPECT_FALSE(parse_device_command_type("Power-On").ok());
  EXPECT_FALSE(parse_device_command_type("power_on").ok());
  for (auto kind : {DeviceKind::kGenerator, DeviceKind::kLoad, DeviceKind::kPassiveLoad,
                    DeviceKind::kAccumulator, DeviceKind::kMeter}) {
    EXPECT_EQ(*parse_device_kind(to_string(kind)), kind);
  }
  EXPECT_FALSE(parse_device_kind("battery").ok());
}

TEST(DeviceCommandsTest, KindsAcceptTheCommandsOfSpec46) {
  EXPECT_EQ(accepted(DeviceKind::kGenerator),
            (std::vector{kPowerOn, kShutdown, kReboot, kDiagnostic, kCurtail}));
  EXPECT_EQ(accepted(DeviceKind::kLoad), (std::vector{kPowerOn, kShutdown, kReboot, kDiagnostic}));
  EXPECT_EQ(accepted(DeviceKind::kAccumulator),
            (std::vector{kShutdown, kReboot, kDiagnostic, kIdleMode, kChargeMode, kDischargeMode}));
  EXPECT_EQ(accepted(DeviceKind::kMeter), (std::vector{kDiagnostic}));
  EXPECT_TRUE(accepted(DeviceKind::kPassiveLoad).empty());
  EXPECT_TRUE(accepted_commands(DeviceKind::kPassiveLoad).empty());
}

TEST(DeviceCommandsTest, ExitCodesAreDistinct) {
  std::vector<std::int32_t> codes{kExitOk,      kExitFailed,  kExitUnsupported, kExitInvalidParams,
                                  kExitExpired, kExitTimeout, kExitBadSignature};
  std::sort(codes.begin(), codes.end());
  EXPECT_EQ(std::adjacent_find(codes.begin(), codes.end()), codes.end());
  EXPECT_EQ(kExitOk, 0);
}

}  // namespace
}  // namespace recmesh::protocol
