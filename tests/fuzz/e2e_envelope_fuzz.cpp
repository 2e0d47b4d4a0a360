// Untrusted envelopes: what the EMS engine and a gateway receive on every protected topic.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/e2e/session.hpp"

namespace {

namespace e2e = recmesh::e2e;

// The documented vector's platform-side keys at the vector's time, so the seeds open.
e2e::SessionKeys vector_keys() {
  const auto dir = std::filesystem::path(RECMESH_SOURCE_DIR) / "tests/testdata/e2e";
  const auto v = nlohmann::json::parse(recmesh::read_file(dir / "vectors.json"));
  const auto unhex = [](const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
      out.push_back(static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16)));
    }
    return out;
  };
  e2e::SessionKeys keys;
  keys.session_id = 0x5E551011;
  keys.send_direction = e2e::Direction::kPlatformToMember;
  keys.send_secret = unhex(v["secret_platform_to_member_0"].get<std::string>());
  keys.receive_secret = unhex(v["secret_member_to_platform_0"].get<std::string>());
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const e2e::SessionKeys keys = vector_keys();
  static const recmesh::FixedClock clock(recmesh::from_unix_seconds(1795309200));
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto parsed = e2e::parse_envelope(bytes);
  // A fresh session per input so that every seed is judged on its own.
  for (const auto suite : {e2e::Suite::kAes256Gcm, e2e::Suite::kChaCha20Poly1305}) {
    e2e::SessionKeys k = keys;
    k.suite = suite;
    e2e::Session session(k, e2e::E2eSettings{}, clock);
    auto opened = session.open("/r1/m1/metrics/aggregate", bytes);
    if (opened.ok() && !parsed.ok()) {
      std::abort();  // nothing opens that does not even parse
    }
    // The same bytes a second time are always a replay or a refusal.
    if (opened.ok() && session.open("/r1/m1/metrics/aggregate", bytes).ok()) {
      std::abort();
    }
  }
  return 0;
}
