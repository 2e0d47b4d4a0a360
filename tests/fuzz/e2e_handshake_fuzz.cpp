// Untrusted handshake messages: inits a gateway receives, responses and hellos the EMS engine
// receives on /<r>/<m>/keys/response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/e2e/handshake.hpp"

namespace {

namespace e2e = recmesh::e2e;
namespace fs = std::filesystem;

const fs::path& dir() {
  static const fs::path d = fs::path(RECMESH_SOURCE_DIR) / "tests/testdata/e2e";
  return d;
}

e2e::PeerTrust trust(const std::string& chain, const std::vector<std::string>& crls,
                     const std::string& cn) {
  std::vector<std::string> pems;
  for (const auto& name : crls) {
    pems.push_back(recmesh::read_file(dir() / name));
  }
  return e2e::PeerTrust::from_pem(recmesh::read_file(dir() / chain), pems, cn);
}

std::string unhex(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string raw_key(std::uint8_t first) {
  std::string out;
  for (std::size_t i = 0; i < 32; ++i) {
    out.push_back(static_cast<char>(first + i));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const recmesh::FixedClock clock(recmesh::from_unix_seconds(1795309200));
  static const e2e::PeerTrust ems =
      trust("ems-chain.pem", {"crl-root.pem", "crl-ems.pem"}, "ems_engine");
  static const e2e::PeerTrust gateway = trust(
      "member-chain.pem", {"crl-root.pem", "crl-rec.pem", "crl-member.pem"}, "rec_r1_m1_gateway");
  static const e2e::Credentials gateway_creds =
      e2e::Credentials::from_files(dir() / "gateway-chain.pem", dir() / "gateway-key.pem");
  static const std::string init = unhex(
      nlohmann::json::parse(recmesh::read_file(dir() / "vectors.json"))["init"].get<std::string>());
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  (void)e2e::parse_init(bytes);
  (void)e2e::parse_response(bytes);
  (void)e2e::parse_hello(bytes);
  (void)e2e::verify_hello(bytes, "r1", "m1", gateway, e2e::E2eSettings{}, clock);

  e2e::HandshakeInputs inputs;
  inputs.ephemeral = e2e::ephemeral_from_private(raw_key(0x41));
  inputs.nonce = std::string(e2e::kNonceBytes, '\xC0');
  inputs.time_ms = 1795309200250;
  (void)e2e::respond_to_init(gateway_creds, "r1", "m1", bytes, ems, e2e::E2eSettings{}, clock,
                             std::move(inputs));

  auto platform =
      e2e::PlatformHandshake::from_recorded(init, e2e::ephemeral_from_private(raw_key(1)));
  if (!platform.ok()) {
    std::abort();  // the recorded init always parses
  }
  (void)platform->finish(bytes, gateway, e2e::E2eSettings{}, clock);
  return 0;
}
