#include "recmesh/policy/guard_publisher.hpp"

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh::policy {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kStep{20};

std::chrono::milliseconds left(Clock::time_point deadline) {
  const auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(std::chrono::milliseconds(1), std::min(rest, kStep));
}

}  // namespace

GuardPublisher::GuardPublisher(BundleSigner signer, mqtt::MqttClientOptions client)
    : signer_(std::move(signer)), options_(std::move(client)) {
  options_.clean_session = true;
  options_.status_topic.clear();
  options_.reconnect.initial = std::chrono::milliseconds(200);
  options_.reconnect.max = std::chrono::milliseconds(2000);
}

GuardPublisher::~GuardPublisher() {
  if (client_) {
    client_->abort();
  }
}

Result<mqtt::Done> GuardPublisher::ensure_connected(Clock::time_point deadline) {
  if (!client_) {
    loop_ = std::make_unique<mqtt::EventLoop>();
    mqtt::MqttClientCallbacks callbacks;
    callbacks.on_message = [this](const mqtt::IncomingMessage& message) {
      if (message.topic == kGuardResponseTopic) {
        response_ = std::string(message.payload);
      }
    };
    callbacks.on_subscribe = [this](const std::string& filter, int granted) {
      subscribed_ = subscribed_ || (filter == kGuardResponseTopic && granted != 128);
    };
    client_ = std::make_unique<mqtt::MqttClient>(*loop_, options_, std::move(callbacks));
    auto subscribed = client_->subscribe(kGuardResponseTopic, 1);
    if (!subscribed) {
      return subscribed.status();
    }
    client_->start();
  }
  while (!(client_->connected() && subscribed_) && Clock::now() < deadline) {
    loop_->run_once(left(deadline));
  }
  if (!client_->connected() || !subscribed_) {
    return Status{ErrorCode::kUnavailable,
                  fmt::format("no connection to the broker's guard at {}:{}: {}", options_.host,
                              options_.port,
                              client_->last_error().empty() ? "timed out" : client_->last_error())};
  }
  return mqtt::Done{};
}

Result<GuardResponse> GuardPublisher::push(const PolicyBundle& bundle,
                                           std::chrono::milliseconds timeout) {
  return push_signed(signer_.sign(bundle), timeout);
}

Result<GuardResponse> GuardPublisher::push_signed(std::string_view signed_bundle,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto connected = ensure_connected(deadline);
  if (!connected) {
    return connected.status();
  }
  response_.reset();
  auto sent = client_->publish(kGuardControlTopic, signed_bundle, 1, false);
  if (!sent) {
    return sent.status();
  }
  while (!response_ && Clock::now() < deadline) {
    loop_->run_once(left(deadline));
  }
  if (!response_) {
    return Status{ErrorCode::kUnavailable, "the broker's guard did not answer in time"};
  }
  auto parsed = parse_guard_response(*response_);
  response_.reset();
  return parsed;
}

}  // namespace recmesh::policy
