#pragma once

// What the device simulator's, the gateway's and the EMS engine's YAML configurations share:
// the document itself, the `broker` block, `devices` lists and file defaults from a PKI
// directory. Every problem throws Error(kInvalidArgument) as "<source>:<line>: <key>: <problem>".

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <yaml-cpp/yaml.h>

#include "recmesh/protocol/device_commands.hpp"

#include "common/yaml_mapping_reader.hpp"

namespace recmesh::services {

// `yaml` as one YAML document.
YAML::Node load_yaml(std::string_view yaml, std::string_view source);

// `broker: {host, port}`: the one broker a daemon connects to.
void read_broker(std::string_view source, const YAML::Node& node, const std::string& prefix,
                 std::string& host, int& port);

// A list under `key`: calls `item` with each entry and its key ("devices[3]").
void read_list(std::string_view source, const YAML::Node& node, const std::string& key,
               const std::function<void(const YAML::Node&, const std::string&)>& item);

// One entry of a `devices` list: `id` and `kind` are required; `more` declares the keys the
// daemon knows besides them.
void read_device_entry(std::string_view source, const YAML::Node& node, const std::string& prefix,
                       const std::filesystem::path& base_dir, std::string& id,
                       protocol::DeviceKind& kind,
                       const std::function<void(MappingReader&)>& more = {});

// The files of a member's identity `common_name` in a PKI directory (docs/pki.md): fills those
// of certfile (issued/<cn>/chain.pem), keyfile (issued/<cn>/key.pem) and cafile
// (ca/member_<rec>_<member>/chain.pem) that are empty.
void fill_member_files(const std::filesystem::path& pki_dir, std::string_view common_name,
                       std::string_view rec, std::string_view member,
                       std::filesystem::path& certfile, std::filesystem::path& keyfile,
                       std::filesystem::path& cafile);

}  // namespace recmesh::services
