#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "recmesh/core/result.hpp"

namespace recmesh::e2e {

// Why the end-to-end layer refused a message (docs/protocol/e2e.md, "Error handling"). Every
// refusal has exactly one class, so that it can be counted and reported as a security event.
enum class Failure {
  kTruncated,         // shorter than its fixed layout, or a length field runs past the end
  kMalformed,         // unknown version or type, reserved bits set, trailing bytes, oversize
  kUnsupportedSuite,  // a cipher suite this build or configuration does not accept
  kTampered,          // the AEAD tag or a handshake signature does not verify
  kReplayed,          // a sequence number already accepted
  kOutsideWindow,     // a sequence number below the replay window
  kStale,             // a timestamp outside the accepted bound (too old or in the future)
  kWrongEpoch,        // a key epoch this side no longer (or not yet) holds
  kWrongMember,       // sealed for or signed by another member
  kWrongDirection,    // a message of the other direction (a reflection)
  kUnknownSession,    // a session this side does not hold (e.g. after a restart)
  kNoSession,         // nothing can be sent or opened yet: no session is established
  kBadCertificate,    // the peer's certificate does not chain to the expected CA, or expired
  kRevoked,           // the peer's certificate (or a CA above it) is on a CRL
  kWrongRole,         // the peer's certificate names another kind of identity
  kQueueFull,         // no session yet and the bounded queue is full: the message is dropped
  kInternal,          // a library call failed unexpectedly
};

std::string_view to_string(Failure failure);
inline constexpr std::size_t kFailureCount = static_cast<std::size_t>(Failure::kInternal) + 1;

// A refusal: its class and a message that is safe to log (never key material or payloads).
struct Rejection {
  Failure failure = Failure::kInternal;
  std::string detail;
};

// A value or a Rejection. The data path returns these and never throws.
template <typename T>
using Checked = Result<T, Rejection>;

inline Rejection reject(Failure failure, std::string detail) {
  return Rejection{failure, std::move(detail)};
}

}  // namespace recmesh::e2e
