#include "recmesh/crypto/openssl_error.hpp"

#include <array>

#include <fmt/format.h>
#include <openssl/err.h>

#include "recmesh/core/error.hpp"

namespace recmesh::crypto {

std::string drain_openssl_errors() {
  std::string out;
  unsigned long code = 0;
  while ((code = ERR_get_error()) != 0) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    if (!out.empty()) {
      out += "; ";
    }
    out += buffer.data();
  }
  return out;
}

void throw_openssl_error(std::string_view what) {
  std::string detail = drain_openssl_errors();
  throw Error(ErrorCode::kInternal,
              detail.empty() ? std::string(what) : fmt::format("{}: {}", what, detail));
}

}  // namespace recmesh::crypto
