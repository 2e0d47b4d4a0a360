#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace recmesh::testing {

// Writes a Secret volume into `dir` as the kubelet lays it out: the files (mode 0400) in a hidden
// directory that `..data` links to, and each top-level name a link through `..data`. `items`
// maps keys to relative paths; empty, every key is a file of its own name.
void mount_secret_like_kubelet(const std::filesystem::path& dir,
                               const std::map<std::string, std::string>& contents,
                               const std::map<std::string, std::string>& items = {});

// Runs `script` with `sh -c` after replacing each key of `paths` in it by its value (a pod's
// absolute paths by directories of the test); its exit code, stderr on failure.
struct ScriptResult {
  int exit_code = -1;
  std::string err;
};
ScriptResult run_pod_script(std::string script, const std::map<std::string, std::string>& paths);

}  // namespace recmesh::testing
