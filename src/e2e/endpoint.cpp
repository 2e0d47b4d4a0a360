#include "recmesh/e2e/endpoint.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace recmesh::e2e {
namespace {

constexpr std::string_view kPlatformPrefix = "/platform/";
constexpr std::string_view kGatewayPrefix = "/smart-gateway/";

std::string keys_topic(std::string_view rec, std::string_view member) {
  return fmt::format("/{}/{}/keys", rec, member);
}
std::string keys_response_topic(std::string_view rec, std::string_view member) {
  return fmt::format("/{}/{}/keys/response", rec, member);
}

}  // namespace

std::string bound_topic(std::string_view rec, std::string_view member, std::string_view local) {
  if (local.starts_with(kPlatformPrefix) && local.size() > kPlatformPrefix.size()) {
    return fmt::format("/{}/{}/{}", rec, member, local.substr(kPlatformPrefix.size()));
  }
  if (local.starts_with(kGatewayPrefix) && local.size() > kGatewayPrefix.size()) {
    return fmt::format("/{}/{}{}", rec, member, local);
  }
  return {};
}

std::chrono::milliseconds handshake_retry_gap(const E2eSettings& settings, int attempt,
                                              const mqtt::UniformRandom& random) {
  std::int64_t factor = 1;
  for (int i = 1; i < attempt && factor < E2eSettings::kMaxRetryFactor; ++i) {
    factor *= 2;
  }
  const auto nominal =
      std::chrono::duration_cast<std::chrono::milliseconds>(settings.handshake_timeout) *
      std::min<std::int64_t>(factor, E2eSettings::kMaxRetryFactor);
  const double draw = random ? std::clamp(random(), 0.0, 1.0) : 0.0;
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(nominal.count()) * (1.0 - 0.25 * draw)));
}

std::uint64_t EndpointStats::refused_total() const {
  std::uint64_t total = 0;
  for (const auto n : refused) {
    total += n;
  }
  return total;
}

// ---- PeerLink -----------------------------------------------------------------------------

void PeerLink::install(Session session, Clock::TimePoint now, std::chrono::seconds grace) {
  retire(now, grace);
  current_ = std::move(session);
}

void PeerLink::retire(Clock::TimePoint now, std::chrono::seconds grace) {
  std::erase_if(retired_, [now](const Retired& r) { return now > r.until; });
  if (!current_) {
    return;
  }
  retired_.push_front({std::move(*current_), now + grace});
  current_.reset();
  if (retired_.size() > kMaxRetired) {
    retired_.pop_back();
  }
}

void PeerLink::drop() {
  current_.reset();
  retired_.clear();
}

bool PeerLink::holds(std::uint32_t session_id) const {
  return (current_ && current_->id() == session_id) ||
         std::any_of(retired_.begin(), retired_.end(),
                     [session_id](const Retired& r) { return r.session.id() == session_id; });
}

Checked<std::string> PeerLink::open(std::string_view bound, std::string_view envelope,
                                    Clock::TimePoint now) {
  auto view = parse_envelope(envelope);
  if (!view) {
    return view.error();
  }
  if (current_ && current_->id() == view->header.session_id) {
    return current_->open(bound, *view);
  }
  std::erase_if(retired_, [now](const Retired& r) { return now > r.until; });
  for (auto& r : retired_) {
    if (r.session.id() == view->header.session_id) {
      return r.session.open(bound, *view);
    }
  }
  if (!current_) {
    return reject(Failure::kNoSession, "no session established");
  }
  return reject(Failure::kUnknownSession,
                fmt::format("session {:08x} is not held", view->header.session_id));
}

Checked<std::string> PeerLink::seal(std::string_view bound, std::string_view payload) {
  const std::uint64_t next = current_ ? current_->next_sequence() : 1;
  return seal(bound, payload, continue_sequences_ ? std::max(next, last_sealed_ + 1) : next);
}

Checked<std::string> PeerLink::seal(std::string_view bound, std::string_view payload,
                                    std::uint64_t id) {
  if (!current_) {
    return reject(Failure::kNoSession, "no session established");
  }
  auto sealed = current_->seal(bound, payload, id);
  if (sealed) {
    last_sealed_ = std::max(last_sealed_, id);
  }
  return sealed;
}

