// Untrusted acks: what a gateway opens on /platform/keys (the EMS engine's confirmation of the
// messages it stored), and the delivery window the engine reads back from its database. Neither
// may crash, and an ack may confirm nothing above the highest ID it names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "recmesh/e2e/delivery.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace e2e = recmesh::e2e;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto ack = e2e::parse_ack(bytes);
  if (ack.ok()) {
    if (ack->confirms(ack->highest + 1) || ack->confirms(0) ||
        (ack->highest > 0 && !ack->confirms(ack->highest))) {
      std::abort();
    }
    // What parses is what encode_ack writes for the same window.
    const auto window = e2e::SequenceWindow::restore(ack->highest, ack->bitmap);
    if (!window.ok() || e2e::encode_ack(*window) != bytes) {
      std::abort();
    }
  }
  // The stored form: 8 bytes of highest, then the bitmap.
  if (size >= 8) {
    std::uint64_t highest = 0;
    for (std::size_t i = 0; i < 8; ++i) {
      highest = (highest << 8) | data[i];
    }
    const auto window = e2e::SequenceWindow::restore(highest, bytes.substr(8));
    if (window.ok() && window->bitmap() != bytes.substr(8)) {
      std::abort();
    }
  }
  return 0;
}
