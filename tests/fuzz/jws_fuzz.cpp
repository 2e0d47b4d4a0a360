// Untrusted signed messages: what a device receives on its control topic.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/jws.hpp"

namespace {

const recmesh::crypto::JwsVerifier& verifier() {
  // The documented vector's trust material, at the vector's time, so its seed verifies.
  static const std::filesystem::path data =
      std::filesystem::path(RECMESH_SOURCE_DIR) / "tests/testdata/jws";
  static const recmesh::FixedClock clock(
      recmesh::from_unix_seconds(std::stoll(recmesh::read_file(data / "verify-at"))));
  static const recmesh::crypto::JwsVerifier instance({recmesh::read_file(data / "ems-ca.pem"),
                                                      recmesh::read_file(data / "ems-crl.pem"),
                                                      {"ems_engine"}},
                                                     clock);
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = verifier().verify("/device/pv1/control", text);
  if (result.ok() && result->signer != "ems_engine") {
    std::abort();  // only the allowed signer can ever be accepted
  }
  return 0;
}