void PeerLink::flush(const RawPublish& publish, EndpointStats& stats) {
  while (!queue_.empty() && current_) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    auto sealed = seal(q.bound, q.payload);
    if (!sealed) {
      ++stats.refused[static_cast<std::size_t>(sealed.error().failure)];
      continue;
    }
    if (!publish(q.topic, std::move(sealed).value(), q.retain)) {
      ++stats.refused[static_cast<std::size_t>(Failure::kQueueFull)];
      continue;
    }
    ++stats.sealed;
    ++stats.flushed;
  }
}

// ---- MemberEndpoint -----------------------------------------------------------------------

MemberEndpoint::MemberEndpoint(Credentials own, std::string rec, std::string member,
                               std::function<PeerTrust()> platform_trust, E2eSettings settings,
                               RawPublish publish, const Clock& clock, mqtt::UniformRandom random)
    : own_(std::move(own)),
      rec_(std::move(rec)),
      member_(std::move(member)),
      trust_(std::move(platform_trust)),
      settings_(settings),
      publish_(std::move(publish)),
      clock_(&clock),
      random_(random ? std::move(random) : mqtt::make_uniform_random()) {
  link_.continue_sequences();
}

std::size_t MemberEndpoint::queued() const {
  return link_.queue().size();
}

Checked<std::monostate> MemberEndpoint::refuse(Rejection r) {
  ++stats_.refused[static_cast<std::size_t>(r.failure)];
  return r;
}

void MemberEndpoint::start() {
  // A reconnect to the local broker keeps the session: a hello would make the engine retire
  // it and re-handshake for nothing.
  if (!link_.established()) {
    send_hello();
  }
}

void MemberEndpoint::poll() {
  if (!link_.established()) {
    send_hello();
  }
}

void MemberEndpoint::send_hello() {
  const auto now = clock_->now();
  if (next_hello_ && now < *next_hello_) {
    return;
  }
  // Spaced further apart while unanswered: a platform busy with a whole community's handshakes
  // gets fewer hellos, not more.
  next_hello_ = now + handshake_retry_gap(settings_, ++hellos_unanswered_, random_);
  try {
    if (!publish_(std::string("/platform/keys/response"),
                  make_hello(own_, rec_, member_, HandshakeInputs::fresh(*clock_)), false)) {
      ++stats_.handshakes_unsent;
      return;
    }
    ++stats_.hellos;
  } catch (const std::exception&) {
    ++stats_.refused[static_cast<std::size_t>(Failure::kInternal)];
  }
}

Checked<std::monostate> MemberEndpoint::publish(std::string_view topic, std::string_view payload,
                                                bool retain) {
  const std::string bound = bound_topic(rec_, member_, topic);
  if (bound.empty()) {
    return refuse(reject(Failure::kMalformed, "not a topic the e2e layer protects"));
  }
  if (!link_.established()) {
    auto& queue = link_.queue();
    if (queue.size() >= settings_.max_queued) {
      return refuse(reject(Failure::kQueueFull, "no session and the queue is full"));
    }
    queue.push_back({std::string(topic), bound, std::string(payload), retain});
    ++stats_.queued;
    send_hello();
    return std::monostate{};
  }
  auto sealed = link_.seal(bound, payload);
  if (!sealed) {
    return refuse(sealed.error());
  }
  if (!publish_(std::string(topic), std::move(sealed).value(), retain)) {
    return refuse(reject(Failure::kQueueFull, "the MQTT client refused the message"));
  }
  ++stats_.sealed;
  return std::monostate{};
}

Checked<std::string> MemberEndpoint::seal(std::string_view topic, std::string_view payload) {
  return seal_checked(topic, payload, std::nullopt);
}

Checked<std::string> MemberEndpoint::seal(std::string_view topic, std::string_view payload,
                                          std::uint64_t id) {
  return seal_checked(topic, payload, id);
}

Checked<std::string> MemberEndpoint::seal_checked(std::string_view topic, std::string_view payload,
                                                  std::optional<std::uint64_t> id) {
  const std::string bound = bound_topic(rec_, member_, topic);
  if (bound.empty()) {
    ++stats_.refused[static_cast<std::size_t>(Failure::kMalformed)];
    return reject(Failure::kMalformed, "not a topic the e2e layer protects");
  }
  if (!link_.established()) {
    send_hello();
    return reject(Failure::kNoSession, "no session established");
  }
  auto sealed = id ? link_.seal(bound, payload, *id) : link_.seal(bound, payload);
  if (!sealed) {
    ++stats_.refused[static_cast<std::size_t>(sealed.error().failure)];
    return sealed;
  }
  ++stats_.sealed;
  return sealed;
}

