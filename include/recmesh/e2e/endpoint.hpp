#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "recmesh/core/clock.hpp"
#include "recmesh/e2e/delivery.hpp"
#include "recmesh/e2e/failure.hpp"
#include "recmesh/e2e/handshake.hpp"
#include "recmesh/e2e/session.hpp"
#include "recmesh/e2e/settings.hpp"
#include "recmesh/mqtt/reconnect_backoff.hpp"

namespace recmesh::e2e {

// How an endpoint hands bytes to MQTT: topic, payload, retain. The caller publishes at QoS 1 and
// returns false when its client refused the message (its queue is full): a handshake message
// that was not handed over is sent again later, never taken as sent.
using RawPublish = std::function<bool(const std::string& topic, std::string payload, bool retain)>;

// How long to wait after the `attempt`-th unanswered handshake message (1, 2, ...) before the
// next: handshake_timeout, doubling per attempt up to kMaxRetryFactor times it, less up to a
// quarter at random so that many peers that failed together do not retry together.
std::chrono::milliseconds handshake_retry_gap(const E2eSettings& settings, int attempt,
                                              const mqtt::UniformRandom& random);

// The payload of the sealed message that ends a session (on the keys topics).
inline constexpr std::string_view kClosePayload = "close";

// The central topic name that a protected message is bound to (its associated data) for a
// local topic of member rec/member: /platform/<x> -> /<r>/<m>/<x>, /smart-gateway/<x> ->
// /<r>/<m>/smart-gateway/<x>; empty for any other topic.
std::string bound_topic(std::string_view rec, std::string_view member, std::string_view local);

// Counters of an endpoint; every refusal is counted under its class.
struct EndpointStats {
  std::uint64_t sealed = 0;
  std::uint64_t opened = 0;
  std::uint64_t queued = 0;   // held while no session existed
  std::uint64_t flushed = 0;  // queued messages sent once a session came up
  std::uint64_t handshakes_started = 0;
  std::uint64_t handshakes_completed = 0;
  std::uint64_t hellos = 0;                // sent (gateway) or accepted (EMS engine)
  std::uint64_t handshakes_timed_out = 0;  // unanswered within handshake_timeout: retried
  std::uint64_t handshakes_unsent = 0;     // MQTT refused the message: retried later
  std::uint64_t stale_hellos = 0;          // made before the current session's response: ignored
  std::uint64_t closes = 0;                // sessions ended by a close message
  std::uint64_t acks = 0;                  // acks sent (EMS engine) or accepted (gateway)
  std::array<std::uint64_t, kFailureCount> refused{};
  std::uint64_t refused_total() const;
  std::uint64_t refused_of(Failure f) const { return refused[static_cast<std::size_t>(f)]; }
};

// Shared by both ends: the current session, earlier ones during their grace, and the queue.
class PeerLink {
 public:
  struct Queued {
    std::string topic;  // the topic to publish on
    std::string bound;  // the topic bound into the envelope
    std::string payload;
    bool retain = false;
  };

  // Sessions that still open during their grace: a peer's reconnects, a re-handshake, an
  // offline flag or a close in quick succession must not cut off what is still in flight.
  static constexpr std::size_t kMaxRetired = 4;

  bool established() const { return current_.has_value(); }
  Session* current() { return current_ ? &*current_ : nullptr; }
  // Installs a new session; the old one keeps opening for `grace`.
  void install(Session session, Clock::TimePoint now, std::chrono::seconds grace);
  // Ends the current session for sending; it keeps opening for `grace` (what the peer sealed
  // in it before it stopped, reconnected or said hello is still on its way).
  void retire(Clock::TimePoint now, std::chrono::seconds grace);
  // Forgets every session at once.
  void drop();
  // Opens with the session the envelope names (current, or a retired one in its grace).
  Checked<std::string> open(std::string_view bound, std::string_view envelope,
                            Clock::TimePoint now);
  // Seals in the current session (which must exist) with the next sequence number, or with
  // `id` (a message ID the sender keeps across sessions, docs/protocol/e2e.md §6.1).
  Checked<std::string> seal(std::string_view bound, std::string_view payload);
  Checked<std::string> seal(std::string_view bound, std::string_view payload, std::uint64_t id);
  // Seals and publishes what was queued, in order, once a session exists.
  void flush(const RawPublish& publish, EndpointStats& stats);
  // Sequence numbers continue from session to session instead of restarting at 1 (the
  // gateway's side: the engine remembers the numbers it stored across sessions).
  void continue_sequences() { continue_sequences_ = true; }
  // The highest sequence number sealed in any session of this link.
  std::uint64_t last_sealed() const { return last_sealed_; }
  void resume_after(std::uint64_t id) { last_sealed_ = std::max(last_sealed_, id); }
  // True when some session of this link has this ID.
  bool holds(std::uint32_t session_id) const;

