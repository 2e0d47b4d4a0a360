#include "utf8.hpp"

#include <cstddef>
#include <cstdint>

namespace recmesh::protocol {

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    std::uint32_t min = 0;
    if ((c & 0xe0) == 0xc0) {
      length = 2;
      code = c & 0x1fu;
      min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      length = 3;
      code = c & 0x0fu;
      min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      length = 4;
      code = c & 0x07u;
      min = 0x10000;
    } else {
      return false;
    }
    if (n - i < length) {
      return false;
    }
    for (std::size_t k = 1; k < length; ++k) {
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) {
        return false;
      }
      code = (code << 6) | (cc & 0x3fu);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += length;
  }
  return true;
}

}  // namespace recmesh::protocol
