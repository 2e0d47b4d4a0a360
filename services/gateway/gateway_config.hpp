#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/e2e/settings.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/protocol/device_commands.hpp"

namespace recmesh::gateway {

// One device of the member, as the gateway knows it (docs/gateway.md, "devices").
struct GatewayDevice {
  std::string id;  // [a-z0-9][a-z0-9-]{0,31}
  protocol::DeviceKind kind = protocol::DeviceKind::kGenerator;
  double capacity_wh = 10000;  // accumulators: weight of the member's SOC, 1 .. 1e9
};

// `recmesh gateway --config F`.
struct GatewayConfig {
  std::string broker_host = "127.0.0.1";
  int broker_port = 8883;         // the member listener of the local broker, 1 .. 65535
  std::filesystem::path pki_dir;  // where the gateway's files come from when not listed
  std::string rec;
  std::string member;
  std::filesystem::path certfile;  // default: <pki_dir>/issued/rec_<rec>_<member>_gateway/chain.pem
  std::filesystem::path keyfile;   // default: <pki_dir>/issued/rec_<rec>_<member>_gateway/key.pem
  std::filesystem::path cafile;    // default: <pki_dir>/ca/member_<rec>_<member>/chain.pem
  std::filesystem::path database;  // the command and log store (SQLite); required
  std::chrono::milliseconds metrics_interval{30000};    // aggregation window: 100 ms .. 1 h
  std::chrono::milliseconds device_timeout{10000};      // per device command: 100 ms .. 1 h
  std::chrono::milliseconds log_batch_interval{60000};  // INFO forwarding: 100 ms .. 1 d
  std::size_t max_payload_bytes = 65536;                // larger inbound payloads are refused
  // Platform messages held while the local broker is unreachable (docs/gateway.md, "Outbox");
  // beyond it the oldest are dropped and counted: 1 .. 10,000,000.
  std::size_t outbox_max_messages = 100000;
  // Island mode (docs/gateway.md): after the bridge has been offline (or unseen) this long, the
  // gateway steers the accumulators for self-consumption. 0 disables it: 0 or 1 s .. 1 d.
  std::chrono::milliseconds island_after{0};
  double island_threshold_w = 100;     // surplus or deficit that moves the batteries: 0 .. 1e9
  std::vector<GatewayDevice> devices;  // at least one
  // End-to-end protection with the EMS engine (docs/protocol/e2e.md, "Settings"); it verifies
  // the engine against <pki_dir>/ca/ems and its CRLs.
  e2e::E2eSettings e2e;
  log::LogSettings logging;  // level and format (human or JSON lines); flags override them

  // The gateway's common name, rec_<rec>_<member>_gateway.
  std::string common_name() const;
  const GatewayDevice* find(std::string_view id) const;
  // Fills defaults from pki_dir and checks ranges and uniqueness; throws
  // Error(kInvalidArgument) naming the key.
  void resolve_and_validate();
};

// Parses YAML; unknown keys, wrong types and out-of-range values throw Error(kInvalidArgument)
// with "<source>:<line>: <key>: <problem>". Relative paths are taken from `base_dir`.
GatewayConfig parse_gateway_config(std::string_view yaml, std::string_view source,
                                   const std::filesystem::path& base_dir = {});
GatewayConfig load_gateway_config(const std::filesystem::path& file);

}  // namespace recmesh::gateway
