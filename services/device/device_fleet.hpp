#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "recmesh/crypto/jws.hpp"
#include "recmesh/mqtt/event_loop.hpp"

#include "device/device_config.hpp"
#include "device/simulated_device.hpp"

namespace recmesh::device {

// Every device of a configuration on one EventLoop: `recmesh device` and the tests use it alike.
// Construct, start() and stop() on the loop's thread (or before it runs).
class DeviceFleet {
 public:
  // Throws Error for unreadable certificates, keys or EMS trust files (start-up errors).
  DeviceFleet(mqtt::EventLoop& loop, DeviceFleetConfig config);
  DeviceFleet(const DeviceFleet&) = delete;
  DeviceFleet& operator=(const DeviceFleet&) = delete;
  ~DeviceFleet();

  void start();
  // Every device publishes offline and disconnects; `done` runs when the last one has.
  void stop(std::function<void()> done);

  const DeviceFleetConfig& config() const { return config_; }
  std::vector<std::unique_ptr<SimulatedDevice>>& devices() { return devices_; }
  SimulatedDevice* find(std::string_view id);
  // Net power of a member's simulated devices (meters excluded): positive while exporting.
  double member_net_w(const DeviceSpec& meter) const;

 private:
  mqtt::EventLoop& loop_;
  DeviceFleetConfig config_;
  SimulationClock clock_;
  std::unique_ptr<crypto::JwsVerifier> verifier_;
  std::vector<std::unique_ptr<SimulatedDevice>> devices_;
};

// `recmesh device`: runs the fleet until SIGTERM or SIGINT, then stops it cleanly. Returns 0.
int run_device_fleet(DeviceFleetConfig config);

}  // namespace recmesh::device
