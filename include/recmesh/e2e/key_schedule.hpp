#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/e2e/envelope.hpp"

namespace recmesh::e2e {

// What a completed handshake yields to one side (docs/protocol/e2e.md, "Key schedule").
struct SessionKeys {
  std::uint32_t session_id = 0;
  Suite suite = Suite::kAes256Gcm;
  Direction send_direction = Direction::kPlatformToMember;
  std::string transcript_hash;  // SHA-256(init || response)
  std::string send_secret;      // epoch-0 secret of the direction this side sends
  std::string receive_secret;   // epoch-0 secret of the direction it receives
};

// PRK = HKDF-Extract(salt = SHA-256(init || response), IKM = X25519 shared secret)
// s(d, 0) = HKDF-Expand(PRK, "recmesh e2e v1 " || d, 32), d = "platform-to-member" | ...
SessionKeys derive_session_keys(std::string_view shared_secret, std::string_view init,
                                std::string_view response, std::uint32_t session_id, Suite suite,
                                Direction send_direction);
// s(d, e + 1) = HKDF-Expand(s(d, e), "recmesh e2e v1 next epoch", 32)
std::string next_epoch_secret(std::string_view secret);
// key = HKDF-Expand(s, "recmesh e2e v1 key", 32); iv = HKDF-Expand(s, "recmesh e2e v1 iv", 12)
struct TrafficKey {
  std::string key;
  std::string iv;
};
TrafficKey traffic_key(std::string_view epoch_secret);
// X25519 ephemeral keys: one from fixed bytes (test vectors), and the shared secret (nothing for
// a malformed or low-order peer key).
crypto::PkeyPtr ephemeral_from_private(std::string_view raw32);
std::optional<std::string> ephemeral_shared_secret(EVP_PKEY* own, std::string_view peer_public);

// The AEAD nonce of one message: iv XOR (0^32 || sequence, big-endian).
std::string message_nonce(std::string_view iv, std::uint64_t sequence);

}  // namespace recmesh::e2e
