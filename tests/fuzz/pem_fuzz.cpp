// Untrusted PEM: certificates given to `pki verify`, CSRs given to `pki issue --csr`, key files.
#include <cstddef>
#include <cstdint>
#include <string>

#include "recmesh/core/error.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/pem.hpp"

namespace {

template <typename F>
void expect_value_or_error(F&& parse) {
  try {
    parse();
  } catch (const recmesh::Error&) {
    // A clear error is the only acceptable failure.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const recmesh::Secret passphrase("fuzz passphrase");
  expect_value_or_error([&] { recmesh::crypto::certificate_from_pem(text, "fuzz"); });
  expect_value_or_error([&] { recmesh::crypto::certificates_from_pem(text, "fuzz"); });
  expect_value_or_error([&] { recmesh::crypto::crl_from_pem(text, "fuzz"); });
  expect_value_or_error([&] { recmesh::crypto::csr_from_pem(text); });
  expect_value_or_error([&] { recmesh::crypto::private_key_from_pem(text, &passphrase, "fuzz"); });
  return 0;
}