Checked<std::string> MemberEndpoint::open(std::string_view topic, std::string_view payload) {
  auto opened = link_.open(bound_topic(rec_, member_, topic), payload, clock_->now());
  if (!opened) {
    ++stats_.refused[static_cast<std::size_t>(opened.error().failure)];
    if (opened.error().failure == Failure::kUnknownSession ||
        opened.error().failure == Failure::kNoSession) {
      send_hello();  // the engine holds a session this side lost
    }
    return opened;
  }
  ++stats_.opened;
  return opened;
}

Checked<std::monostate> MemberEndpoint::on_keys(std::string_view payload) {
  auto type = peek_type(payload);
  if (!type) {
    return refuse(type.error());
  }
  if (*type == MessageType::kData) {
    return on_sealed_keys(payload);
  }
  if (*type != MessageType::kInit) {
    return refuse(reject(Failure::kWrongDirection, "only inits and closes come this way"));
  }
  PeerTrust trust;
  try {
    trust = trust_();
  } catch (const std::exception& e) {
    return refuse(reject(Failure::kBadCertificate, e.what()));
  }
  try {
    auto responded = respond_to_init(own_, rec_, member_, payload, trust, settings_, *clock_,
                                     HandshakeInputs::fresh(*clock_));
    if (!responded) {
      return refuse(responded.error());
    }
    if (responded->init_time_ms <= last_init_ms_) {
      return refuse(reject(Failure::kReplayed, "an init not newer than the last accepted"));
    }
    last_init_ms_ = responded->init_time_ms;
    // Unsent, the engine would never hold the session this side would seal in: the engine's
    // next init (it retries) is answered instead.
    if (!publish_(std::string("/platform/keys/response"), responded->response, false)) {
      ++stats_.handshakes_unsent;
      return refuse(reject(Failure::kQueueFull, "the MQTT client refused the response"));
    }
    link_.install(Session(responded->keys, settings_, *clock_), clock_->now(),
                  settings_.epoch_grace);
    ++stats_.handshakes_completed;
    next_hello_.reset();
    hellos_unanswered_ = 0;
    link_.flush(publish_, stats_);
    if (on_established) {
      on_established();
    }
    return std::monostate{};
  } catch (const std::exception& e) {
    return refuse(reject(Failure::kInternal, e.what()));
  }
}

// A close or an ack of the engine, sealed in a session of this link.
Checked<std::monostate> MemberEndpoint::on_sealed_keys(std::string_view payload) {
  auto opened = link_.open(keys_topic(rec_, member_), payload, clock_->now());
  if (!opened) {
    return refuse(opened.error());
  }
  if (*opened == kClosePayload) {
    link_.retire(clock_->now(), settings_.epoch_grace);
    ++stats_.closes;
    return std::monostate{};
  }
  if (!looks_like_ack(*opened)) {
    return refuse(reject(Failure::kMalformed, "unknown sealed message on the keys topic"));
  }
  auto ack = parse_ack(*opened);
  if (!ack) {
    return refuse(ack.error());
  }
  // Only the engine can seal an ack; still, one that confirms numbers never sent is refused
  // whole rather than let it clear messages the engine does not have.
  if (ack->highest > link_.last_sealed()) {
    return refuse(reject(Failure::kMalformed,
                         fmt::format("an ack of message {}, above the last one sent ({})",
                                     ack->highest, link_.last_sealed())));
  }
  ++stats_.acks;
  if (on_acknowledged) {
    on_acknowledged(*ack);
  }
  return std::monostate{};
}

void MemberEndpoint::close() {
  if (!link_.established()) {
    return;
  }
  auto sealed = link_.seal(keys_response_topic(rec_, member_), kClosePayload);
  if (sealed) {
    (void)publish_(std::string("/platform/keys/response"), std::move(sealed).value(), false);
  }
  link_.drop();
}

// ---- PlatformEndpoint ---------------------------------------------------------------------

PlatformEndpoint::PlatformEndpoint(Credentials own, TrustLoader gateway_trust, E2eSettings settings,
                                   RawPublish publish, const Clock& clock,
                                   mqtt::UniformRandom random)
    : own_(std::move(own)),
      trust_(std::move(gateway_trust)),
      settings_(settings),
      publish_(std::move(publish)),
      clock_(&clock),
      random_(random ? std::move(random) : mqtt::make_uniform_random()) {}

template <typename T>
Checked<T> PlatformEndpoint::refuse(Rejection r) {
  ++stats_.refused[static_cast<std::size_t>(r.failure)];
  return r;
}

