#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace recmesh::config {

// One value read from a configuration file, detached from the YAML library so that public
// headers do not depend on it.
struct ConfigValue {
  enum class Kind { kNull, kScalar, kSequence, kMapping };

  Kind kind = Kind::kNull;
  std::string text;     // the scalar as written (without quotes)
  bool quoted = false;  // the scalar was written in '...' or "..."
  int line = 0;         // 1-based place of the value in the file
  int column = 0;
  std::vector<ConfigValue> items;  // the items of a sequence (their own items are not kept)
};

// What converting a value may depend on besides the value itself.
struct ParseContext {
  // Relative paths in the file are taken relative to this directory (the file's own).
  std::filesystem::path base_dir;
};

}  // namespace recmesh::config