  std::deque<Queued>& queue() { return queue_; }
  const std::deque<Queued>& queue() const { return queue_; }

 private:
  struct Retired {
    Session session;
    Clock::TimePoint until;
  };

  std::optional<Session> current_;
  std::deque<Retired> retired_;  // newest first, at most kMaxRetired
  std::deque<Queued> queue_;
  bool continue_sequences_ = false;
  std::uint64_t last_sealed_ = 0;
};

// The gateway's end (docs/protocol/e2e.md): answers the EMS engine's handshakes on
// /platform/keys, seals what it publishes towards the platform, opens /platform/control.
// Not thread-safe: one event loop calls it. Never throws after construction.
class MemberEndpoint {
 public:
  // `platform_trust` is read at every handshake, so a new CRL takes effect at the next one.
  MemberEndpoint(Credentials own, std::string rec, std::string member,
                 std::function<PeerTrust()> platform_trust, E2eSettings settings,
                 RawPublish publish, const Clock& clock = SystemClock::instance(),
                 mqtt::UniformRandom random = {});

  // Sends a hello (asks the EMS engine for a handshake) unless a session exists already or the
  // last hello is more recent than the retry gap: called at every connect to the local broker.
  void start();
  // Periodic work: a new hello while no session exists, spaced by handshake_retry_gap.
  void poll();
  // Seals and publishes on local `topic`, or queues it until a session exists.
  Checked<std::monostate> publish(std::string_view topic, std::string_view payload,
                                  bool retain = false);
  // Seals for local `topic` now, for a caller that keeps unsent messages itself (a durable
  // outbox): kNoSession when no session exists (a hello goes out), never queued. `id` is the
  // message's ID in that store, its envelope's sequence number: increasing, kept across
  // sessions and restarts, so that the engine recognises a message re-sealed in a later session
  // as delivered (docs/protocol/e2e.md §6.1). Without it the next number is taken.
  Checked<std::string> seal(std::string_view topic, std::string_view payload);
  Checked<std::string> seal(std::string_view topic, std::string_view payload, std::uint64_t id);
  // Message IDs up to `last_id` were sealed by an earlier run of this gateway: sequence numbers
  // continue above it, and the engine's acks may confirm any of them.
  void resume_after(std::uint64_t last_id) { link_.resume_after(last_id); }
  // What arrived on /platform/keys: an init (answered) or a close.
  Checked<std::monostate> on_keys(std::string_view payload);
  // Opens a protected message that arrived on local `topic`.
  Checked<std::string> open(std::string_view topic, std::string_view payload);
  // Tells the EMS engine this session ends (clean stop); later publishes are queued.
  void close();

  bool established() const { return link_.established(); }
  const EndpointStats& stats() const { return stats_; }
  std::size_t queued() const;
  // Called when a session comes up (after queued messages went out).
  std::function<void()> on_established;
  // Called with every valid ack of the EMS engine: the messages it confirms are stored there.
  std::function<void(const Acknowledgement&)> on_acknowledged;

 private:
  Checked<std::monostate> refuse(Rejection r);
  Checked<std::monostate> on_sealed_keys(std::string_view payload);
  Checked<std::string> seal_checked(std::string_view topic, std::string_view payload,
                                    std::optional<std::uint64_t> id);
  void send_hello();

  Credentials own_;
  std::string rec_, member_;
  std::function<PeerTrust()> trust_;
  E2eSettings settings_;
  RawPublish publish_;
  const Clock* clock_;
  mqtt::UniformRandom random_;
  PeerLink link_;
  std::uint64_t last_init_ms_ = 0;  // inits not newer than the last accepted are replays
  std::optional<Clock::TimePoint> next_hello_;  // no hello before this
  int hellos_unanswered_ = 0;
  EndpointStats stats_;
};

// The EMS engine's end: one session per member, started by the engine. At most
// max_concurrent_handshakes handshakes are under way at once; the other members wait in order.
// An unanswered handshake is retried after handshake_timeout and then further apart
// (handshake_retry_gap); a late response to an earlier init of the member still completes.
class PlatformEndpoint {
 public:
  // Throws from `trust` are refusals (kBadCertificate), never exceptions to the caller.
  using TrustLoader = std::function<PeerTrust(const std::string& rec, const std::string& member)>;

