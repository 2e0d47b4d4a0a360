#include "recmesh/mqtt/client_support.hpp"

#include <algorithm>

#include "recmesh/core/error.hpp"
#include "recmesh/mqtt/wire_codec.hpp"

namespace recmesh::mqtt::detail {
namespace {

using Done = std::monostate;

Result<Done> invalid(std::string message) {
  return Result<Done>::failure(ErrorCode::kInvalidArgument, std::move(message));
}

Result<Done> check_common(const std::string& client_id, bool closed, std::string_view state,
                          int qos, int max_qos) {
  if (closed) {
    return Result<Done>::failure(ErrorCode::kFailedPrecondition,
                                 "mqtt client " + client_id + " is " + std::string(state));
  }
  if (qos < 0 || qos > max_qos) {
    if (qos == 2) {
      return invalid("QoS 2 is not supported by this client (QoS 0 and 1 are)");
    }
    return invalid("QoS must be 0.." + std::to_string(max_qos) + ", got " + std::to_string(qos));
  }
  return Done{};
}

}  // namespace

Result<Done> check_publish(const std::string& client_id, bool closed, std::string_view state,
                           std::string_view topic, std::size_t payload_bytes, int qos,
                           int max_qos) {
  if (Result<Done> common = check_common(client_id, closed, state, qos, max_qos); !common) {
    return common;
  }
  if (!wire::valid_topic_name(topic)) {
    return invalid("not a valid topic name for a publish");
  }
  // The topic, its length and a packet identifier share the remaining length with the payload.
  if (payload_bytes > wire::kMaxRemainingLength - 4 - topic.size()) {
    return invalid("payload of " + std::to_string(payload_bytes) + " bytes exceeds MQTT's limit");
  }
  return Done{};
}

Result<Done> check_subscribe(const std::string& client_id, bool closed, std::string_view state,
                             std::string_view filter, int qos, int max_qos) {
  if (Result<Done> common = check_common(client_id, closed, state, qos, max_qos); !common) {
    return common;
  }
  if (!wire::valid_topic_filter(filter)) {
    return invalid("not a valid topic filter: " + std::string(filter));
  }
  return Done{};
}

void remember(std::vector<Subscription>& subscriptions, std::string_view filter, int qos) {
  const auto it = std::find_if(subscriptions.begin(), subscriptions.end(),
                               [filter](const Subscription& s) { return s.filter == filter; });
  if (it != subscriptions.end()) {
    it->qos = qos;
  } else {
    subscriptions.push_back({std::string(filter), qos});
  }
}

bool forget(std::vector<Subscription>& subscriptions, std::string_view filter) {
  const auto it = std::find_if(subscriptions.begin(), subscriptions.end(),
                               [filter](const Subscription& s) { return s.filter == filter; });
  if (it == subscriptions.end()) {
    return false;
  }
  subscriptions.erase(it);
  return true;
}

Status QueueFullReport::refuse(const std::string& client_id, std::size_t max_pending,
                               std::string_view state, std::uint64_t& dropped) {
  ++dropped;
  ++unreported_;
  if (!logged_) {
    logged_ = true;
    spdlog::warn(
        "mqtt {}: outgoing queue full ({} messages, {}); refusing publishes until it drains",
        client_id, max_pending, state);
  }
  return {ErrorCode::kUnavailable, "outgoing queue of " + client_id + " is full (" +
                                       std::to_string(max_pending) + " messages); publish dropped"};
}

void QueueFullReport::after_connect(const std::string& client_id) {
  if (unreported_ > 0) {
    spdlog::warn("mqtt {}: {} publish(es) were refused while the outgoing queue was full",
                 client_id, unreported_);
    unreported_ = 0;
  }
  logged_ = false;
}

}  // namespace recmesh::mqtt::detail
