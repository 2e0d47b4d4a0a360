#include "common/e2e_settings_reader.hpp"

#include "common/yaml_mapping_reader.hpp"

namespace recmesh::services {

e2e::E2eSettings read_e2e_settings(std::string_view source, const YAML::Node& node,
                                   const std::string& prefix) {
  e2e::E2eSettings s;
  MappingReader r(source, node, prefix, {});
  const auto seconds = [&](std::chrono::seconds& out, std::int64_t min, std::int64_t max) {
    return [&r, &out, min, max](const YAML::Node& v, const std::string& k) {
      out = std::chrono::seconds(r.integer(v, k, min, max));
    };
  };
  r.on("enabled", [&](const YAML::Node& v, const std::string& k) { s.enabled = r.boolean(v, k); });
  r.on("suite", [&](const YAML::Node& v, const std::string& k) {
    if (!e2e::parse_suite(r.text(v, k), s.suite)) {
      fail_at(source, v, k, "expected aes-256-gcm or chacha20-poly1305");
    }
  });
  r.on("rotate_after_messages", [&](const YAML::Node& v, const std::string& k) {
    s.rotate_after_messages = static_cast<std::uint64_t>(r.integer(v, k, 1, std::int64_t{1} << 32));
  });
  r.on("rotate_after_s", seconds(s.rotate_after, 1, 604800));
  r.on("epoch_grace_s", seconds(s.epoch_grace, 0, 3600));
  r.on("replay_window", [&](const YAML::Node& v, const std::string& k) {
    s.replay_window = static_cast<std::uint32_t>(r.integer(v, k, 64, 4096));
    if (s.replay_window % 64 != 0) {
      fail_at(source, v, k, "expected a multiple of 64");
    }
  });
  r.on("max_age_s", seconds(s.max_age, 1, 86400));
  r.on("max_skew_s", seconds(s.max_skew, 0, 3600));
  r.on("handshake_timeout_s", seconds(s.handshake_timeout, 1, 600));
  r.on("max_concurrent_handshakes", [&](const YAML::Node& v, const std::string& k) {
    s.max_concurrent_handshakes = static_cast<std::size_t>(r.integer(v, k, 1, 100000));
  });
  r.on("max_queued", [&](const YAML::Node& v, const std::string& k) {
    s.max_queued = static_cast<std::size_t>(r.integer(v, k, 0, 1000000));
  });
  r.on("rehandshake_after_s", seconds(s.rehandshake_after, 60, 2592000));
  r.read();
  s.validate();
  return s;
}

}  // namespace recmesh::services