PlatformEndpoint::Member& PlatformEndpoint::member(const std::string& rec,
                                                   const std::string& member) {
  return members_[Key(rec, member)];
}

bool PlatformEndpoint::established(const std::string& rec, const std::string& member) const {
  const auto it = members_.find(Key(rec, member));
  return it != members_.end() && it->second.link.established();
}

std::size_t PlatformEndpoint::queued(const std::string& rec, const std::string& member) const {
  const auto it = members_.find(Key(rec, member));
  return it == members_.end() ? 0 : it->second.link.queue().size();
}

std::optional<PlatformEndpoint::Key> PlatformEndpoint::owner_of(std::uint32_t session_id) const {
  for (const auto& [key, m] : members_) {
    if (m.link.holds(session_id)) {
      return key;
    }
  }
  return std::nullopt;
}

std::size_t PlatformEndpoint::handshakes_waiting() const {
  return static_cast<std::size_t>(std::count_if(
      members_.begin(), members_.end(), [](const auto& entry) { return entry.second.waiting; }));
}

void PlatformEndpoint::wait_for_slot(const Key& key, Member& m, Clock::TimePoint not_before) {
  if (m.in_flight) {
    return;
  }
  if (m.waiting) {
    m.not_before = std::min(m.not_before, not_before);
    return;
  }
  m.waiting = true;
  m.not_before = not_before;
  m.asked = clock_->now();
  waiting_.push_back(key);
}

void PlatformEndpoint::release_slot(Member& m) {
  if (m.in_flight) {
    m.in_flight = false;
    --in_flight_;
  }
}

bool PlatformEndpoint::start_handshake(const Key& key, Member& m, Clock::TimePoint now) {
  std::erase_if(m.pending, [&](const Pending& p) { return now - p.sent > settings_.max_age; });
  while (m.pending.size() >= kMaxPendingInits) {
    m.pending.pop_back();
  }
  try {
    PlatformHandshake handshake(own_, key.first, key.second, settings_.suite,
                                HandshakeInputs::fresh(*clock_));
    if (!publish_(keys_topic(key.first, key.second), handshake.init(), false)) {
      // The broker connection holds too much already: this member tries again after a gap.
      ++stats_.handshakes_unsent;
      ++m.unanswered;
      wait_for_slot(key, m, now + handshake_retry_gap(settings_, m.unanswered, random_));
      return false;
    }
    m.pending.push_front({std::move(handshake), now});
  } catch (const std::exception&) {
    ++stats_.refused[static_cast<std::size_t>(Failure::kInternal)];
    ++m.unanswered;
    wait_for_slot(key, m, now + handshake_retry_gap(settings_, m.unanswered, random_));
    return false;
  }
  m.in_flight = true;
  ++in_flight_;
  m.deadline = now + settings_.handshake_timeout;
  ++stats_.handshakes_started;
  return true;
}

void PlatformEndpoint::start_waiting(Clock::TimePoint now) {
  // One pass in order: a member whose gap still runs keeps its place for the next poll.
  std::deque<Key> later;
  while (!waiting_.empty() && in_flight_ < settings_.max_concurrent_handshakes) {
    Key key = std::move(waiting_.front());
    waiting_.pop_front();
    const auto it = members_.find(key);
    if (it == members_.end() || !it->second.waiting) {
      continue;
    }
    Member& m = it->second;
    if (now < m.not_before) {
      later.push_back(std::move(key));
      continue;
    }
    m.waiting = false;
    if (m.link.established() && m.link.current()->established_at() >= m.asked) {
      continue;  // a late answer to an earlier init brought a session up meanwhile
    }
    start_handshake(key, m, now);
  }
  waiting_.insert(waiting_.begin(), std::make_move_iterator(later.begin()),
                  std::make_move_iterator(later.end()));
}

void PlatformEndpoint::connect(const std::string& rec, const std::string& member_id) {
  const Key key(rec, member_id);
  Member& m = member(rec, member_id);
  const auto now = clock_->now();
  wait_for_slot(key, m, m.waiting ? m.not_before : now);
  start_waiting(now);
}

