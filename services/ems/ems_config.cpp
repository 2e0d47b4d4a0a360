// The EMS engine's configuration in YAML.
#include "ems/ems_config.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

namespace recmesh::ems {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail_at(std::string_view source, const YAML::Node& node, std::string_view key,
                          std::string_view problem) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{}:{}: {}: {}", source, node.Mark().line + 1, key, problem));
}

class Reader {
 public:
  Reader(std::string_view source, fs::path base_dir)
      : source_(source), base_dir_(std::move(base_dir)) {}

  std::string text(const YAML::Node& value, const std::string& key) const {
    if (!value.IsScalar()) {
      fail_at(source_, value, key, "expected a string");
    }
    return value.as<std::string>();
  }
  double number(const YAML::Node& value, const std::string& key, double min, double max) const {
    double out = 0;
    if (!value.IsScalar() || !YAML::convert<double>::decode(value, out) || !std::isfinite(out)) {
      fail_at(source_, value, key, "expected a number");
    }
    if (out < min || out > max) {
      fail_at(source_, value, key, fmt::format("{} is outside {} .. {}", out, min, max));
    }
    return out;
  }
  std::int64_t integer(const YAML::Node& value, const std::string& key, std::int64_t min,
                       std::int64_t max) const {
    std::int64_t out = 0;
    if (!value.IsScalar() || !YAML::convert<std::int64_t>::decode(value, out)) {
      fail_at(source_, value, key, "expected an integer");
    }
    if (out < min || out > max) {
      fail_at(source_, value, key, fmt::format("{} is outside {} .. {}", out, min, max));
    }
    return out;
  }
  bool boolean(const YAML::Node& value, const std::string& key) const {
    bool out = false;
    if (!value.IsScalar() || !YAML::convert<bool>::decode(value, out)) {
      fail_at(source_, value, key, "expected true or false");
    }
    return out;
  }
  fs::path path(const YAML::Node& value, const std::string& key) const {
    fs::path out = text(value, key);
    if (out.empty()) {
      fail_at(source_, value, key, "expected a path");
    }
    return out.is_relative() && !base_dir_.empty() ? base_dir_ / out : out;
  }
  std::chrono::milliseconds millis(const YAML::Node& value, const std::string& key,
                                   std::int64_t min, std::int64_t max) const {
    return std::chrono::milliseconds(integer(value, key, min, max));
  }

 private:
  std::string_view source_;
  fs::path base_dir_;
};

using Handler = std::function<void(const YAML::Node&, const std::string&)>;

void read_mapping(std::string_view source, const YAML::Node& node, const std::string& prefix,
                  const std::map<std::string, Handler>& handlers) {
  if (!node.IsMap()) {
    fail_at(source, node, prefix.empty() ? "(top level)" : prefix, "expected a mapping");
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    std::string full = prefix;
    if (!full.empty()) {
      full += '.';
    }
    full += key;
    const auto handler = handlers.find(key);
    if (handler == handlers.end()) {
      std::string allowed;
      for (const auto& [name, unused] : handlers) {
        if (!allowed.empty()) {
          allowed += ", ";
        }
        allowed += name;
      }
      fail_at(source, it->first, full, "unknown key (allowed: " + allowed + ")");
    }
    handler->second(it->second, full);
  }
}

constexpr std::int64_t kDayMs = 86'400'000;

}  // namespace

EmsConfig parse_ems_config(std::string_view yaml, std::string_view source,
                           const fs::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}:{}: {}", source, e.mark.line + 1, e.msg));
  }
  EmsConfig c;
  const Reader r(source, base_dir);
  using N = const YAML::Node&;
  using K = const std::string&;
  read_mapping(
      source, root, "",
      {
          {"broker",
           [&](N broker, K prefix) {
             read_mapping(source, broker, prefix,
                          {{"host", [&](N v, K k) { c.broker_host = r.text(v, k); }},
                           {"port", [&](N v, K k) {
                              c.broker_port = static_cast<int>(r.integer(v, k, 1, 65535));
                            }}});
           }},
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
