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

EngineE2e::EngineE2e(mqtt::EventLoop& loop, const EmsConfig& config, RawPublish publish)
    : loop_(loop),
      endpoint_(
          e2e::Credentials::from_files(config.certfile, config.keyfile),
          // Read once per member and again only when a file of its chain changes (a new CRL).
          [trust = std::make_shared<e2e::PkiTrustStore>(config.pki_dir)](
              const std::string& rec, const std::string& member) {
            return trust->get(fmt::format("member_{}_{}", rec, member),
                              fmt::format("rec_{}_{}_gateway", rec, member));
          },
          config.e2e,
          [publish = std::move(publish)](const std::string& topic, std::string payload, bool) {
            return publish(topic, std::move(payload));
          }) {
  endpoint_.on_established = [](const std::string& rec, const std::string& member) {
    spdlog::info("ems: end-to-end session with {}/{} established", rec, member);
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
    schedule_poll();
  });
}

Result<mqtt::Done> EngineE2e::publish(const std::string& rec, const std::string& member,
                                      std::string_view topic, std::string_view payload) {
  auto sealed = endpoint_.publish(rec, member, topic, payload);
  if (!sealed) {
    return Status{ErrorCode::kUnavailable,
                  fmt::format("end-to-end: {}: {}", e2e::to_string(sealed.error().failure),
                              sealed.error().detail)};
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

std::optional<std::string> EngineE2e::receive(const protocol::Topic& topic,
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
    return std::string(message.payload);
  }
  if (!is_protected_channel(topic.channel) || (message.payload.empty() && message.retain)) {
    return std::string(message.payload);  // not sealed, or a cleared retained message
  }
  auto opened = endpoint_.open(topic.rec, topic.member, message.topic, message.payload);
  if (!opened) {
    if (message.retain && is_quiet_for_retained(opened.error().failure)) {
      ++stale_retained_;
    } else {
      report(message.topic, opened.error());
    }
    return std::nullopt;
  }
  return std::move(opened).value();
}

}  // namespace recmesh::ems
