#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "recmesh/e2e/envelope.hpp"

namespace recmesh::e2e {

// The `e2e:` section of the gateway and EMS configurations (docs/protocol/e2e.md, "Settings").
struct E2eSettings {
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
  // A handshake without an answer is retried after this long.
  std::chrono::seconds handshake_timeout{10};  // 1 s .. 10 min
  // Messages held while no session exists, per peer; beyond it they are dropped and counted.
  std::size_t max_queued = 1000;  // 0 .. 1,000,000
  // A new handshake (fresh ephemeral keys: forward secrecy) after a session is this old.
  std::chrono::seconds rehandshake_after{86400};  // 1 min .. 30 d

  // Throws Error(kInvalidArgument) naming the field and its allowed range.
  void validate() const;
};

}  // namespace recmesh::e2e
