#include "recmesh/mqtt/control_channel.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace recmesh::mqtt {
namespace {

using Steady = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kStep{20};
constexpr int kRefusedQos = 128;

std::chrono::milliseconds until(Steady::time_point deadline) {
  const auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
  return std::max(std::chrono::milliseconds(1), std::min(rest, kStep));
}

}  // namespace

ControlChannel::ControlChannel(MqttClientOptions options, std::string request_topic,
                               std::string response_topic)
    : options_(std::move(options)),
      request_topic_(std::move(request_topic)),
      response_topic_(std::move(response_topic)) {
  options_.clean_session = true;
  options_.status_topic.clear();
  options_.reconnect.initial = std::chrono::milliseconds(200);
  options_.reconnect.max = std::chrono::milliseconds(2000);
}

ControlChannel::~ControlChannel() {
  if (client_) {
    client_->abort();
  }
}

Result<Done> ControlChannel::ensure_connected(Steady::time_point deadline) {
  if (!client_) {
    loop_ = std::make_unique<EventLoop>();
    MqttClientCallbacks callbacks;
    callbacks.on_message = [this](const IncomingMessage& message) {
      if (message.topic == response_topic_) {
        response_ = std::string(message.payload);
      }
    };
    callbacks.on_subscribe = [this](const std::string& filter, int granted) {
      subscribed_ = subscribed_ || (filter == response_topic_ && granted != kRefusedQos);
    };
    client_ = std::make_unique<MqttClient>(*loop_, options_, std::move(callbacks));
    auto subscribed = client_->subscribe(response_topic_, 1);
    if (!subscribed) {
      return subscribed.status();
    }
    client_->start();
  }
  while (!(client_->connected() && subscribed_) && Steady::now() < deadline) {
    loop_->run_once(until(deadline));
  }
  if (!client_->connected() || !subscribed_) {
    return Status{ErrorCode::kUnavailable,
                  fmt::format("no control connection to {}:{}: {}", options_.host, options_.port,
                              client_->last_error().empty() ? "timed out" : client_->last_error())};
  }
  return Done{};
}

Result<std::string> ControlChannel::request(std::string_view payload,
                                            std::chrono::milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  auto connected = ensure_connected(deadline);
  if (!connected) {
    return connected.status();
  }
  response_.reset();
  auto sent = client_->publish(request_topic_, payload, 1, false);
  if (!sent) {
    return sent.status();
  }
  while (!response_ && Steady::now() < deadline) {
    loop_->run_once(until(deadline));
  }
  if (!response_) {
    return Status{ErrorCode::kUnavailable,
                  fmt::format("no answer on {} within {} ms", response_topic_, timeout.count())};
  }
  std::string out = std::move(*response_);
  response_.reset();
  return out;
}

}  // namespace recmesh::mqtt
