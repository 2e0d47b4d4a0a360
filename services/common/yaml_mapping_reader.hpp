#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <yaml-cpp/yaml.h>

namespace recmesh::services {

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

 protected:
  std::string_view source() const { return source_; }

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

 private:
  const YAML::Node& node_;
  std::string prefix_;
  std::map<std::string, Handler> handlers_;
};

}  // namespace recmesh::services
