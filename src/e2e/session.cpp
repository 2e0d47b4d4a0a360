#include "recmesh/e2e/session.hpp"

#include <limits>
#include <optional>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/e2e/delivery.hpp"

#include "primitives.hpp"

namespace recmesh::e2e {
namespace {

constexpr std::string_view kKeyPrefix = "recmesh e2e v1 ";
// The receiver follows a sender up to this many epochs ahead of the newest it has seen.
constexpr std::uint64_t kMaxEpochLookahead = 4;

std::string direction_label(Direction d) {
  return std::string(kKeyPrefix) + std::string(to_string(d));
}

std::uint64_t unix_ms(Clock::TimePoint t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

Direction opposite(Direction d) {
  return d == Direction::kPlatformToMember ? Direction::kMemberToPlatform
                                           : Direction::kPlatformToMember;
}

// One epoch of one direction.
struct Epoch {
  Epoch(std::uint64_t n, std::string s, Suite suite, bool encrypt, Clock::TimePoint at)
      : number(n), secret(std::move(s)), started(at) {
    TrafficKey tk = traffic_key(secret);
    iv = std::move(tk.iv);
    aead.emplace(suite, tk.key, encrypt);
  }
  std::uint64_t number;
  std::string secret;
  std::string iv;
  std::optional<detail::AeadKey> aead;
  Clock::TimePoint started;
};

}  // namespace

SessionKeys derive_session_keys(std::string_view shared_secret, std::string_view init,
                                std::string_view response, std::uint32_t session_id, Suite suite,
                                Direction send_direction) {
  std::string transcript(init);
  transcript.append(response);
  SessionKeys keys;
  keys.session_id = session_id;
  keys.suite = suite;
  keys.send_direction = send_direction;
  keys.transcript_hash = detail::sha256(transcript);
  const std::string prk = detail::hkdf_extract(keys.transcript_hash, shared_secret);
  keys.send_secret = detail::hkdf_expand(prk, direction_label(send_direction), detail::kKeyBytes);
  keys.receive_secret =
      detail::hkdf_expand(prk, direction_label(opposite(send_direction)), detail::kKeyBytes);
  return keys;
}

std::string next_epoch_secret(std::string_view secret) {
  return detail::hkdf_expand(secret, "recmesh e2e v1 next epoch", detail::kKeyBytes);
}

TrafficKey traffic_key(std::string_view epoch_secret) {
  return {detail::hkdf_expand(epoch_secret, "recmesh e2e v1 key", detail::kKeyBytes),
          detail::hkdf_expand(epoch_secret, "recmesh e2e v1 iv", detail::kIvBytes)};
}

crypto::PkeyPtr ephemeral_from_private(std::string_view raw32) {
  return detail::x25519_from_private(raw32);
}

std::optional<std::string> ephemeral_shared_secret(EVP_PKEY* own, std::string_view peer_public) {
  return detail::x25519_derive(own, peer_public);
}

std::string message_nonce(std::string_view iv, std::uint64_t sequence) {
  std::string nonce(iv);
  for (std::size_t i = 0; i < 8; ++i) {
    nonce[nonce.size() - 1 - i] =
        static_cast<char>(static_cast<std::uint8_t>(nonce[nonce.size() - 1 - i]) ^
                          static_cast<std::uint8_t>(sequence >> (8 * i)));
  }
  return nonce;
}

struct Session::State {
  State(const SessionKeys& keys, const E2eSettings& s, const Clock& c)
      : settings(s),
        clock(&c),
        id(keys.session_id),
        suite(keys.suite),
        send_direction(keys.send_direction),
        established(c.now()),
        send(0, keys.send_secret, keys.suite, true, established),
        receive(0, keys.receive_secret, keys.suite, false, established),
        window(s.replay_window) {}

