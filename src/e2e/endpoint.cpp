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
    publish(q.topic, std::move(sealed).value(), q.retain);
    ++stats.sealed;
    ++stats.flushed;
  }
}

// ---- MemberEndpoint -----------------------------------------------------------------------

MemberEndpoint::MemberEndpoint(Credentials own, std::string rec, std::string member,
                               std::function<PeerTrust()> platform_trust, E2eSettings settings,
                               RawPublish publish, const Clock& clock)
    : own_(std::move(own)),
      rec_(std::move(rec)),
      member_(std::move(member)),
      trust_(std::move(platform_trust)),
      settings_(settings),
      publish_(std::move(publish)),
      clock_(&clock) {
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
  if (last_hello_ && now - *last_hello_ < settings_.handshake_timeout) {
    return;
  }
  last_hello_ = now;
  try {
    publish_(std::string("/platform/keys/response"),
             make_hello(own_, rec_, member_, HandshakeInputs::fresh(*clock_)), false);
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
  publish_(std::string(topic), std::move(sealed).value(), retain);
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
    publish_(std::string("/platform/keys/response"), responded->response, false);
    link_.install(Session(responded->keys, settings_, *clock_), clock_->now(),
                  settings_.epoch_grace);
    ++stats_.handshakes_completed;
    last_hello_.reset();
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
    publish_(std::string("/platform/keys/response"), std::move(sealed).value(), false);
  }
  link_.drop();
}

// ---- PlatformEndpoint ---------------------------------------------------------------------

PlatformEndpoint::PlatformEndpoint(Credentials own, TrustLoader gateway_trust, E2eSettings settings,
                                   RawPublish publish, const Clock& clock)
    : own_(std::move(own)),
      trust_(std::move(gateway_trust)),
      settings_(settings),
      publish_(std::move(publish)),
      clock_(&clock) {}

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

void PlatformEndpoint::connect(const std::string& rec, const std::string& member_id) {
  Member& m = member(rec, member_id);
  const auto now = clock_->now();
  if (m.pending && now - m.pending_since < settings_.handshake_timeout) {
    return;
  }
  try {
    m.pending.emplace(own_, rec, member_id, settings_.suite, HandshakeInputs::fresh(*clock_));
    m.pending_since = now;
    publish_(keys_topic(rec, member_id), m.pending->init(), false);
    ++stats_.handshakes_started;
  } catch (const std::exception&) {
    m.pending.reset();
    ++stats_.refused[static_cast<std::size_t>(Failure::kInternal)];
  }
}

void PlatformEndpoint::poll() {
  const auto now = clock_->now();
  for (auto& [key, m] : members_) {
    const bool timed_out = m.pending && now - m.pending_since >= settings_.handshake_timeout;
    const bool needs_session = !m.link.established() && !m.link.queue().empty();
    const bool old = m.link.established() &&
                     now - m.link.current()->established_at() >= settings_.rehandshake_after;
    if (timed_out || (!m.pending && (needs_session || old))) {
      connect(key.first, key.second);
    }
  }
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
  publish_(std::string(topic), std::move(sealed).value(), retain);
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
  publish_(topic, std::move(sealed).value(), false);
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
    // The gateway holds no session (it restarted): ours is dead, new messages wait for the next.
    if (m.link.established()) {
      m.link.retire(clock_->now(), settings_.epoch_grace);
    }
    connect(rec, member_id);
    return std::monostate{};
  }
  if (!m.pending) {
    return refuse<std::monostate>(
        reject(Failure::kUnknownSession, "a response without a handshake under way"));
  }
  auto keys = m.pending->finish(payload, trust, settings_, *clock_);
  if (!keys) {
    return refuse<std::monostate>(keys.error());
  }
  try {
    m.link.install(Session(*keys, settings_, *clock_), clock_->now(), settings_.epoch_grace);
  } catch (const std::exception& e) {
    return refuse<std::monostate>(reject(Failure::kInternal, e.what()));
  }
  m.pending.reset();
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
      publish_(topic, std::move(sealed).value(), false);
    }
    m.link.drop();
  }
}

}  // namespace recmesh::e2e
