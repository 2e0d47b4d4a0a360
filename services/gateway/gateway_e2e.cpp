#include "gateway/gateway_e2e.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/e2e/trust_store.hpp"

namespace recmesh::gateway {
namespace {

constexpr std::chrono::seconds kPollPeriod{1};
constexpr std::uint64_t kLogFirst = 20;
constexpr std::uint64_t kLogEvery = 1000;
// At most one security event a second goes to the platform; the counters hold every refusal.
constexpr std::chrono::seconds kEventInterval{1};

// Refusals that a restart of either side produces in normal operation.
bool is_routine(e2e::Failure f) {
  return f == e2e::Failure::kNoSession || f == e2e::Failure::kUnknownSession;
}

}  // namespace

GatewayE2e::GatewayE2e(mqtt::EventLoop& loop, const GatewayConfig& config, RawPublish publish,
                       SecurityEvent on_security_event)
    : loop_(loop),
      endpoint_(
          e2e::Credentials::from_files(config.certfile, config.keyfile), config.rec, config.member,
          [trust = std::make_shared<e2e::PkiTrustStore>(config.pki_dir)] {
            return trust->get("ems", "ems_engine");
          },
          config.e2e, std::move(publish)),
      on_security_event_(std::move(on_security_event)) {
  endpoint_.on_established = [this] {
    spdlog::info("gateway: end-to-end session with the EMS engine established");
    if (on_established) {
      on_established();
    }
  };
  endpoint_.on_acknowledged = [this](const e2e::Acknowledgement& ack) {
    if (on_acknowledged) {
      on_acknowledged(ack);
    }
  };
}

GatewayE2e::~GatewayE2e() {
  if (poll_timer_ != 0) {
    loop_.cancel_timer(poll_timer_);
  }
}

void GatewayE2e::start() {
  endpoint_.start();
  if (poll_timer_ == 0) {
    schedule_poll();
  }
}

void GatewayE2e::stop() {
  if (poll_timer_ != 0) {
    loop_.cancel_timer(poll_timer_);
    poll_timer_ = 0;
  }
  endpoint_.close();
}

void GatewayE2e::schedule_poll() {
  poll_timer_ = loop_.add_timer(kPollPeriod, [this] {
    poll_timer_ = 0;
    endpoint_.poll();
    schedule_poll();
  });
}

std::optional<std::string> GatewayE2e::seal(std::string_view topic, std::string_view payload,
                                            std::uint64_t id) {
  auto sealed = endpoint_.seal(topic, payload, id);
  if (!sealed) {
    if (sealed.error().failure != e2e::Failure::kNoSession) {
      spdlog::warn("gateway: cannot seal outbox message {} on {}: end-to-end {}: {}", id, topic,
                   e2e::to_string(sealed.error().failure), sealed.error().detail);
    }
    return std::nullopt;
  }
  return std::move(sealed).value();
}

void GatewayE2e::report(std::string_view topic, const e2e::Rejection& rejection) {
  ++reported_;
  if (reported_ <= kLogFirst || reported_ % kLogEvery == 0) {
    spdlog::warn("gateway: security event: end-to-end {} on {} ({} so far): {}",
                 e2e::to_string(rejection.failure), topic.substr(0, 200), reported_,
                 rejection.detail);
  }
  const auto now = std::chrono::steady_clock::now();
  if (!is_routine(rejection.failure) && on_security_event_ && now - last_event_ >= kEventInterval) {
    last_event_ = now;
    on_security_event_(fmt::format("e2e-{}", e2e::to_string(rejection.failure)),
                       fmt::format("{} on {}", rejection.detail, topic.substr(0, 200)));
  }
}

std::optional<std::string> GatewayE2e::receive(const protocol::Topic& parsed,
                                               std::string_view topic, std::string_view payload) {
  if (parsed.channel == protocol::Channel::kMemberKeys) {
    if (auto handled = endpoint_.on_keys(payload); !handled) {
      report(topic, handled.error());
    }
    return std::nullopt;
  }
  if (parsed.channel != protocol::Channel::kMemberControl) {
    return std::string(payload);  // local traffic: devices, the bridge's status
  }
  auto opened = endpoint_.open(topic, payload);
  if (!opened) {
    report(topic, opened.error());
    return std::nullopt;
  }
  return std::move(opened).value();
}

}  // namespace recmesh::gateway
