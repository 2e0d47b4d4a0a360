// The EMS engine's configuration in YAML.
#include "ems/ems_config.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

#include "common/daemon_config.hpp"
#include "common/daemon_logging.hpp"
#include "common/e2e_settings_reader.hpp"
#include "common/yaml_mapping_reader.hpp"

namespace recmesh::ems {
namespace {

namespace fs = std::filesystem;

using services::fail_at;

// Durations are whole milliseconds in this file.
class Reader : public services::ScalarReader {
 public:
  using ScalarReader::ScalarReader;
  std::chrono::milliseconds millis(const YAML::Node& value, const std::string& key,
                                   std::int64_t min, std::int64_t max) const {
    return std::chrono::milliseconds(integer(value, key, min, max));
  }
};

using Handler = services::MappingReader::Handler;

void read_mapping(std::string_view source, const YAML::Node& node, const std::string& prefix,
                  const std::map<std::string, Handler>& handlers) {
  services::MappingReader reader(source, node, prefix, {});
  for (const auto& [key, handler] : handlers) {
    reader.on(key, handler);
  }
  reader.read();
}

constexpr std::int64_t kDayMs = 86'400'000;

}  // namespace

EmsConfig parse_ems_config(std::string_view yaml, std::string_view source,
                           const fs::path& base_dir) {
  const YAML::Node root = services::load_yaml(yaml, source);
  EmsConfig c;
  const Reader r(source, base_dir);
  using N = const YAML::Node&;
  using K = const std::string&;
  read_mapping(
      source, root, "",
      {
          {"broker",
           [&](N v, K k) { services::read_broker(source, v, k, c.broker_host, c.broker_port); }},
          {"logging", [&](N v, K k) { c.logging = services::read_log_settings(source, v, k); }},
          {"client_id", [&](N v, K k) { c.client_id = r.text(v, k); }},
          {"pki_dir", [&](N v, K k) { c.pki_dir = r.path(v, k); }},
          {"cafile", [&](N v, K k) { c.cafile = r.path(v, k); }},
          {"cert", [&](N v, K k) { c.certfile = r.path(v, k); }},
          {"key", [&](N v, K k) { c.keyfile = r.path(v, k); }},
          {"database", [&](N v, K k) { c.database = r.path(v, k); }},
          {"policy_period_ms",
           [&](N v, K k) {
             c.policy_period = r.millis(v, k, 0, kDayMs);
             if (c.policy_period.count() != 0 && c.policy_period.count() < 100) {
               fail_at(source, v, k, "expected 0 (off) or 100 .. 86400000");
             }
           }},
          {"control_timeout_ms", [&](N v, K k) { c.control_timeout = r.millis(v, k, 10, kDayMs); }},
          {"control_ttl_ms", [&](N v, K k) { c.control_ttl = r.millis(v, k, 10, kDayMs); }},
          {"metrics_max_age_ms", [&](N v, K k) { c.metrics_max_age = r.millis(v, k, 10, kDayMs); }},
          {"surplus_threshold_w",
           [&](N v, K k) { c.surplus_threshold_w = r.number(v, k, 0, 1e9); }},
          {"deficit_threshold_w",
           [&](N v, K k) { c.deficit_threshold_w = r.number(v, k, 0, 1e9); }},
          {"max_soc_percent", [&](N v, K k) { c.max_soc_percent = r.number(v, k, 0, 100); }},
          {"min_soc_percent", [&](N v, K k) { c.min_soc_percent = r.number(v, k, 0, 100); }},
          {"retry_policy",
           [&](N policy, K prefix) {
             read_mapping(source, policy, prefix,
                          {{"max_retries",
                            [&](N v, K k) {
                              c.retry_policy.max_retries =
                                  static_cast<std::uint32_t>(r.integer(v, k, 0, 16));
                            }},
                           {"backoff_initial_ms",
                            [&](N v, K k) {
                              c.retry_policy.backoff_initial_ms =
                                  static_cast<std::uint32_t>(r.integer(v, k, 0, 3'600'000));
                            }},
                           {"backoff_exponential", [&](N v, K k) {
                              c.retry_policy.backoff_exponential = r.boolean(v, k);
                            }}});
           }},
          {"e2e", [&](N v, K k) { c.e2e = services::read_e2e_settings(source, v, k); }},
      });
  return c;
}

EmsConfig load_ems_config(const fs::path& file) {
  EmsConfig config = parse_ems_config(read_file(file), file.string(), file.parent_path());
  config.resolve_and_validate();
  return config;
}

void EmsConfig::resolve_and_validate() {
  if (!pki_dir.empty()) {
    const fs::path issued = pki_dir / "issued" / client_id;
    if (cafile.empty()) {
      cafile = pki_dir / "ca" / "ems" / "chain.pem";
    }
    if (certfile.empty()) {
      certfile = issued / "chain.pem";
    }
    if (keyfile.empty()) {
      keyfile = issued / "key.pem";
    }
  }
  if (cafile.empty() || certfile.empty() || keyfile.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "cafile, cert and key: required unless pki_dir is given");
  }
  if (client_id.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "client_id: must not be empty");
  }
  // e2e reads each member's CA chain and CRLs from pki_dir at every handshake.
}

mqtt::MqttClientOptions EmsConfig::mqtt_options() const {
  mqtt::MqttClientOptions options;
  options.host = broker_host;
  options.port = broker_port;
  options.client_id = client_id;
  options.cafile = cafile;
  options.certfile = certfile;
  options.keyfile = keyfile;
  return options;
}

}  // namespace recmesh::ems
