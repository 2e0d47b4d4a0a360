// The device simulator's configuration in YAML. Kept to this one file so that it can move to the
// shared configuration framework without touching the simulator.
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

#include "common/yaml_mapping_reader.hpp"

namespace recmesh::device {
namespace {

namespace fs = std::filesystem;

using services::fail_at;
using services::MappingReader;

DeviceSpec parse_device(std::string_view source, const YAML::Node& node, const std::string& prefix,
                        const fs::path& base_dir) {
  DeviceSpec spec;
  MappingReader r(source, node, prefix, base_dir);
  bool has_id = false;
  bool has_kind = false;
  r.on("id", [&](const YAML::Node& v, const std::string& k) {
    spec.id = r.identifier(v, k);
    has_id = true;
  });
  r.on("kind", [&](const YAML::Node& v, const std::string& k) {
    const auto kind = protocol::parse_device_kind(r.text(v, k));
    if (!kind) {
      fail_at(source, v, k, "expected one of generator, load, passive-load, accumulator, meter");
    }
    spec.kind = *kind;
    has_kind = true;
  });
  r.on("rec", [&](const YAML::Node& v, const std::string& k) { spec.rec = r.identifier(v, k); });
  r.on("member",
       [&](const YAML::Node& v, const std::string& k) { spec.member = r.identifier(v, k); });
  r.on("cert", [&](const YAML::Node& v, const std::string& k) { spec.certfile = r.path(v, k); });
  r.on("key", [&](const YAML::Node& v, const std::string& k) { spec.keyfile = r.path(v, k); });
  r.on("cafile", [&](const YAML::Node& v, const std::string& k) { spec.cafile = r.path(v, k); });
  r.on("rated_power_w", [&](const YAML::Node& v, const std::string& k) {
    spec.rated_power_w = r.number(v, k, 0, 1e9);
  });
  r.on("capacity_wh", [&](const YAML::Node& v, const std::string& k) {
    spec.capacity_wh = r.number(v, k, 1, 1e9);
  });
  r.on("initial_soc_percent", [&](const YAML::Node& v, const std::string& k) {
    spec.initial_soc_percent = r.number(v, k, 0, 100);
  });
  r.on("initially_on",
       [&](const YAML::Node& v, const std::string& k) { spec.initially_on = r.boolean(v, k); });
  r.on("voltage_v",
       [&](const YAML::Node& v, const std::string& k) { spec.voltage_v = r.number(v, k, 1, 1e5); });
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
  r.read();
  if (!has_id) {
    fail_at(source, node, prefix + ".id", "required");
  }
  if (!has_kind) {
    fail_at(source, node, prefix + ".kind", "required");
  }
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
  services::on_member_side_keys(r, config);
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
    if (!v.IsSequence()) {
      fail_at(source, v, k, "expected a list of devices");
    }
    std::size_t index = 0;
    for (const auto& item : v) {
      config.devices.push_back(
          parse_device(source, item, fmt::format("{}[{}]", k, index++), base_dir));
    }
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
      const fs::path issued =
          pki_dir / "issued" / fmt::format("rec_{}_{}_{}", spec.rec, spec.member, spec.id);
      if (spec.certfile.empty()) {
        spec.certfile = issued / "chain.pem";
      }
      if (spec.keyfile.empty()) {
        spec.keyfile = issued / "key.pem";
      }
      if (spec.cafile.empty()) {
        spec.cafile =
            pki_dir / "ca" / fmt::format("member_{}_{}", spec.rec, spec.member) / "chain.pem";
      }
    }
    if (spec.certfile.empty() || spec.keyfile.empty() || spec.cafile.empty()) {
      invalid(where + ": cert, key and cafile are required without pki_dir");
    }
  }
}

}  // namespace recmesh::device