void PlatformEndpoint::poll() {
  const auto now = clock_->now();
  for (auto& [key, m] : members_) {
    if (m.in_flight && now >= m.deadline) {
      release_slot(m);
      if (m.link.established() && !m.pending.empty() &&
          m.link.current()->established_at() >= m.pending.front().sent) {
        continue;  // a late answer to an earlier init brought a session up meanwhile
      }
      // Unanswered: the slot goes to the next member; this one tries again after a gap (the
      // first retry at once), and its earlier inits still finish if answered late.
      ++stats_.handshakes_timed_out;
      ++m.unanswered;
      const auto gap =
          handshake_retry_gap(settings_, m.unanswered, random_) -
          std::chrono::duration_cast<std::chrono::milliseconds>(settings_.handshake_timeout);
      wait_for_slot(key, m, now + std::max(gap, std::chrono::milliseconds(0)));
      continue;
    }
    const bool needs_session = !m.link.established() && !m.link.queue().empty();
    const bool old = m.link.established() &&
                     now - m.link.current()->established_at() >= settings_.rehandshake_after;
    if (!m.in_flight && (needs_session || old)) {
      wait_for_slot(key, m, m.waiting ? m.not_before : now);
    }
  }
  start_waiting(now);
}

Checked<std::monostate> PlatformEndpoint::publish(const std::string& rec,
                                                  const std::string& member_id,
                                                  std::string_view topic, std::string_view payload,
                                                  bool retain) {
  Member& m = member(rec, member_id);
  if (!m.link.established()) {
    auto& queue = m.link.queue();
    if (queue.size() >= settings_.max_queued) {
      return refuse<std::monostate>(
          reject(Failure::kQueueFull, "no session and the queue is full"));
    }
    queue.push_back({std::string(topic), std::string(topic), std::string(payload), retain});
    ++stats_.queued;
    connect(rec, member_id);
    return std::monostate{};
  }
  auto sealed = m.link.seal(topic, payload);
  if (!sealed) {
    return refuse<std::monostate>(sealed.error());
  }
  if (!publish_(std::string(topic), std::move(sealed).value(), retain)) {
    return refuse<std::monostate>(
        reject(Failure::kQueueFull, "the MQTT client refused the message"));
  }
  ++stats_.sealed;
  return std::monostate{};
}

Checked<std::string> PlatformEndpoint::seal(const std::string& rec, const std::string& member_id,
                                            std::string_view topic, std::string_view payload) {
  Member& m = member(rec, member_id);
  if (!m.link.established()) {
    connect(rec, member_id);
    return reject(Failure::kNoSession, "no session established");
  }
  auto sealed = m.link.seal(topic, payload);
  if (!sealed) {
    return refuse<std::string>(sealed.error());
  }
  ++stats_.sealed;
  return sealed;
}

Checked<std::monostate> PlatformEndpoint::acknowledge(const std::string& rec,
                                                      const std::string& member_id,
                                                      const SequenceWindow& stored) {
  const auto it = members_.find(Key(rec, member_id));
  if (it == members_.end() || !it->second.link.established()) {
    return reject(Failure::kNoSession, "no session established");
  }
  const std::string topic = keys_topic(rec, member_id);
  auto sealed = it->second.link.seal(topic, encode_ack(stored));
  if (!sealed) {
    return refuse<std::monostate>(sealed.error());
  }
  if (!publish_(topic, std::move(sealed).value(), false)) {
    return refuse<std::monostate>(
        reject(Failure::kQueueFull, "the MQTT client refused the message"));
  }
  ++stats_.acks;
  return std::monostate{};
}

Checked<std::string> PlatformEndpoint::open(const std::string& rec, const std::string& member_id,
                                            std::string_view topic, std::string_view payload) {
  auto opened = open_message(rec, member_id, topic, payload);
  if (!opened) {
    return opened.error();
  }
  return std::move(opened->payload);
}

Checked<PlatformEndpoint::Opened> PlatformEndpoint::open_message(const std::string& rec,
                                                                 const std::string& member_id,
                                                                 std::string_view topic,
                                                                 std::string_view payload) {
  auto view = parse_envelope(payload);
  if (!view) {
    return refuse<Opened>(view.error());
  }
  Member& m = member(rec, member_id);
  if (!m.link.holds(view->header.session_id)) {
    if (const auto owner = owner_of(view->header.session_id);
        owner && *owner != Key(rec, member_id)) {
      return refuse<Opened>(
          reject(Failure::kWrongMember,
                 fmt::format("sealed in the session of {}/{}", owner->first, owner->second)));
    }
  }
  auto opened = m.link.open(topic, payload, clock_->now());
  if (!opened) {
    if (opened.error().failure == Failure::kUnknownSession ||
        opened.error().failure == Failure::kNoSession) {
      connect(rec, member_id);  // e.g. this engine restarted while the gateway kept its session
    }
    return refuse<Opened>(opened.error());
  }
  ++stats_.opened;
  return Opened{std::move(opened).value(), view->header.sequence};
}

