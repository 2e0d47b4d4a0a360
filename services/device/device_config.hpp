#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/log/log_settings.hpp"
#include "recmesh/protocol/device_commands.hpp"

namespace recmesh::device {

// One simulated device (docs/device-simulator.md, "devices").
struct DeviceSpec {
  std::string id;  // device ID: [a-z0-9][a-z0-9-]{0,31}
  protocol::DeviceKind kind = protocol::DeviceKind::kGenerator;
  std::string rec;     // default: the fleet's rec; picks issued/rec_<rec>_<member>_<id>/
  std::string member;  // default: the fleet's member
  std::filesystem::path certfile;       // default from pki_dir: issued/<cn>/chain.pem
  std::filesystem::path keyfile;        // default from pki_dir: issued/<cn>/key.pem
  std::filesystem::path cafile;         // default from pki_dir: ca/member_<rec>_<member>/chain.pem
  std::optional<double> rated_power_w;  // peak (generator) or draw (loads, battery); by kind
  double capacity_wh = 10000;           // accumulator: 1 .. 1e9
  double initial_soc_percent = 50;      // accumulator: 0 .. 100
  bool initially_on = true;             // loads and generators start on
  double voltage_v = 230;               // nominal AC voltage: 1 .. 1e5
  // meter: a fixed net exchange (positive = export) instead of the member's simulated devices.
  std::optional<double> profile_w;
  // The device crashes at this instant (UTC) if the process is running then, whatever
  // crash_fraction draws; a process started after it runs the device healthy (a fresh boot).
  std::optional<std::chrono::sys_time<std::chrono::milliseconds>> crash_at;
};

// `recmesh device --config F`: many devices of one or more members in one process.
struct DeviceFleetConfig {
  std::string broker_host = "127.0.0.1";
  int broker_port = 8883;         // 1 .. 65535
  std::filesystem::path pki_dir;  // where device files come from when not listed
  std::string rec;                // default REC of the devices
  std::string member;             // default member of the devices
  std::filesystem::path ems_ca;   // trust anchor of diagnostic commands
  std::filesystem::path ems_crl;  // the EMS CA's CRL
  std::vector<std::string> diagnostic_signers{"ems_engine"};  // allowed command signers
  std::chrono::milliseconds metrics_interval{5000};           // 50 ms .. 1 h
  std::uint64_t seed = 1;                                     // RNG seed of the whole run
  double crash_fraction = 0.15;                  // share of devices that crash in run_length
  std::chrono::seconds run_length{3600};         // window in which crashes are placed: 1 s .. 1 y
  double start_hour = 12.0;                      // simulated time of day at start: 0 .. <24
  double time_scale = 1.0;                       // simulated seconds per real second: 0 .. 1e5
  double cloudiness = 0.2;                       // PV noise: 0 (clear) .. 1 (overcast)
  std::size_t max_command_bytes = 16384;         // larger control payloads are refused
  std::size_t recent_command_ids = 256;          // per device, for duplicate detection: 1 .. 1e6
  std::chrono::milliseconds reboot_delay{1000};  // offline time of a reboot: 0 .. 10 min
  std::vector<DeviceSpec> devices;               // at least one
  log::LogSettings logging;  // level and format (human or JSON lines); flags override them

  // Fills per-device defaults (rec, member, files from pki_dir, EMS trust from pki_dir) and
  // checks ranges and uniqueness; throws Error(kInvalidArgument) naming the key.
  void resolve_and_validate();
};

// Parses YAML; unknown keys, wrong types and out-of-range values throw Error(kInvalidArgument)
// with "<source>:<line>: <key>: <problem>". Relative paths are taken from `base_dir`.
DeviceFleetConfig parse_device_config(std::string_view yaml, std::string_view source,
                                      const std::filesystem::path& base_dir = {});
DeviceFleetConfig load_device_config(const std::filesystem::path& file);

// The default rated power of a kind (W).
double default_rated_power(protocol::DeviceKind kind);

}  // namespace recmesh::device
