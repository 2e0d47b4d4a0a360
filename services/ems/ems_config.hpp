#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "recmesh/e2e/settings.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/control_messages.hpp"

namespace recmesh::ems {

// `recmesh ems --config F` and `recmesh ctl --config F` (docs/ems.md, "Configuration").
struct EmsConfig {
  std::string broker_host = "127.0.0.1";
  int broker_port = 8883;                // the central broker's EMS listener: 1 .. 65535
  std::string client_id = "ems_engine";  // MQTT client ID; the certificate's common name
  // Where the engine's files come from when not listed: issued/ems_engine/{chain,key}.pem,
  // ca/ems/chain.pem; member CAs (for diagnostic reports) are read from ca/member_<r>_<m>/.
  std::filesystem::path pki_dir;
  std::filesystem::path cafile;
  std::filesystem::path certfile;
  std::filesystem::path keyfile;
  std::filesystem::path database = "ems.db";
  std::chrono::milliseconds policy_period{60000};     // 0 disables the policy; else 100 ms .. 1 d
  std::chrono::milliseconds control_timeout{30000};   // no final response by then: TIMED_OUT
  std::chrono::milliseconds control_ttl{60000};       // expire_at - issued_at
  std::chrono::milliseconds metrics_max_age{300000};  // older aggregates are not acted upon
  double surplus_threshold_w = 500;                   // net export above it: store-surplus
  double deficit_threshold_w = 500;                   // net import above it: cover-deficit
  double max_soc_percent = 95;                        // no store-surplus at or above
  double min_soc_percent = 20;                        // no cover-deficit at or below
  protocol::RetryPolicy retry_policy{2, 1000, true};
  // End-to-end protection with each member's gateway (docs/protocol/e2e.md, "Settings").
  e2e::E2eSettings e2e;
  log::LogSettings logging;  // level and format (human or JSON lines); flags override them

  // Fills file defaults from pki_dir and checks that the engine's files are given.
  void resolve_and_validate();
  mqtt::MqttClientOptions mqtt_options() const;
};

// Parses YAML; unknown keys, wrong types and out-of-range values throw Error(kInvalidArgument)
// with "<source>:<line>: <key>: <problem>". Relative paths are taken from `base_dir`.
EmsConfig parse_ems_config(std::string_view yaml, std::string_view source,
                           const std::filesystem::path& base_dir = {});
EmsConfig load_ems_config(const std::filesystem::path& file);

}  // namespace recmesh::ems
