// Configuration files: bytes as YAML against the example daemon's declaration. Loading never
// throws and never crashes; a usable result prints as YAML that loads back to the same
// settings; an unusable one becomes the single Error(kInvalidArgument) a daemon reports.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <unistd.h>

#include "recmesh/config/problem.hpp"
#include "recmesh/core/error.hpp"

#include "example_settings.hpp"

namespace {

// The broker block's files, so that inputs naming ca.pem, cert.pem and key.pem can be usable.
const std::filesystem::path& base_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path made = std::filesystem::temp_directory_path() /
                                 ("recmesh-config-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(made / "buffer");
    for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
      std::ofstream(made / name) << "PEM\n";
    }
    return made;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto schema = recmesh::testing::example_schema();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = schema.load_text(text, "fuzz.yaml", base_dir());
  if (result.ok()) {
    const std::string rendered = schema.render_yaml(result.settings);
    const auto again = schema.load_text(rendered, "rendered.yaml", base_dir());
    if (!again.ok() || schema.render_yaml(again.settings) != rendered) {
      std::abort();  // the effective configuration must load back to the same settings
    }
    return 0;
  }
  for (const recmesh::config::Problem& problem : result.problems) {
    if (problem.message.empty() || problem.file != "fuzz.yaml" || problem.line < 0 ||
        problem.column < 0) {
      std::abort();
    }
  }
  try {
    throw recmesh::config::to_error(result.problems);
  } catch (const recmesh::Error& e) {
    if (e.code() != recmesh::ErrorCode::kInvalidArgument) {
      std::abort();
    }
  }
  return 0;
}