  PlatformEndpoint(Credentials own, TrustLoader gateway_trust, E2eSettings settings,
                   RawPublish publish, const Clock& clock = SystemClock::instance(),
                   mqtt::UniformRandom random = {});

  // Asks for a handshake with the gateway of rec/member: started now if a slot is free, else
  // when its turn comes. Nothing new while one is under way or the member's retry gap runs.
  void connect(const std::string& rec, const std::string& member);
  // Periodic work: retries handshakes that timed out; renews sessions older than
  // rehandshake_after; starts waiting handshakes as slots free up.
  void poll();
  // Seals and publishes on central `topic` for the member, or queues and starts a handshake.
  Checked<std::monostate> publish(const std::string& rec, const std::string& member,
                                  std::string_view topic, std::string_view payload,
                                  bool retain = false);
  // Seals for central `topic` now, for a caller that keeps unsent messages itself (the
  // engine's control table): kNoSession when no session exists (a handshake starts), never
  // queued.
  Checked<std::string> seal(const std::string& rec, const std::string& member,
                            std::string_view topic, std::string_view payload);
  // Confirms to the member's gateway what `stored` holds: a sealed ack on /<r>/<m>/keys
  // (docs/protocol/e2e.md §6.1). kNoSession without a session.
  Checked<std::monostate> acknowledge(const std::string& rec, const std::string& member,
                                      const SequenceWindow& stored);
  // What arrived on /<r>/<m>/keys/response: a response, a hello or a close.
  Checked<std::monostate> on_keys_response(const std::string& rec, const std::string& member,
                                           std::string_view payload);
  // Opens a protected message that arrived on central `topic` of rec/member.
  Checked<std::string> open(const std::string& rec, const std::string& member,
                            std::string_view topic, std::string_view payload);
  // The same, with the envelope's sequence number: the gateway's message ID.
  struct Opened {
    std::string payload;
    std::uint64_t sequence = 0;
  };
  Checked<Opened> open_message(const std::string& rec, const std::string& member,
                               std::string_view topic, std::string_view payload);
  // The member's gateway went offline: its session is dropped, later messages are queued.
  void peer_offline(const std::string& rec, const std::string& member);
  // Clean stop: a close to every member with a session.
  void close_all();

  bool established(const std::string& rec, const std::string& member) const;
  std::size_t queued(const std::string& rec, const std::string& member) const;
  // Handshakes under way (unanswered, within handshake_timeout) and members waiting for one.
  std::size_t handshakes_in_flight() const { return in_flight_; }
  std::size_t handshakes_waiting() const;
  const EndpointStats& stats() const { return stats_; }
  std::function<void(const std::string& rec, const std::string& member)> on_established;

 private:
  // Inits sent and not yet answered; kept for max_age, so that a response that arrives after
  // its init timed out and a newer one went out still completes (the gateway installed it).
  static constexpr std::size_t kMaxPendingInits = 4;
  struct Pending {
    PlatformHandshake handshake;
    Clock::TimePoint sent;
  };
  struct Member {
    PeerLink link;
    std::deque<Pending> pending;  // newest first
    bool in_flight = false;       // holds a slot until answered or deadline
    bool waiting = false;         // in waiting_, started not before not_before
    Clock::TimePoint deadline{};
    Clock::TimePoint not_before{};
    Clock::TimePoint asked{};  // when it started waiting
    int unanswered = 0;        // handshakes in a row that timed out
    // The gateway's time in the response of the current session: a hello made before it
    // asked for what the engine already holds.
    std::uint64_t session_response_ms = 0;
  };
  using Key = std::pair<std::string, std::string>;

  template <typename T>
  Checked<T> refuse(Rejection r);
  Member& member(const std::string& rec, const std::string& member);
  std::optional<Key> owner_of(std::uint32_t session_id) const;
  void wait_for_slot(const Key& key, Member& m, Clock::TimePoint not_before);
  void start_waiting(Clock::TimePoint now);
  bool start_handshake(const Key& key, Member& m, Clock::TimePoint now);
  void release_slot(Member& m);

  Credentials own_;
  TrustLoader trust_;
  E2eSettings settings_;
  RawPublish publish_;
  const Clock* clock_;
  mqtt::UniformRandom random_;
  std::map<Key, Member> members_;
  std::deque<Key> waiting_;  // members waiting for a slot, in order of asking
  std::size_t in_flight_ = 0;
  EndpointStats stats_;
};

}  // namespace recmesh::e2e