Checked<std::monostate> PlatformEndpoint::on_keys_response(const std::string& rec,
                                                           const std::string& member_id,
                                                           std::string_view payload) {
  auto type = peek_type(payload);
  if (!type) {
    return refuse<std::monostate>(type.error());
  }
  Member& m = member(rec, member_id);
  if (*type == MessageType::kData) {
    auto opened = m.link.open(keys_response_topic(rec, member_id), payload, clock_->now());
    if (!opened) {
      return refuse<std::monostate>(opened.error());
    }
    if (*opened != kClosePayload) {
      return refuse<std::monostate>(
          reject(Failure::kMalformed, "unknown sealed message on the keys topic"));
    }
    m.link.retire(clock_->now(), settings_.epoch_grace);
    ++stats_.closes;
    return std::monostate{};
  }
  if (*type == MessageType::kInit) {
    return refuse<std::monostate>(
        reject(Failure::kWrongDirection, "an init on the response topic (a reflection)"));
  }
  PeerTrust trust;
  try {
    trust = trust_(rec, member_id);
  } catch (const std::exception& e) {
    return refuse<std::monostate>(reject(Failure::kBadCertificate, e.what()));
  }
  if (*type == MessageType::kHello) {
    auto verified = verify_hello(payload, rec, member_id, trust, settings_, *clock_);
    if (!verified) {
      return refuse<std::monostate>(verified.error());
    }
    ++stats_.hellos;
    const auto hello = parse_hello(payload);
    if (m.link.established() && hello && hello->time_ms < m.session_response_ms) {
      // Sent before the gateway answered the current session (it crossed our init on the way):
      // the gateway holds that session, so a new handshake would only cost both sides one more.
      ++stats_.stale_hellos;
      return std::monostate{};
    }
    // The gateway holds no session (it restarted): ours is dead, new messages wait for the next.
    if (m.link.established()) {
      m.link.retire(clock_->now(), settings_.epoch_grace);
    }
    // A live gateway asks: its turn comes without the gap of earlier unanswered attempts.
    m.unanswered = 0;
    wait_for_slot(Key(rec, member_id), m, clock_->now());
    start_waiting(clock_->now());
    return std::monostate{};
  }
  const auto response = parse_response(payload);
  if (!response) {
    return refuse<std::monostate>(response.error());
  }
  const auto pending = std::find_if(m.pending.begin(), m.pending.end(), [&](const Pending& p) {
    return p.handshake.session_id() == response->session_id;
  });
  if (pending == m.pending.end()) {
    return refuse<std::monostate>(
        reject(Failure::kUnknownSession, "a response without a handshake under way"));
  }
  auto keys = pending->handshake.finish(payload, trust, settings_, *clock_);
  if (!keys) {
    return refuse<std::monostate>(keys.error());
  }
  try {
    m.link.install(Session(*keys, settings_, *clock_), clock_->now(), settings_.epoch_grace);
  } catch (const std::exception& e) {
    return refuse<std::monostate>(reject(Failure::kInternal, e.what()));
  }
  m.session_response_ms = response->time_ms;
  // Earlier inits can only be answered late now; newer ones may still be, and then win.
  const bool newest = pending == m.pending.begin();
  m.pending.erase(pending, m.pending.end());
  if (newest) {
    release_slot(m);
  }
  m.unanswered = 0;
  ++stats_.handshakes_completed;
  m.link.flush(publish_, stats_);
  if (on_established) {
    on_established(rec, member_id);
  }
  return std::monostate{};
}

void PlatformEndpoint::peer_offline(const std::string& rec, const std::string& member_id) {
  const auto it = members_.find(Key(rec, member_id));
  if (it != members_.end()) {
    it->second.link.retire(clock_->now(), settings_.epoch_grace);
  }
}

void PlatformEndpoint::close_all() {
  for (auto& [key, m] : members_) {
    if (!m.link.established()) {
      continue;
    }
    const std::string topic = keys_topic(key.first, key.second);
    auto sealed = m.link.seal(topic, kClosePayload);
    if (sealed) {
      (void)publish_(topic, std::move(sealed).value(), false);
    }
    m.link.drop();
  }
}

}  // namespace recmesh::e2e
