#include "recmesh/mqtt/control_channel.hpp"

#include <algorithm>
#include <functional>

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
  drop_connection();
}

void ControlChannel::drop_connection() {
  if (client_) {
    client_->abort();
  }
  client_.reset();
  loop_.reset();
  subscribed_ = false;
  response_.reset();
}

bool ControlChannel::wait(const std::function<bool()>& done, Steady::time_point deadline) {
  while (!done() && !attempt_failure_ && Steady::now() < deadline) {
    loop_->run_once(until(deadline));
  }
  return done();
}

Status ControlChannel::unreachable() const {
  return {ErrorCode::kUnavailable, fmt::format("broker {}:{} is not reachable: {}", options_.host,
                                               options_.port, attempt_failure_->message)};
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
    callbacks.on_connect_failed = [this](const Status& reason) { attempt_failure_ = reason; };
    // The subscription is made again on the next connection; wait for its SUBACK then.
    callbacks.on_disconnect = [this](const Status&) { subscribed_ = false; };
    client_ = std::make_unique<MqttClient>(*loop_, options_, std::move(callbacks));
    auto subscribed = client_->subscribe(response_topic_, 1);
    if (!subscribed) {
      return subscribed.status();
    }
    client_->start();
  }
  if (!wait([this] { return client_->connected() && subscribed_; }, deadline)) {
    const Status failed =
        attempt_failure_
            ? unreachable()
            : Status{
                  ErrorCode::kUnavailable,
                  fmt::format("no control connection to {}:{}: {}", options_.host, options_.port,
                              client_->last_error().empty() ? "timed out" : client_->last_error())};
    drop_connection();
    return failed;
  }
  return Done{};
}

Result<std::string> ControlChannel::request(std::string_view payload,
                                            std::chrono::milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  // A failed connection attempt ends the request at once: the broker is down or not started
  // yet, and the caller tries again later (its next change or resync) instead of blocking.
  attempt_failure_.reset();
  auto connected = ensure_connected(deadline);
  if (!connected) {
    return connected.status();
  }
  response_.reset();
  auto sent = client_->publish(request_topic_, payload, 1, false);
  if (!sent) {
    drop_connection();
    return sent.status();
  }
  // The connection may turn out lost only now (the broker stopped between two requests).
  if (!wait([this] { return response_.has_value(); }, deadline)) {
    const Status failed =
        attempt_failure_
            ? unreachable()
            : Status{ErrorCode::kUnavailable,
                     fmt::format("no answer on {} within {} ms", response_topic_, timeout.count())};
    // Neither this request, still queued, nor its late answer may reach the next request.
    drop_connection();
    return failed;
  }
  std::string out = std::move(*response_);
  response_.reset();
  return out;
}

}  // namespace recmesh::mqtt
