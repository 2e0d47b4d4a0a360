#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "recmesh/e2e/envelope.hpp"

namespace recmesh::e2e {

// The `e2e:` section of the gateway and EMS configurations (docs/protocol/e2e.md, "Settings").
struct E2eSettings {
  static constexpr int kMaxRetryFactor = 8;

  bool enabled = true;
  Suite suite = Suite::kAes256Gcm;  // the EMS engine's choice; a gateway accepts either
  // A sender moves to the next key epoch after this many messages or this long in one epoch.
  std::uint64_t rotate_after_messages = 1'000'000;  // 1 .. 2^32
  std::chrono::seconds rotate_after{3600};          // 1 s .. 7 d
  // How long a receiver still opens the previous epoch once the sender has moved on.
  std::chrono::seconds epoch_grace{30};  // 0 .. 1 h
  // Sequence numbers below the highest seen minus this are refused (64 .. 4096, multiple of 64).
  std::uint32_t replay_window = 1024;
  // Envelope timestamps older than max_age or further than max_skew in the future are stale.
  std::chrono::seconds max_age{300};  // 1 s .. 1 d
  std::chrono::seconds max_skew{60};  // 0 .. 1 h
  // A handshake without an answer is retried after this long (the gateway's hellos are spaced
  // by it too); each further retry of the same peer waits twice as long as the one before, up
  // to kMaxRetryFactor times this, less up to a quarter at random.
  std::chrono::seconds handshake_timeout{10};  // 1 s .. 10 min
  // The EMS engine has at most this many handshakes under way at once; the others wait their
  // turn, so a whole community coming up at once cannot flood its broker connection.
  std::size_t max_concurrent_handshakes = 32;  // 1 .. 100,000
  // Messages held while no session exists, per peer; beyond it they are dropped and counted.
  std::size_t max_queued = 1000;  // 0 .. 1,000,000
  // A new handshake (fresh ephemeral keys: forward secrecy) after a session is this old.
  std::chrono::seconds rehandshake_after{86400};  // 1 min .. 30 d

  // Throws Error(kInvalidArgument) naming the field and its allowed range.
  void validate() const;
};

}  // namespace recmesh::e2e
