// The device simulator's configuration in YAML; what it shares with the gateway's and the EMS
// engine's is in services/common/daemon_config.
#include "device/device_config.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/protocol/timestamp.hpp"

#include "common/daemon_config.hpp"
#include "common/daemon_logging.hpp"
#include "common/yaml_mapping_reader.hpp"

namespace recmesh::device {
namespace {

namespace fs = std::filesystem;

using services::fail_at;
using services::MappingReader;

DeviceSpec parse_device(std::string_view source, const YAML::Node& node, const std::string& prefix,
                        const fs::path& base_dir) {
  DeviceSpec spec;
  services::read_device_entry(
      source, node, prefix, base_dir, spec.id, spec.kind, [&](MappingReader& r) {
        r.on("rec",
             [&](const YAML::Node& v, const std::string& k) { spec.rec = r.identifier(v, k); });
        r.on("member",
             [&](const YAML::Node& v, const std::string& k) { spec.member = r.identifier(v, k); });
        r.on("cert",
             [&](const YAML::Node& v, const std::string& k) { spec.certfile = r.path(v, k); });
        r.on("key",
             [&](const YAML::Node& v, const std::string& k) { spec.keyfile = r.path(v, k); });
        r.on("cafile",
             [&](const YAML::Node& v, const std::string& k) { spec.cafile = r.path(v, k); });
        r.on("rated_power_w", [&](const YAML::Node& v, const std::string& k) {
          spec.rated_power_w = r.number(v, k, 0, 1e9);
        });
        r.on("capacity_wh", [&](const YAML::Node& v, const std::string& k) {
          spec.capacity_wh = r.number(v, k, 1, 1e9);
        });
        r.on("initial_soc_percent", [&](const YAML::Node& v, const std::string& k) {
          spec.initial_soc_percent = r.number(v, k, 0, 100);
        });
        r.on("initially_on", [&](const YAML::Node& v, const std::string& k) {
          spec.initially_on = r.boolean(v, k);
        });
        r.on("voltage_v", [&](const YAML::Node& v, const std::string& k) {
          spec.voltage_v = r.number(v, k, 1, 1e5);
        });
        r.on("profile_w", [&](const YAML::Node& v, const std::string& k) {
          spec.profile_w = r.number(v, k, -1e9, 1e9);
        });
        r.on("crash_at", [&](const YAML::Node& v, const std::string& k) {
          const auto at = protocol::parse_timestamp(r.text(v, k));
          if (!at) {
            fail_at(source, v, k, "expected a UTC timestamp YYYY-MM-DDTHH:MM:SS.mmmZ");
          }
          spec.crash_at = *at;
        });
      });
  if (spec.profile_w && spec.kind != protocol::DeviceKind::kMeter) {
    fail_at(source, node, prefix + ".profile_w", "only a meter has a profile");
  }
  return spec;
}

}  // namespace

double default_rated_power(protocol::DeviceKind kind) {
  switch (kind) {
    case protocol::DeviceKind::kGenerator:
      return 5000;
    case protocol::DeviceKind::kLoad:
      return 7400;  // a single-phase EV charger
    case protocol::DeviceKind::kPassiveLoad:
      return 800;
    case protocol::DeviceKind::kAccumulator:
      return 3000;
    case protocol::DeviceKind::kMeter:
      return 0;
  }
  return 0;
}

DeviceFleetConfig parse_device_config(std::string_view yaml, std::string_view source,
                                      const fs::path& base_dir) {
  const YAML::Node root = services::load_yaml(yaml, source);
  DeviceFleetConfig config;
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
  r.on("diagnostic", [&](const YAML::Node& v, const std::string& k) {
    MappingReader d(source, v, k, base_dir);
    d.on("ems_ca",
         [&](const YAML::Node& x, const std::string& kk) { config.ems_ca = d.path(x, kk); });
    d.on("ems_crl",
         [&](const YAML::Node& x, const std::string& kk) { config.ems_crl = d.path(x, kk); });
    d.on("allowed_signers", [&](const YAML::Node& x, const std::string& kk) {
      if (!x.IsSequence() || x.size() == 0) {
        fail_at(source, x, kk, "expected a non-empty list of common names");
      }
      config.diagnostic_signers.clear();
      for (const auto& item : x) {
        config.diagnostic_signers.push_back(d.text(item, kk));
      }
    });
    d.read();
  });
  r.on("metrics_interval_ms", [&](const YAML::Node& v, const std::string& k) {
    config.metrics_interval = std::chrono::milliseconds(r.integer(v, k, 50, 3600000));
  });
  r.on("seed", [&](const YAML::Node& v, const std::string& k) {
    config.seed = static_cast<std::uint64_t>(r.integer(v, k, 0, std::int64_t{1} << 53));
  });
  r.on("crash_fraction", [&](const YAML::Node& v, const std::string& k) {
    config.crash_fraction = r.number(v, k, 0, 1);
  });
  r.on("run_length_s", [&](const YAML::Node& v, const std::string& k) {
    config.run_length = std::chrono::seconds(r.integer(v, k, 1, 31536000));
  });
  r.on("start_hour", [&](const YAML::Node& v, const std::string& k) {
    config.start_hour = r.number(v, k, 0, 23.999);
  });
  r.on("time_scale", [&](const YAML::Node& v, const std::string& k) {
    config.time_scale = r.number(v, k, 0, 1e5);
  });
  r.on("cloudiness", [&](const YAML::Node& v, const std::string& k) {
    config.cloudiness = r.number(v, k, 0, 1);
  });
  r.on("max_command_bytes", [&](const YAML::Node& v, const std::string& k) {
    config.max_command_bytes = static_cast<std::size_t>(r.integer(v, k, 256, 262144));
  });
  r.on("recent_command_ids", [&](const YAML::Node& v, const std::string& k) {
    config.recent_command_ids = static_cast<std::size_t>(r.integer(v, k, 1, 1000000));
  });
  r.on("reboot_delay_ms", [&](const YAML::Node& v, const std::string& k) {
    config.reboot_delay = std::chrono::milliseconds(r.integer(v, k, 0, 600000));
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

DeviceFleetConfig load_device_config(const fs::path& file) {
  return parse_device_config(read_file(file), file.string(), file.parent_path());
}

void DeviceFleetConfig::resolve_and_validate() {
  const auto invalid = [](const std::string& message) {
    throw Error(ErrorCode::kInvalidArgument, message);
  };
  if (devices.empty()) {
    invalid("devices: at least one device is required");
  }
  if (broker_port < 1 || broker_port > 65535) {
    invalid("broker.port: outside 1 .. 65535");
  }
  if (!pki_dir.empty()) {
    if (ems_ca.empty()) {
      ems_ca = pki_dir / "ca" / "ems" / "cert.pem";
    }
    if (ems_crl.empty()) {
      ems_crl = pki_dir / "ca" / "ems" / "crl.pem";
    }
  }
  if (ems_ca.empty() != ems_crl.empty()) {
    invalid("diagnostic: give both ems_ca and ems_crl, or neither");
  }
  std::set<std::string> ids;
  for (DeviceSpec& spec : devices) {
    const std::string where = "device " + spec.id;
    if (!ids.insert(spec.id).second) {
      invalid(where + ": duplicate id");
    }
    if (spec.rec.empty()) {
      spec.rec = rec;
    }
    if (spec.member.empty()) {
      spec.member = member;
    }
    if (!spec.rated_power_w) {
      spec.rated_power_w = default_rated_power(spec.kind);
    }
    if (!pki_dir.empty()) {
      if (spec.rec.empty() || spec.member.empty()) {
        invalid(where + ": rec and member are needed to find its files in pki_dir");
      }
      services::fill_member_files(pki_dir,
                                  fmt::format("rec_{}_{}_{}", spec.rec, spec.member, spec.id),
                                  spec.rec, spec.member, spec.certfile, spec.keyfile, spec.cafile);
    }
    if (spec.certfile.empty() || spec.keyfile.empty() || spec.cafile.empty()) {
      invalid(where + ": cert, key and cafile are required without pki_dir");
    }
  }
}

}  // namespace recmesh::device
