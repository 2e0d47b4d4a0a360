#pragma once

#include <string>
#include <string_view>

namespace recmesh {

// `text` with every occurrence of `from` replaced by `to`, left to right; what a replacement
// inserts is not searched again. An empty `from` replaces nothing.
inline std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) {
    return text;
  }
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace recmesh
