#pragma once

#include <map>
#include <string>
#include <vector>

#include "child_process.hpp"

namespace recmesh::testing {

// Absolute path of the recmesh executable under test (set by CMake).
std::string recmesh_binary();

inline constexpr const char* kTestPassphrase = "test passphrase 0123456789";

// Runs `recmesh args...` with RECMESH_PKI_PASSPHRASE=kTestPassphrase unless `env` overrides it.
CommandResult run_recmesh(const std::vector<std::string>& args,
                          std::map<std::string, std::string> env = {});

}  // namespace recmesh::testing
