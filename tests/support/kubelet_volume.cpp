#include "kubelet_volume.hpp"

#include <set>
#include <utility>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/text.hpp"

#include "child_process.hpp"

namespace recmesh::testing {

namespace fs = std::filesystem;

void mount_secret_like_kubelet(const fs::path& dir,
                               const std::map<std::string, std::string>& contents,
                               const std::map<std::string, std::string>& items) {
  const fs::path data = dir / "..2026_01_01_00_00_00.000000000";
  fs::create_directories(data);
  std::set<std::string> top_level;
  for (const auto& [key, content] : contents) {
    const auto item = items.find(key);
    if (!items.empty() && item == items.end()) {
      continue;  // a key the volume does not project
    }
    const fs::path relative = item != items.end() ? fs::path(item->second) : fs::path(key);
    const fs::path file = data / relative;
    fs::create_directories(file.parent_path());
    write_file_atomic(file, content, 0400);
    top_level.insert(relative.begin()->string());
  }
  fs::create_directory_symlink(data.filename(), dir / "..data");
  for (const std::string& name : top_level) {
    fs::create_symlink(fs::path("..data") / name, dir / name);
  }
}

ScriptResult run_pod_script(std::string script, const std::map<std::string, std::string>& paths) {
  for (const auto& [from, to] : paths) {
    script = replace_all(std::move(script), from, to);
  }
  const CommandResult result = run_command({"sh", "-c", script});
  return {result.exit_code, result.err};
}

}  // namespace recmesh::testing
