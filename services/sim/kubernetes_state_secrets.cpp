#include "sim/kubernetes_state_secrets.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

namespace recmesh::sim {
namespace {

constexpr std::size_t kMaxKeyBytes = 253;  // Kubernetes' limit on a key of a Secret's data

std::size_t encoded_size(std::size_t bytes) {
  return (bytes + 2) / 3 * 4;
}

std::string key_of(const std::string& path) {
  std::string key = path;
  std::replace(key.begin(), key.end(), '/', '.');
  return key;
}

// Fills Secrets in order, starting a new one when the next entry does not fit.
class Packer {
 public:
  explicit Packer(std::size_t budget) : budget_(budget) {}

  void add(const std::string& key, const std::string& path, std::string content) {
    const std::size_t cost = key.size() + encoded_size(content.size());
    if (secrets_.empty() || used_ + cost > budget_) {
      secrets_.emplace_back();
      used_ = 0;
    }
    used_ += cost;
    secrets_.back().data.emplace(key, std::move(content));
    secrets_.back().items.emplace(key, path);
  }

  std::vector<StateSecret> take() { return std::move(secrets_); }

 private:
  std::size_t budget_;
  std::size_t used_ = 0;
  std::vector<StateSecret> secrets_;
};

}  // namespace

std::vector<StateSecret> pack_state_secrets(
    const std::map<std::string, std::filesystem::path>& files, std::size_t budget) {
  if (budget < 2 * (kMaxKeyBytes + 4)) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("a Secret budget of {} bytes leaves no room for content", budget));
  }
  // The most one key's content may hold so that key and encoded content fit in `budget`.
  const std::size_t part_bytes = (budget - kMaxKeyBytes) / 4 * 3;
  std::map<std::string, std::string> paths_by_key;
  Packer packer(budget);
  for (const auto& [path, source] : files) {
    const std::string key = key_of(path);
    if (key.size() + std::string_view(".part-000").size() > kMaxKeyBytes) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("the path {} is too long for a key", path));
    }
    if (const auto [it, added] = paths_by_key.emplace(key, path); !added) {
      throw Error(ErrorCode::kInternal,
                  fmt::format("{} and {} map to one Secret key, {}", it->second, path, key));
    }
    std::string content = read_file(source);
    if (content.size() <= part_bytes) {
      packer.add(key, path, std::move(content));
      continue;
    }
    for (std::size_t offset = 0, part = 0; offset < content.size(); offset += part_bytes, ++part) {
      const std::string suffix = fmt::format(".part-{:03}", part);
      packer.add(key + suffix, path + suffix, content.substr(offset, part_bytes));
    }
  }
  return packer.take();
}

std::string restore_state_script(std::string_view target, std::string_view seed,
                                 std::string_view last) {
  // Only the named entries of each mount: Kubernetes keeps its own (..data, ..<timestamp>) there.
  return fmt::format(
      "set -eu\n"
      "if [ ! -e {0}/{2} ]; then\n"
      "  stage={0}/.restore\n"
      "  rm -rf \"$stage\"\n"
      "  mkdir -p \"$stage\"\n"
      "  for secret in {1}/*; do\n"
      "    for entry in \"$secret\"/*; do cp -RL \"$entry\" \"$stage\"/; done\n"
      "  done\n"
      "  find \"$stage\" -type f -name '*.part-000' | while read -r first; do\n"
      "    whole=${{first%.part-000}}\n"
      "    cat \"$whole\".part-* > \"$whole\"\n"
      "    rm -f \"$whole\".part-*\n"
      "  done\n"
      "  chmod -R u+rwX,go-rwx \"$stage\"\n"
      "  for entry in \"$stage\"/*; do\n"
      "    [ \"${{entry##*/}}\" = {2} ] && continue\n"
      "    rm -rf {0}/\"${{entry##*/}}\"\n"
      "    mv \"$entry\" {0}/\n"
      "  done\n"
      "  mv \"$stage\"/{2} {0}/{2}\n"
      "  rmdir \"$stage\"\n"
      "fi\n",
      target, seed, last);
}

}  // namespace recmesh::sim
