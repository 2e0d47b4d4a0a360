#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <yaml-cpp/yaml.h>

namespace recmesh::services {

// One YAML document; a syntax error throws Error(kInvalidArgument) as "<source>:<line>: <problem>".
YAML::Node load_yaml(std::string_view yaml, std::string_view source);

// Throws Error(kInvalidArgument) as "<source>:<line>: <key>: <problem>".
[[noreturn]] void fail_at(std::string_view source, const YAML::Node& node, std::string_view key,
                          std::string_view problem);

// Typed scalars of a daemon's YAML configuration; every problem names file, line and key.
class ScalarReader {
 public:
  ScalarReader(std::string_view source, std::filesystem::path base_dir)
      : source_(source), base_dir_(std::move(base_dir)) {}

  std::string text(const YAML::Node& value, const std::string& key) const;
  double number(const YAML::Node& value, const std::string& key, double min, double max) const;
  std::int64_t integer(const YAML::Node& value, const std::string& key, std::int64_t min,
                       std::int64_t max) const;
  bool boolean(const YAML::Node& value, const std::string& key) const;
  // Relative paths are taken relative to the configuration file's directory.
  std::filesystem::path path(const YAML::Node& value, const std::string& key) const;
  std::string identifier(const YAML::Node& value, const std::string& key) const;

  std::string_view source() const { return source_; }

 protected:
  const std::filesystem::path& base_dir() const { return base_dir_; }

 private:
  std::string_view source_;
  std::filesystem::path base_dir_;
};

// Reads one YAML mapping, refusing keys that have no handler (naming the allowed ones).
// Shared by the daemons' config readers.
class MappingReader : public ScalarReader {
 public:
  MappingReader(std::string_view source, const YAML::Node& node, std::string prefix,
                std::filesystem::path base_dir);

  using Handler = std::function<void(const YAML::Node& value, const std::string& key)>;
  void on(std::string key, Handler handler) { handlers_.emplace(std::move(key), handler); }
  void read();

  // A reader of the mapping `value` under `key`, with this one's file and directory.
  MappingReader nested(const YAML::Node& value, const std::string& key) const {
    return {source(), value, key, base_dir()};
  }

 private:
  const YAML::Node& node_;
  std::string prefix_;
  std::map<std::string, Handler> handlers_;
};

// Registers the keys every member-side daemon (device fleet, gateway) shares, read into the
// fields of the same names of `config`: the `broker` block (host, port), `pki_dir`, `rec` and
// `member`.
template <typename Config>
void on_member_side_keys(MappingReader& r, Config& config) {
  r.on("broker", [&](const YAML::Node& v, const std::string& k) {
    MappingReader b = r.nested(v, k);
    b.on("host", [&](const YAML::Node& x, const std::string& kk) {
      config.broker_host = b.text(x, kk);
      if (config.broker_host.empty()) {
        fail_at(b.source(), x, kk, "expected a host name or address");
      }
    });
    b.on("port", [&](const YAML::Node& x, const std::string& kk) {
      config.broker_port = static_cast<int>(b.integer(x, kk, 1, 65535));
    });
    b.read();
  });
  r.on("pki_dir",
       [&](const YAML::Node& v, const std::string& k) { config.pki_dir = r.path(v, k); });
  r.on("rec", [&](const YAML::Node& v, const std::string& k) { config.rec = r.identifier(v, k); });
  r.on("member",
       [&](const YAML::Node& v, const std::string& k) { config.member = r.identifier(v, k); });
}

}  // namespace recmesh::services
