#pragma once

#include <filesystem>
#include <string_view>
#include <yaml-cpp/yaml.h>

#include "recmesh/e2e/settings.hpp"

namespace recmesh::services {

// The `e2e:` section shared by the gateway's and the EMS engine's configuration
// (docs/protocol/e2e.md, "Settings"); problems throw Error(kInvalidArgument) naming the line.
e2e::E2eSettings read_e2e_settings(std::string_view source, const YAML::Node& node,
                                   const std::string& prefix);

}  // namespace recmesh::services
