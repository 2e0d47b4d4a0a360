#include "directory_hash.hpp"

#include <algorithm>
#include <array>
#include <sys/stat.h>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "recmesh/core/file_io.hpp"

namespace recmesh::testing {

std::string hash_directory(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> entries;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end());
  std::string material;
  for (const auto& path : entries) {
    struct stat st {};
    ::lstat(path.c_str(), &st);
    material +=
        fmt::format("{}\n{:o}\n", std::filesystem::relative(path, root).string(), st.st_mode);
    if (S_ISREG(st.st_mode)) {
      material += read_file(path);
    }
    material += '\n';
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(material.data(), material.size(), digest.data(), &length, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += fmt::format("{:02x}", digest[i]);
  }
  return out;
}

}  // namespace recmesh::testing