  E2eSettings settings;
  const Clock* clock;
  std::uint32_t id;
  Suite suite;
  Direction send_direction;
  Clock::TimePoint established;
  Epoch send;
  std::uint64_t next_sequence = 1;
  std::uint64_t sent_in_epoch = 0;
  Epoch receive;
  std::optional<Epoch> previous;  // the receive epoch before `receive`, during its grace
  Clock::TimePoint previous_until{};
  SequenceWindow window;
  SessionStats stats;
};

Session::Session(const SessionKeys& keys, const E2eSettings& settings, const Clock& clock)
    : state_(std::make_unique<State>(keys, settings, clock)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

std::uint32_t Session::id() const {
  return state_->id;
}
Suite Session::suite() const {
  return state_->suite;
}
Clock::TimePoint Session::established_at() const {
  return state_->established;
}
std::uint64_t Session::next_sequence() const {
  return state_->next_sequence;
}
const SessionStats& Session::stats() const {
  return state_->stats;
}

Checked<std::string> Session::seal(std::string_view topic, std::string_view payload) {
  return seal(topic, payload, state_->next_sequence);
}

Checked<std::string> Session::seal(std::string_view topic, std::string_view payload,
                                   std::uint64_t sequence) {
  State& s = *state_;
  // Never twice the same number in one session: it is the AEAD nonce.
  if (sequence == 0 || sequence == std::numeric_limits<std::uint64_t>::max()) {
    return reject(Failure::kMalformed, "sequence out of range");
  }
  if (sequence < s.next_sequence) {
    return reject(Failure::kReplayed,
                  fmt::format("sequence {} is not above the last one sealed", sequence));
  }
  if (payload.size() > kMaxPayloadBytes) {
    return reject(Failure::kMalformed, "payload larger than the envelope limit");
  }
  const auto now = s.clock->now();
  try {
    if (s.sent_in_epoch >= s.settings.rotate_after_messages ||
        (s.sent_in_epoch > 0 && now - s.send.started >= s.settings.rotate_after)) {
      s.send = Epoch(s.send.number + 1, next_epoch_secret(s.send.secret), s.suite, true, now);
      s.sent_in_epoch = 0;
      s.stats.send_epoch = s.send.number;
    }
  } catch (const std::exception& e) {
    return reject(Failure::kInternal, e.what());
  }
  EnvelopeHeader header;
  header.suite = s.suite;
  header.direction = s.send_direction;
  header.epoch = static_cast<std::uint8_t>(s.send.number & 0xFF);
  header.session_id = s.id;
  header.sequence = sequence;
  header.timestamp_ms = unix_ms(now) & kMaxTimestampMs;
  const auto header_bytes = encode_header(header);
  std::string out(reinterpret_cast<const char*>(header_bytes.data()), header_bytes.size());
  out.reserve(kEnvelopeOverhead + payload.size());
  std::string aad = out;
  aad.append(topic);
  if (!s.send.aead->seal(message_nonce(s.send.iv, header.sequence), aad, payload, out)) {
    return reject(Failure::kInternal, "AEAD seal failed");
  }
  s.next_sequence = sequence + 1;
  ++s.sent_in_epoch;
  ++s.stats.sealed;
  return out;
}

Checked<std::string> Session::open(std::string_view topic, std::string_view envelope) {
  auto view = parse_envelope(envelope);
  if (!view) {
    return view.error();
  }
  return open(topic, *view);
}

Checked<std::string> Session::open(std::string_view topic, const EnvelopeView& envelope) {
  State& s = *state_;
  const EnvelopeHeader& h = envelope.header;
  if (h.direction == s.send_direction) {
    return reject(Failure::kWrongDirection, "an envelope of this side's own direction");
  }
  if (h.session_id != s.id) {
    return reject(Failure::kUnknownSession, fmt::format("session {:08x}", h.session_id));
  }
  if (h.suite != s.suite) {
    return reject(Failure::kUnsupportedSuite, "not the session's suite");
  }
  const auto now = s.clock->now();
  const std::uint64_t now_ms = unix_ms(now);
  const auto max_age_ms = static_cast<std::uint64_t>(s.settings.max_age.count()) * 1000;
  const auto max_skew_ms = static_cast<std::uint64_t>(s.settings.max_skew.count()) * 1000;
  if (h.timestamp_ms + max_age_ms < now_ms || h.timestamp_ms > now_ms + max_skew_ms) {
    return reject(Failure::kStale,
                  fmt::format("timestamp {} ms, now {} ms", h.timestamp_ms, now_ms));
  }
  if (h.sequence == 0) {
    return reject(Failure::kMalformed, "sequence 0");
  }
  if (auto replay = s.window.check(h.sequence)) {
    return reject(*replay, fmt::format("sequence {}", h.sequence));
  }
  // Which epoch: the current one, the previous one in its grace, or one a little ahead.
  const auto current_low = static_cast<std::uint8_t>(s.receive.number & 0xFF);
  const std::uint8_t ahead = static_cast<std::uint8_t>(h.epoch - current_low);
  std::optional<Epoch> candidate;
  Epoch* epoch = nullptr;
  try {
    if (ahead == 0) {
      epoch = &s.receive;
    } else if (ahead <= kMaxEpochLookahead) {
      std::string secret = s.receive.secret;
      for (std::uint8_t i = 0; i < ahead; ++i) {
        secret = next_epoch_secret(secret);
      }
      candidate.emplace(s.receive.number + ahead, std::move(secret), s.suite, false, now);
      epoch = &*candidate;
    } else if (s.previous && h.epoch == static_cast<std::uint8_t>(s.previous->number & 0xFF) &&
               now <= s.previous_until) {
      epoch = &*s.previous;
    } else {
      return reject(Failure::kWrongEpoch,
                    fmt::format("epoch {} (current {})", h.epoch, s.receive.number));
    }
  } catch (const std::exception& e) {
    return reject(Failure::kInternal, e.what());
  }
  std::string aad(envelope.header_bytes);
  aad.append(topic);
  std::string plaintext;
  if (!epoch->aead->open(message_nonce(epoch->iv, h.sequence), aad, envelope.ciphertext,
                         envelope.tag, plaintext)) {
    return reject(Failure::kTampered,
                  "authentication tag does not verify (payload, header or "
                  "topic changed, or another key)");
  }
  if (candidate) {
    // Authenticated: the peer has moved on. The old epoch stays open for its grace.
    s.previous = std::move(s.receive);
    s.previous_until = now + s.settings.epoch_grace;
    s.receive = std::move(*candidate);
    s.stats.receive_epoch = s.receive.number;
  }
  s.window.accept(h.sequence);
  ++s.stats.opened;
  return plaintext;
}

}  // namespace recmesh::e2e
