#include "common/daemon_config.hpp"

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh::services {

namespace fs = std::filesystem;

YAML::Node load_yaml(std::string_view yaml, std::string_view source) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}:{}: {}", source, e.mark.line + 1, e.msg));
  }
}

void read_broker(std::string_view source, const YAML::Node& node, const std::string& prefix,
                 std::string& host, int& port) {
  MappingReader b(source, node, prefix, {});
  b.on("host", [&](const YAML::Node& v, const std::string& k) {
    host = b.text(v, k);
    if (host.empty()) {
      fail_at(source, v, k, "expected a host name or address");
    }
  });
  b.on("port", [&](const YAML::Node& v, const std::string& k) {
    port = static_cast<int>(b.integer(v, k, 1, 65535));
  });
  b.read();
}

void read_list(std::string_view source, const YAML::Node& node, const std::string& key,
               const std::function<void(const YAML::Node&, const std::string&)>& item) {
  if (!node.IsSequence()) {
    fail_at(source, node, key, "expected a list");
  }
  std::size_t index = 0;
  for (const auto& entry : node) {
    item(entry, fmt::format("{}[{}]", key, index++));
  }
}

void read_device_entry(std::string_view source, const YAML::Node& node, const std::string& prefix,
                       const fs::path& base_dir, std::string& id, protocol::DeviceKind& kind,
                       const std::function<void(MappingReader&)>& more) {
  MappingReader r(source, node, prefix, base_dir);
  bool has_id = false;
  bool has_kind = false;
  r.on("id", [&](const YAML::Node& v, const std::string& k) {
    id = r.identifier(v, k);
    has_id = true;
  });
  r.on("kind", [&](const YAML::Node& v, const std::string& k) {
    const auto parsed = protocol::parse_device_kind(r.text(v, k));
    if (!parsed) {
      fail_at(source, v, k, "expected one of generator, load, passive-load, accumulator, meter");
    }
    kind = *parsed;
    has_kind = true;
  });
  if (more) {
    more(r);
  }
  r.read();
  if (!has_id) {
    fail_at(source, node, prefix + ".id", "required");
  }
  if (!has_kind) {
    fail_at(source, node, prefix + ".kind", "required");
  }
}

void fill_member_files(const fs::path& pki_dir, std::string_view common_name, std::string_view rec,
                       std::string_view member, fs::path& certfile, fs::path& keyfile,
                       fs::path& cafile) {
  const fs::path issued = pki_dir / "issued" / std::string(common_name);
  if (certfile.empty()) {
    certfile = issued / "chain.pem";
  }
  if (keyfile.empty()) {
    keyfile = issued / "key.pem";
  }
  if (cafile.empty()) {
    cafile = pki_dir / "ca" / fmt::format("member_{}_{}", rec, member) / "chain.pem";
  }
}

}  // namespace recmesh::services
