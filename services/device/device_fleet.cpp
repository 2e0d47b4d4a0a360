#include "device/device_fleet.hpp"

#include <csignal>
#include <random>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

#include "common/stop_on_signal.hpp"

namespace recmesh::device {

using services::StopOnSignal;

DeviceFleet::DeviceFleet(mqtt::EventLoop& loop, DeviceFleetConfig config)
    : loop_(loop), config_(std::move(config)) {
  config_.resolve_and_validate();
  clock_.origin = loop_.now();
  clock_.start_hour = config_.start_hour;
  clock_.time_scale = config_.time_scale;
  if (!config_.ems_ca.empty()) {
    crypto::SignerTrust trust;
    trust.issuer_pem = read_file(config_.ems_ca);
    trust.crl_pem = read_file(config_.ems_crl);
    trust.allowed_signers = config_.diagnostic_signers;
    verifier_ = std::make_unique<crypto::JwsVerifier>(trust);
  }
  // One generator for the whole run: the same seed gives the same crashes and noise.
  std::mt19937_64 rng(config_.seed);
  std::bernoulli_distribution crashes(config_.crash_fraction);
  std::uniform_int_distribution<std::int64_t> crash_at(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(config_.run_length).count());
  SimulatedDevice::Environment env;
  env.loop = &loop_;
  env.config = &config_;
  env.clock = &clock_;
  env.verifier = verifier_.get();
  env.member_net_w = [this](const DeviceSpec& meter) { return member_net_w(meter); };
  devices_.reserve(config_.devices.size());
  for (const DeviceSpec& spec : config_.devices) {
    const std::uint64_t seed = rng();
    std::optional<std::chrono::milliseconds> crash_after;
    if (crashes(rng)) {
      crash_after = std::chrono::milliseconds(crash_at(rng));
    }
    if (spec.crash_at) {
      // A crash planned for an instant that has passed happened to a previous run.
      const auto now =
          std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
      crash_after = *spec.crash_at > now
                        ? std::optional<std::chrono::milliseconds>(*spec.crash_at - now)
                        : std::nullopt;
    }
    devices_.push_back(std::make_unique<SimulatedDevice>(env, spec, seed, crash_after));
  }
}

DeviceFleet::~DeviceFleet() = default;

void DeviceFleet::start() {
  clock_.origin = loop_.now();
  for (auto& device : devices_) {
    device->start();
  }
  spdlog::info("{} simulated devices started", devices_.size());
}

void DeviceFleet::stop(std::function<void()> done) {
  auto remaining = std::make_shared<std::size_t>(devices_.size());
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  if (devices_.empty()) {
    (*finish)();
    return;
  }
  for (auto& device : devices_) {
    device->stop([remaining, finish] {
      if (--*remaining == 0 && *finish) {
        (*finish)();
      }
    });
  }
}

SimulatedDevice* DeviceFleet::find(std::string_view id) {
  for (auto& device : devices_) {
    if (device->spec().id == id) {
      return device.get();
    }
  }
  return nullptr;
}

double DeviceFleet::member_net_w(const DeviceSpec& meter) const {
  double net = 0;
  for (const auto& device : devices_) {
    const DeviceSpec& spec = device->spec();
    if (spec.kind != protocol::DeviceKind::kMeter && spec.rec == meter.rec &&
        spec.member == meter.member) {
      net += device->model().power_w();
    }
  }
  return net;
}

int run_device_fleet(DeviceFleetConfig config) {
  // Signals arrive as readable bytes on the loop, never in the middle of a handler.
  StopOnSignal signals;
  mqtt::EventLoop loop;
  DeviceFleet fleet(loop, std::move(config));
  signals.run(
      loop, "every device", [&] { fleet.start(); },
      [&](std::function<void()> done) { fleet.stop(std::move(done)); });
  std::uint64_t refused = 0;
  std::uint64_t metrics = 0;
  for (auto& device : fleet.devices()) {
    refused += device->counters().refused();
    metrics += device->counters().metrics_published;
  }
  spdlog::info("stopped: {} metrics published, {} commands refused", metrics, refused);
  return 0;
}

}  // namespace recmesh::device
