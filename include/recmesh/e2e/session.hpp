#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/clock.hpp"
#include "recmesh/e2e/envelope.hpp"
#include "recmesh/e2e/failure.hpp"
#include "recmesh/e2e/key_schedule.hpp"
#include "recmesh/e2e/settings.hpp"

namespace recmesh::e2e {

// Counters of one session.
struct SessionStats {
  std::uint64_t sealed = 0;
  std::uint64_t opened = 0;
  std::uint64_t send_epoch = 0;     // current sending epoch
  std::uint64_t receive_epoch = 0;  // newest epoch the peer has used
};

// An established session: seals what this side sends and opens what the peer sends, with
// per-direction keys, a 64-bit sequence per direction, a sliding replay window, a timestamp
// bound and key epochs (docs/protocol/e2e.md). Never throws on seal or open.
class Session {
 public:
  Session(const SessionKeys& keys, const E2eSettings& settings, const Clock& clock);
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  // The envelope of `payload` for `topic` (the topic is authenticated, not sent).
  Checked<std::string> seal(std::string_view topic, std::string_view payload);
  // The same with the sequence number given: a message ID that the sender keeps across sessions
  // (docs/protocol/e2e.md §6.1). It must be above every number sealed in this session before
  // (kReplayed otherwise: a nonce is never used twice); the next seal() continues after it.
  Checked<std::string> seal(std::string_view topic, std::string_view payload,
                            std::uint64_t sequence);
  // The number the next seal() without one takes.
  std::uint64_t next_sequence() const;
  // The payload, after every check of docs/protocol/e2e.md "Opening an envelope" passed.
  Checked<std::string> open(std::string_view topic, std::string_view envelope);
  Checked<std::string> open(std::string_view topic, const EnvelopeView& envelope);

  std::uint32_t id() const;
  Suite suite() const;
  Clock::TimePoint established_at() const;
  const SessionStats& stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace recmesh::e2e
