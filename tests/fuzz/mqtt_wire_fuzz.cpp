// Untrusted bytes from a broker, as BatchedMqttClient reads them: every split of the input into
// packets must end in a packet, "need more" or "malformed" without reading past the input, and
// what decodes must encode back to the same bytes (for the packets a client also sends).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "recmesh/mqtt/wire_codec.hpp"

namespace {

using namespace recmesh::mqtt::wire;

constexpr std::size_t kMaxPacket = 64 * 1024;

void check_round_trip(const ServerPacket& packet, std::string_view original) {
  if (packet.type != PacketType::kPublish && packet.type != PacketType::kPuback) {
    return;
  }
  std::string encoded;
  if (packet.type == PacketType::kPublish) {
    append_publish(encoded, packet.topic, packet.payload, packet.qos, packet.retain, packet.dup,
                   packet.packet_id);
  } else {
    append_puback(encoded, packet.packet_id);
  }
  ServerPacket again;
  const DecodeResult result = decode_server_packet(encoded, kMaxPacket, again);
  if (result.status != DecodeStatus::kPacket || result.consumed != encoded.size() ||
      again.topic != packet.topic || again.payload != packet.payload ||
      again.packet_id != packet.packet_id || again.qos != packet.qos) {
    std::abort();  // what was accepted does not survive being sent on
  }
  // A PUBLISH of QoS 0 with the DUP bit set is re-encoded without it; otherwise only a
  // remaining length written with more bytes than needed may differ.
  if (encoded.size() > original.size()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (int packets = 0; packets < 1000 && !input.empty(); ++packets) {
    ServerPacket packet;
    const DecodeResult result = decode_server_packet(input, kMaxPacket, packet);
    if (result.status != DecodeStatus::kPacket) {
      if (result.status == DecodeStatus::kMalformed && result.error.empty()) {
        std::abort();  // every refusal says why
      }
      break;
    }
    if (result.consumed == 0 || result.consumed > input.size()) {
      std::abort();
    }
    check_round_trip(packet, input.substr(0, result.consumed));
    input.remove_prefix(result.consumed);
  }
  return 0;
}
