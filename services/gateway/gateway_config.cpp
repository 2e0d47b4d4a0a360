// The gateway's configuration in YAML; what it shares with the device simulator's and the EMS
// engine's is in services/common/daemon_config.
#include "gateway/gateway_config.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"

#include "common/daemon_config.hpp"
#include "common/daemon_logging.hpp"
#include "common/e2e_settings_reader.hpp"
#include "common/yaml_mapping_reader.hpp"

namespace recmesh::gateway {
namespace {

namespace fs = std::filesystem;

using services::fail_at;
using services::MappingReader;

std::chrono::milliseconds millis(const MappingReader& r, const YAML::Node& v, const std::string& k,
                                 std::int64_t min, std::int64_t max) {
  return std::chrono::milliseconds(r.integer(v, k, min, max));
}

GatewayDevice parse_device(std::string_view source, const YAML::Node& node,
                           const std::string& prefix, const fs::path& base_dir) {
  GatewayDevice device;
  services::read_device_entry(source, node, prefix, base_dir, device.id, device.kind,
                              [&](MappingReader& r) {
                                r.on("capacity_wh", [&](const YAML::Node& v, const std::string& k) {
                                  device.capacity_wh = r.number(v, k, 1, 1e9);
                                });
                              });
  return device;
}

}  // namespace

std::string GatewayConfig::common_name() const {
  return fmt::format("rec_{}_{}_gateway", rec, member);
}

const GatewayDevice* GatewayConfig::find(std::string_view id) const {
  for (const auto& device : devices) {
    if (device.id == id) {
      return &device;
    }
  }
  return nullptr;
}

GatewayConfig parse_gateway_config(std::string_view yaml, std::string_view source,
                                   const fs::path& base_dir) {
  const YAML::Node root = services::load_yaml(yaml, source);
  GatewayConfig config;
  MappingReader r(source, root, "", base_dir);
  r.on("broker", [&](const YAML::Node& v, const std::string& k) {
    services::read_broker(source, v, k, config.broker_host, config.broker_port);
  });
  r.on("logging", [&](const YAML::Node& v, const std::string& k) {
    config.logging = services::read_log_settings(source, v, k);
  });
  r.on("pki_dir",
       [&](const YAML::Node& v, const std::string& k) { config.pki_dir = r.path(v, k); });
  r.on("rec", [&](const YAML::Node& v, const std::string& k) { config.rec = r.identifier(v, k); });
  r.on("member",
       [&](const YAML::Node& v, const std::string& k) { config.member = r.identifier(v, k); });
  r.on("cert", [&](const YAML::Node& v, const std::string& k) { config.certfile = r.path(v, k); });
  r.on("key", [&](const YAML::Node& v, const std::string& k) { config.keyfile = r.path(v, k); });
  r.on("cafile", [&](const YAML::Node& v, const std::string& k) { config.cafile = r.path(v, k); });
  r.on("database",
       [&](const YAML::Node& v, const std::string& k) { config.database = r.path(v, k); });
  r.on("metrics_interval_ms", [&](const YAML::Node& v, const std::string& k) {
    config.metrics_interval = millis(r, v, k, 100, 3600000);
  });
  r.on("device_timeout_ms", [&](const YAML::Node& v, const std::string& k) {
    config.device_timeout = millis(r, v, k, 100, 3600000);
  });
  r.on("log_batch_interval_ms", [&](const YAML::Node& v, const std::string& k) {
    config.log_batch_interval = millis(r, v, k, 100, 86400000);
  });
  r.on("max_payload_bytes", [&](const YAML::Node& v, const std::string& k) {
    config.max_payload_bytes = static_cast<std::size_t>(r.integer(v, k, 1024, 1048576));
  });
  r.on("e2e", [&](const YAML::Node& v, const std::string& k) {
    config.e2e = services::read_e2e_settings(source, v, k);
  });
  r.on("outbox_max_messages", [&](const YAML::Node& v, const std::string& k) {
    config.outbox_max_messages = static_cast<std::size_t>(r.integer(v, k, 1, 10000000));
  });
  r.on("island", [&](const YAML::Node& v, const std::string& k) {
    MappingReader i(source, v, k, base_dir);
    i.on("after_ms", [&](const YAML::Node& x, const std::string& kk) {
      config.island_after = millis(i, x, kk, 0, 86400000);
      if (config.island_after.count() != 0 && config.island_after.count() < 100) {
        fail_at(source, x, kk, "expected 0 (off) or at least 100");
      }
    });
    i.on("threshold_w", [&](const YAML::Node& x, const std::string& kk) {
      config.island_threshold_w = i.number(x, kk, 0, 1e9);
    });
    i.read();
  });
  r.on("devices", [&](const YAML::Node& v, const std::string& k) {
    services::read_list(source, v, k, [&](const YAML::Node& item, const std::string& key) {
      config.devices.push_back(parse_device(source, item, key, base_dir));
    });
  });
  r.read();
  if (config.devices.empty()) {
    fail_at(source, root, "devices", "at least one device is required");
  }
  config.resolve_and_validate();
  return config;
}

GatewayConfig load_gateway_config(const fs::path& file) {
  return parse_gateway_config(read_file(file), file.string(), file.parent_path());
}

void GatewayConfig::resolve_and_validate() {
  const auto invalid = [](const std::string& message) {
    throw Error(ErrorCode::kInvalidArgument, message);
  };
  if (!is_valid_identifier(rec) || !is_valid_identifier(member)) {
    invalid("rec, member: required IDs");
  }
  if (devices.empty()) {
    invalid("devices: at least one device is required");
  }
  if (broker_port < 1 || broker_port > 65535) {
    invalid("broker.port: outside 1 .. 65535");
  }
  if (database.empty()) {
    invalid("database: required");
  }
  if (outbox_max_messages < 1 || outbox_max_messages > 10000000) {
    invalid("outbox_max_messages: outside 1 .. 10000000");
  }
  if (!pki_dir.empty()) {
    services::fill_member_files(pki_dir, common_name(), rec, member, certfile, keyfile, cafile);
  }
  if (certfile.empty() || keyfile.empty() || cafile.empty()) {
    invalid("cert, key and cafile are required without pki_dir");
  }
  // With e2e and no pki_dir the gateway starts, and each handshake is refused (bad-certificate,
  // naming the missing ca/ems files) until the EMS CA chain and its CRLs are provided.
  std::set<std::string> ids;
  for (const auto& device : devices) {
    if (!is_valid_identifier(device.id)) {
      invalid("device " + device.id + ": invalid id");
    }
    if (!ids.insert(device.id).second) {
      invalid("device " + device.id + ": duplicate id");
    }
  }
}

}  // namespace recmesh::gateway
