#include "ems/engine_e2e.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/e2e/trust_store.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/limits.hpp"

namespace recmesh::ems {
namespace {

using protocol::Channel;

// Security events are logged one by one at first, then one line per kLogEvery.
constexpr std::uint64_t kLogFirst = 20;
constexpr std::uint64_t kLogEvery = 1000;
constexpr std::chrono::seconds kPollPeriod{1};

bool is_quiet_for_retained(e2e::Failure f) {
  // A retained copy sealed in an earlier session, or already seen in this one.
  return f == e2e::Failure::kReplayed || f == e2e::Failure::kUnknownSession ||
         f == e2e::Failure::kNoSession || f == e2e::Failure::kStale ||
         f == e2e::Failure::kOutsideWindow || f == e2e::Failure::kWrongEpoch;
}

}  // namespace

bool is_protected_channel(Channel channel) {
  switch (channel) {
    case Channel::kMemberMetrics:
    case Channel::kMemberControlResponse:
    case Channel::kMemberLogs:
    case Channel::kGatewayStatusInfo:
    case Channel::kGatewayDiagnostic:
      return true;
    default:
      return false;
  }
}

EngineE2e::EngineE2e(mqtt::EventLoop& loop, const EmsConfig& config, EmsStore& store,
                     RawPublish publish)
    : loop_(loop),
      store_(store),
      window_size_(config.e2e.replay_window),
      endpoint_(
          e2e::Credentials::from_files(config.certfile, config.keyfile),
          // Read once per member and again only when a file of its chain changes (a new CRL).
          [trust = std::make_shared<e2e::PkiTrustStore>(config.pki_dir)](
              const std::string& rec, const std::string& member) {
            return trust->get(fmt::format("member_{}_{}", rec, member),
                              fmt::format("rec_{}_{}_gateway", rec, member));
          },
          config.e2e,
          [this](const std::string& topic, std::string payload, bool) {
            return publish_(topic, std::move(payload));
          }),
      publish_(std::move(publish)) {
  endpoint_.on_established = [this](const std::string& rec, const std::string& member) {
    spdlog::info("ems: end-to-end session with {}/{} established", rec, member);
    // The gateway learns at once what is stored, and re-seals only the rest.
    Delivery& d = delivery(rec, member);
    if (d.window.highest() > 0) {
      acknowledge(rec, member, d);
    }
    if (on_established) {
      on_established(rec, member);
    }
  };
}

EngineE2e::~EngineE2e() {
  if (poll_timer_ != 0) {
    loop_.cancel_timer(poll_timer_);
  }
}

void EngineE2e::start() {
  schedule_poll();
}

void EngineE2e::stop() {
  if (poll_timer_ != 0) {
    loop_.cancel_timer(poll_timer_);
    poll_timer_ = 0;
  }
  endpoint_.close_all();
}

void EngineE2e::schedule_poll() {
  poll_timer_ = loop_.add_timer(kPollPeriod, [this] {
    poll_timer_ = 0;
    endpoint_.poll();
    for (auto& [key, d] : deliveries_) {
      if (d.unconfirmed) {
        acknowledge(key.first, key.second, d);
      }
    }
    schedule_poll();
  });
}

void EngineE2e::acknowledge(const std::string& rec, const std::string& member, Delivery& d) {
  if (endpoint_.acknowledge(rec, member, d.window)) {
    d.unconfirmed = false;
  }
}

EngineE2e::Delivery& EngineE2e::delivery(const std::string& rec, const std::string& member) {
  const Key key(rec, member);
  if (const auto it = deliveries_.find(key); it != deliveries_.end()) {
    return it->second;
  }
  e2e::SequenceWindow window(window_size_);
  if (const auto stored = store_.delivery(rec, member)) {
    if (auto restored = e2e::SequenceWindow::restore(stored->highest, stored->bitmap)) {
      window = std::move(restored).value();
    } else {
      // Only the engine writes it; an unreadable one starts over (the gateway's re-sent copies
      // of stored messages would then be stored twice, nothing is lost).
      spdlog::error("ems: stored end-to-end delivery state of {}/{} is unreadable: {}", rec, member,
                    restored.error().detail);
    }
  }
  return deliveries_.emplace(key, Delivery{std::move(window), false}).first->second;
}

std::optional<e2e::SequenceWindow> EngineE2e::accepting(const std::string& rec,
                                                        const std::string& member,
                                                        std::uint64_t sequence) {
  const Delivery& d = delivery(rec, member);
  if (d.window.delivered(sequence)) {
    ++duplicates_;
    return std::nullopt;
  }
  e2e::SequenceWindow next = d.window;
  next.accept(sequence);
  return next;
}

void EngineE2e::stored(const std::string& rec, const std::string& member,
                       e2e::SequenceWindow window) {
  Delivery& d = delivery(rec, member);
  d.window = std::move(window);
  d.unconfirmed = true;
}

void EngineE2e::connect(const std::string& rec, const std::string& member) {
  if (!endpoint_.established(rec, member)) {
    endpoint_.connect(rec, member);
  }
}

Result<mqtt::Done> EngineE2e::publish(const std::string& rec, const std::string& member,
                                      std::string_view topic, std::string_view payload) {
  auto sealed = endpoint_.seal(rec, member, topic, payload);
  if (!sealed) {
    return Status{ErrorCode::kUnavailable,
                  fmt::format("end-to-end: {}: {}", e2e::to_string(sealed.error().failure),
                              sealed.error().detail)};
  }
  if (!publish_(std::string(topic), std::move(sealed).value())) {
    // Still ISSUED: the member's next session carries it (or it times out, reported).
    return Status{ErrorCode::kUnavailable, "the MQTT client refused the control"};
  }
  return mqtt::Done{};
}

void EngineE2e::report(std::string_view topic, const e2e::Rejection& rejection) {
  ++reported_;
  if (reported_ <= kLogFirst || reported_ % kLogEvery == 0) {
    spdlog::warn("ems: security event: end-to-end {} on {} ({} so far): {}",
                 e2e::to_string(rejection.failure), topic.substr(0, protocol::kMaxTopicBytes),
                 reported_, rejection.detail);
  }
}

std::optional<EngineE2e::Received> EngineE2e::receive(const protocol::Topic& topic,
                                                      const mqtt::IncomingMessage& message) {
  if (topic.channel == Channel::kMemberKeysResponse) {
    if (auto handled = endpoint_.on_keys_response(topic.rec, topic.member, message.payload);
        !handled) {
      report(message.topic, handled.error());
    }
    return std::nullopt;
  }
  if (topic.channel == Channel::kGatewayStatus) {
    // The flag is the Last Will, so it travels in clear: offline ends the member's session.
    if (message.payload == mqtt::kStatusOffline) {
      endpoint_.peer_offline(topic.rec, topic.member);
    } else if (message.payload == mqtt::kStatusOnline && !message.retain) {
      endpoint_.connect(topic.rec, topic.member);
    }
    return Received{std::string(message.payload), 0};
  }
  if (!is_protected_channel(topic.channel) || (message.payload.empty() && message.retain)) {
    return Received{std::string(message.payload), 0};  // not sealed, or a cleared retained message
  }
  auto opened = endpoint_.open_message(topic.rec, topic.member, message.topic, message.payload);
  if (!opened) {
    if (message.retain && is_quiet_for_retained(opened.error().failure)) {
      ++stale_retained_;
    } else {
      report(message.topic, opened.error());
    }
    return std::nullopt;
  }
  return Received{std::move(opened->payload), opened->sequence};
}

}  // namespace recmesh::ems
