#include "common/yaml_mapping_reader.hpp"

#include <cmath>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::services {

namespace fs = std::filesystem;

void fail_at(std::string_view source, const YAML::Node& node, std::string_view key,
             std::string_view problem) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{}:{}: {}: {}", source, node.Mark().line + 1, key, problem));
}

MappingReader::MappingReader(std::string_view source, const YAML::Node& node, std::string prefix,
                             fs::path base_dir)
    : ScalarReader(source, std::move(base_dir)), node_(node), prefix_(std::move(prefix)) {
  if (!node.IsMap()) {
    fail_at(source, node, prefix_.empty() ? "(top level)" : prefix_, "expected a mapping");
  }
}

void MappingReader::read() {
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    std::string full = prefix_;
    if (!full.empty()) {
      full += '.';
    }
    full += key;
    const auto handler = handlers_.find(key);
    if (handler == handlers_.end()) {
      std::string allowed;
      for (const auto& [name, unused] : handlers_) {
        if (!allowed.empty()) {
          allowed += ", ";
        }
        allowed += name;
      }
      fail_at(source(), it->first, full, fmt::format("unknown key (allowed: {})", allowed));
    }
    handler->second(it->second, full);
  }
}

std::string ScalarReader::text(const YAML::Node& value, const std::string& key) const {
  if (!value.IsScalar()) {
    fail_at(source_, value, key, "expected a string");
  }
  return value.as<std::string>();
}

double ScalarReader::number(const YAML::Node& value, const std::string& key, double min,
                            double max) const {
  double out = 0;
  if (!value.IsScalar() || !YAML::convert<double>::decode(value, out) || !std::isfinite(out)) {
    fail_at(source_, value, key, "expected a number");
  }
  if (out < min || out > max) {
    fail_at(source_, value, key, fmt::format("{} is outside {} .. {}", out, min, max));
  }
  return out;
}

std::int64_t ScalarReader::integer(const YAML::Node& value, const std::string& key,
                                   std::int64_t min, std::int64_t max) const {
  std::int64_t out = 0;
  if (!value.IsScalar() || !YAML::convert<std::int64_t>::decode(value, out)) {
    fail_at(source_, value, key, "expected an integer");
  }
  if (out < min || out > max) {
    fail_at(source_, value, key, fmt::format("{} is outside {} .. {}", out, min, max));
  }
  return out;
}

bool ScalarReader::boolean(const YAML::Node& value, const std::string& key) const {
  bool out = false;
  if (!value.IsScalar() || !YAML::convert<bool>::decode(value, out)) {
    fail_at(source_, value, key, "expected true or false");
  }
  return out;
}

fs::path ScalarReader::path(const YAML::Node& value, const std::string& key) const {
  fs::path out = text(value, key);
  if (out.empty()) {
    fail_at(source_, value, key, "expected a path");
  }
  return out.is_relative() && !base_dir_.empty() ? base_dir_ / out : out;
}

std::string ScalarReader::identifier(const YAML::Node& value, const std::string& key) const {
  std::string out = text(value, key);
  if (!is_valid_identifier(out)) {
    fail_at(source_, value, key, "expected an ID: [a-z0-9][a-z0-9-]{0,31}");
  }
  return out;
}

}  // namespace recmesh::services
