#pragma once

#include <filesystem>
#include <string>

namespace recmesh::testing {

// SHA-256 over every entry under `root`: relative path, type, mode and file content, in sorted
// order. Equal hashes mean nothing was added, removed, changed or re-permissioned.
std::string hash_directory(const std::filesystem::path& root);

}  // namespace recmesh::testing
