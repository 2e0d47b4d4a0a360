#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "recmesh/core/result.hpp"

// What MqttClient and BatchedMqttClient decide the same way whatever carries their packets:
// the checks of a publish or a subscription, the subscriptions sent on every connect, the
// report of publishes refused by a full queue, and running the caller's callbacks.
namespace recmesh::mqtt::detail {

struct Subscription {
  std::string filter;
  int qos = 0;
};

// `client_id` and `state` name the client in the refusal; `closed` is stopping or stopped;
// `max_qos` is the highest QoS the client carries.
Result<std::monostate> check_publish(const std::string& client_id, bool closed,
                                     std::string_view state, std::string_view topic,
                                     std::size_t payload_bytes, int qos, int max_qos);
Result<std::monostate> check_subscribe(const std::string& client_id, bool closed,
                                       std::string_view state, std::string_view filter, int qos,
                                       int max_qos);

// Sets the QoS of a remembered filter, or remembers it.
void remember(std::vector<Subscription>& subscriptions, std::string_view filter, int qos);
// False when the filter was not remembered.
bool forget(std::vector<Subscription>& subscriptions, std::string_view filter);

// Publishes refused because max_pending_messages are held: warned about once until the next
// connect, then summed up.
class QueueFullReport {
 public:
  // Counts the refusal in `dropped` and returns the caller's error.
  Status refuse(const std::string& client_id, std::size_t max_pending, std::string_view state,
                std::uint64_t& dropped);
  void after_connect(const std::string& client_id);

 private:
  bool logged_ = false;
  std::uint64_t unreported_ = 0;
};

// Runs the caller's callbacks: what one throws is caught and logged once per callback.
class CallbackRunner {
 public:
  explicit CallbackRunner(const std::string& client_id) : client_id_(&client_id) {}

  template <typename Callback, typename... Args>
  void operator()(const Callback& callback, const char* name, Args&&... args) {
    if (!callback) {
      return;
    }
    try {
      callback(std::forward<Args>(args)...);
    } catch (const std::exception& e) {
      if (logged_.insert(name).second) {
        spdlog::error("mqtt {}: the {} callback threw: {} (logged once)", *client_id_, name,
                      e.what());
      }
    } catch (...) {
      if (logged_.insert(name).second) {
        spdlog::error("mqtt {}: the {} callback threw (logged once)", *client_id_, name);
      }
    }
  }

 private:
  const std::string* client_id_;
  std::set<std::string_view> logged_;  // callback names
};

}  // namespace recmesh::mqtt::detail
