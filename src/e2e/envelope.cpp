#include "recmesh/e2e/envelope.hpp"

#include "byte_io.hpp"

namespace recmesh::e2e {

std::string_view to_string(Failure failure) {
  switch (failure) {
    case Failure::kTruncated:
      return "truncated";
    case Failure::kMalformed:
      return "malformed";
    case Failure::kUnsupportedSuite:
      return "unsupported-suite";
    case Failure::kTampered:
      return "tampered";
    case Failure::kReplayed:
      return "replayed";
    case Failure::kOutsideWindow:
      return "outside-window";
    case Failure::kStale:
      return "stale";
    case Failure::kWrongEpoch:
      return "wrong-epoch";
    case Failure::kWrongMember:
      return "wrong-member";
    case Failure::kWrongDirection:
      return "wrong-direction";
    case Failure::kUnknownSession:
      return "unknown-session";
    case Failure::kNoSession:
      return "no-session";
    case Failure::kBadCertificate:
      return "bad-certificate";
    case Failure::kRevoked:
      return "revoked";
    case Failure::kWrongRole:
      return "wrong-role";
    case Failure::kQueueFull:
      return "queue-full";
    case Failure::kInternal:
      return "internal";
  }
  return "internal";
}

std::string_view to_string(Suite suite) {
  return suite == Suite::kAes256Gcm ? "aes-256-gcm" : "chacha20-poly1305";
}

bool parse_suite(std::string_view text, Suite& out) {
  if (text == "aes-256-gcm") {
    out = Suite::kAes256Gcm;
    return true;
  }
  if (text == "chacha20-poly1305") {
    out = Suite::kChaCha20Poly1305;
    return true;
  }
  return false;
}

std::string_view to_string(Direction direction) {
  return direction == Direction::kPlatformToMember ? "platform-to-member" : "member-to-platform";
}

std::array<std::uint8_t, kHeaderBytes> encode_header(const EnvelopeHeader& header) {
  std::array<std::uint8_t, kHeaderBytes> out{};
  out[0] = kVersion;
  out[1] = static_cast<std::uint8_t>(MessageType::kData);
  out[2] = static_cast<std::uint8_t>(header.suite);
  out[3] = static_cast<std::uint8_t>(header.direction);
  out[4] = header.epoch;
  detail::put_be(out.data() + 5, header.session_id, 4);
  detail::put_be(out.data() + 9, header.sequence, 8);
  detail::put_be(out.data() + 17, header.timestamp_ms & kMaxTimestampMs, 6);
  return out;
}

Checked<MessageType> peek_type(std::string_view bytes) {
  if (bytes.size() < 2) {
    return reject(Failure::kTruncated, "shorter than the version and type bytes");
  }
  if (static_cast<std::uint8_t>(bytes[0]) != kVersion) {
    return reject(Failure::kMalformed, "unknown version");
  }
  const auto type = static_cast<std::uint8_t>(bytes[1]);
  if (type < static_cast<std::uint8_t>(MessageType::kData) ||
      type > static_cast<std::uint8_t>(MessageType::kHello)) {
    return reject(Failure::kMalformed, "unknown message type");
  }
  return static_cast<MessageType>(type);
}

Checked<EnvelopeView> parse_envelope(std::string_view bytes) {
  auto type = peek_type(bytes);
  if (!type) {
    return type.error();
  }
  if (*type != MessageType::kData) {
    return reject(Failure::kMalformed, "not an envelope");
  }
  if (bytes.size() < kEnvelopeOverhead) {
    return reject(Failure::kTruncated, "shorter than header and tag");
  }
  if (bytes.size() > kEnvelopeOverhead + kMaxPayloadBytes) {
    return reject(Failure::kMalformed, "larger than the envelope limit");
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  EnvelopeView view;
  const std::uint8_t suite = p[2];
  if (suite != static_cast<std::uint8_t>(Suite::kAes256Gcm) &&
      suite != static_cast<std::uint8_t>(Suite::kChaCha20Poly1305)) {
    return reject(Failure::kUnsupportedSuite, "unknown suite");
  }
  if (p[3] > 1) {
    return reject(Failure::kMalformed, "reserved direction bits set");
  }
  view.header.suite = static_cast<Suite>(suite);
  view.header.direction = static_cast<Direction>(p[3]);
  view.header.epoch = p[4];
  view.header.session_id = static_cast<std::uint32_t>(detail::get_be(p + 5, 4));
  view.header.sequence = detail::get_be(p + 9, 8);
  view.header.timestamp_ms = detail::get_be(p + 17, 6);
  view.header_bytes = bytes.substr(0, kHeaderBytes);
  view.ciphertext = bytes.substr(kHeaderBytes, bytes.size() - kEnvelopeOverhead);
  view.tag = bytes.substr(bytes.size() - kTagBytes);
  return view;
}

}  // namespace recmesh::e2e
