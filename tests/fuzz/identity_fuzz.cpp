// Untrusted names: IDs from flags and API calls, common names from client certificates, SANs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/pki/subject_alt_name.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    recmesh::require_identifier("fuzz", text);
    if (!recmesh::is_valid_identifier(text)) {
      std::abort();  // require_identifier accepted what is_valid_identifier rejects
    }
  } catch (const recmesh::Error&) {
  }
  if (auto identity = recmesh::pki::parse_common_name(text)) {
    if (identity->common_name() != text) {
      std::abort();  // parsing must be the exact inverse of naming
    }
  }
  try {
    auto san = recmesh::pki::SubjectAltName::parse(text);
    if (recmesh::pki::SubjectAltName::parse(san.to_string()) != san) {
      std::abort();
    }
  } catch (const recmesh::Error&) {
  }
  return 0;
}
