#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace recmesh::sim {

// A tree of files shipped to a pod in Secrets (docs/kubernetes.md, "The Security Manager's
// state"). Kubernetes keeps each object within 1 MiB; a tree larger than that goes into several
// Secrets, and a file larger than that (the PKI's database of a large community) into parts of
// its own, `<path>.part-000`, `<path>.part-001` ..., which the restore script joins again.
struct StateSecret {
  std::map<std::string, std::string> data;   // key -> content
  std::map<std::string, std::string> items;  // key -> relative path where the volume mounts it
};

// What one Secret may hold: its data base64-encoded, plus its keys. Below Kubernetes' 1 MiB,
// with room for the object's metadata.
constexpr std::size_t kStateSecretBudget = std::size_t{1024} * 1024 * 95 / 100;

// `files`: relative path -> the file to ship there. Keys are the paths with '.' for '/'.
// Throws if two paths give one key, or if `budget` is too small for a key and some content.
std::vector<StateSecret> pack_state_secrets(
    const std::map<std::string, std::filesystem::path>& files,
    std::size_t budget = kStateSecretBudget);

// A POSIX shell script that fills `target` from the Secrets packed above, mounted at
// `<seed>/0`, `<seed>/1` ... with their items, once: it does nothing when `<target>/<last>`
// exists, and moves `last` into place after every other file, so that an interrupted restore is
// done again from the start. Files end up 0600 and directories 0700.
std::string restore_state_script(std::string_view target, std::string_view seed,
                                 std::string_view last);

}  // namespace recmesh::sim
