#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "recmesh/e2e/failure.hpp"

namespace recmesh::e2e {

// Wire format version 1 (docs/protocol/e2e.md). Every e2e message starts with the version byte
// and a type byte, so a receiver tells an envelope from a handshake message at once.
inline constexpr std::uint8_t kVersion = 1;

enum class MessageType : std::uint8_t {
  kData = 1,      // a protected payload (envelope)
  kInit = 2,      // handshake, EMS engine -> gateway on /<r>/<m>/keys
  kResponse = 3,  // handshake, gateway -> EMS engine on /<r>/<m>/keys/response
  kHello = 4,     // gateway -> EMS engine: "I hold no session, start a handshake"
};

// AEAD of the traffic; one suite per session, chosen by the EMS engine.
enum class Suite : std::uint8_t {
  kAes256Gcm = 1,
  kChaCha20Poly1305 = 2,
};
std::string_view to_string(Suite suite);
// "aes-256-gcm" or "chacha20-poly1305"; false for anything else.
bool parse_suite(std::string_view text, Suite& out);

// Which way a message travels. Each direction has its own keys and sequence numbers.
enum class Direction : std::uint8_t {
  kPlatformToMember = 0,  // EMS engine -> gateway (controls)
  kMemberToPlatform = 1,  // gateway -> EMS engine (metrics, responses, status info, logs)
};
std::string_view to_string(Direction direction);

// The 23-byte envelope header, authenticated as associated data together with the topic:
//   0 version  1 type=1  2 suite  3 direction  4 epoch (low 8 bits)  5..8 session id (BE)
//   9..16 sequence (BE)  17..22 timestamp, milliseconds since the Unix epoch (BE, 48 bits)
// followed by the ciphertext (as long as the payload) and the 16-byte AEAD tag.
struct EnvelopeHeader {
  Suite suite = Suite::kAes256Gcm;
  Direction direction = Direction::kPlatformToMember;
  std::uint8_t epoch = 0;
  std::uint32_t session_id = 0;
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ms = 0;  // < 2^48
};

inline constexpr std::size_t kHeaderBytes = 23;
inline constexpr std::size_t kTagBytes = 16;
inline constexpr std::size_t kEnvelopeOverhead = kHeaderBytes + kTagBytes;  // 39 bytes
// Largest payload an envelope carries (the message limit of docs/protocol/messages.md, with room
// for extension metrics); larger envelopes are refused before any work.
inline constexpr std::size_t kMaxPayloadBytes = std::size_t{256} * 1024;
inline constexpr std::uint64_t kMaxTimestampMs = (std::uint64_t{1} << 48) - 1;

std::array<std::uint8_t, kHeaderBytes> encode_header(const EnvelopeHeader& header);

// A parsed envelope; the views point into the bytes given to parse_envelope().
struct EnvelopeView {
  EnvelopeHeader header;
  std::string_view header_bytes;  // the 23 bytes, for the associated data
  std::string_view ciphertext;    // without the tag
  std::string_view tag;
};

// Checks only the layout (kTruncated, kMalformed, kUnsupportedSuite); never throws.
Checked<EnvelopeView> parse_envelope(std::string_view bytes);

// The type byte of any e2e message, or kMalformed/kTruncated.
Checked<MessageType> peek_type(std::string_view bytes);

}  // namespace recmesh::e2e
