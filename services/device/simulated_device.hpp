#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "recmesh/crypto/jws.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/control_messages.hpp"
#include "recmesh/protocol/log_level.hpp"

#include "device/device_config.hpp"
#include "device/device_model.hpp"

namespace recmesh::device {

// What a device refused or did, for tests and the shutdown summary. Nothing is dropped uncounted.
struct DeviceCounters {
  std::uint64_t metrics_published = 0;
  std::uint64_t commands_completed = 0;
  std::uint64_t commands_failed = 0;  // answered FAILED (unsupported, invalid, expired, ...)
  std::uint64_t refused_oversize = 0;
  std::uint64_t refused_malformed = 0;
  std::uint64_t refused_other_device = 0;
  std::uint64_t refused_duplicate = 0;
  std::uint64_t refused_expired = 0;
  std::uint64_t refused_sequence = 0;
  std::uint64_t refused_signature = 0;  // unsigned, forged or wrongly signed diagnostics
  std::uint64_t diagnostics_published = 0;
  // Refusals of signed or diagnostic commands (forged, unsigned, replayed, expired, out of
  // sequence), each also logged at ERROR as a security event (docs/device-simulator.md).
  std::uint64_t security_events = 0;
  std::uint64_t crashes = 0;
  std::uint64_t reboots = 0;

  std::uint64_t refused() const {
    return refused_oversize + refused_malformed + refused_other_device + refused_duplicate +
           refused_expired + refused_sequence + refused_signature;
  }
};

// Simulated time of day shared by a fleet: `start_hour` at `origin`, moving `time_scale` times
// faster than the loop's clock.
struct SimulationClock {
  mqtt::MonotonicClock::TimePoint origin;
  double start_hour = 12.0;
  double time_scale = 1.0;

  double hour_of_day(mqtt::MonotonicClock::TimePoint now) const;
};

// One simulated device: its model, its own MQTT connection and certificate, its command handling
// (SPEC §4.6) and its signed diagnostics. Lives on one EventLoop; every call on its thread.
class SimulatedDevice {
 public:
  struct Environment {
    mqtt::EventLoop* loop = nullptr;
    const DeviceFleetConfig* config = nullptr;
    const SimulationClock* clock = nullptr;
    const crypto::JwsVerifier* verifier = nullptr;          // null: every diagnostic is refused
    std::function<double(const DeviceSpec&)> member_net_w;  // for meters
  };

  // Throws Error for unreadable certificate or key files.
  SimulatedDevice(Environment env, DeviceSpec spec, std::uint64_t seed,
                  std::optional<std::chrono::milliseconds> crash_after);
  SimulatedDevice(const SimulatedDevice&) = delete;
  SimulatedDevice& operator=(const SimulatedDevice&) = delete;
  ~SimulatedDevice();

  void start();
  // Publishes offline and disconnects; `done` runs once the connection is closed.
  void stop(std::function<void()> done);
  // Drops the connection as a crash of the process would: the broker sends the Last Will.
  void abort();

  // Handles one payload that arrived on `topic`; public so that tests can feed bytes directly.
  void handle_message(std::string_view topic, std::string_view payload);

  const DeviceSpec& spec() const { return spec_; }
  const DeviceModel& model() const { return model_; }
  const DeviceCounters& counters() const { return counters_; }
  bool connected() const { return client_ && client_->connected(); }
  bool healthy() const { return model_.healthy(); }

 private:
  void create_client();
  void on_connect();
  void publish_metrics();
  void schedule_metrics();
  void step_model();
  void publish_status_info(std::string reason);
  void publish_log(protocol::LogLevel level, std::string message, nlohmann::json fields = {});
  void respond(const protocol::DeviceCommand& command, protocol::DeviceCommandStatus status,
               std::int32_t exit_code, nlohmann::json details);
  // Counts and logs a refused command; `security` makes it a security event (ERROR).
  void refuse(std::uint64_t& counter, std::string_view why, std::string_view detail,
              bool security = false);
  void execute(const protocol::DeviceCommand& command, bool signed_by_ems);
  void publish_diagnostic(const protocol::DeviceCommand& command);
  void crash();
  void reboot();
  bool remember_command(const std::string& command_id);
  protocol::Timestamp wall_now() const;

  Environment env_;
  DeviceSpec spec_;
  DeviceModel model_;
  crypto::JwsSigner signer_;
  std::string client_id_;
  std::string status_topic_;
  std::string control_topic_;
  std::string response_topic_;
  std::string metrics_topic_;
  std::string diagnostic_topic_;
  std::optional<std::chrono::milliseconds> crash_after_;

  std::unique_ptr<mqtt::MqttClient> client_;
  mqtt::MonotonicClock::TimePoint last_step_{};
  mqtt::MonotonicClock::TimePoint started_at_{};
  mqtt::EventLoop::TimerId metrics_timer_ = 0;
  mqtt::EventLoop::TimerId crash_timer_ = 0;
  mqtt::EventLoop::TimerId reboot_timer_ = 0;
  bool started_once_ = false;
  bool stopping_ = false;
  std::string next_status_reason_ = "started";
  std::function<void()> on_stopped_;

  std::deque<std::string> recent_order_;  // bounded: oldest IDs leave first
  std::unordered_set<std::string> recent_ids_;
  std::map<std::string, std::uint64_t> last_sequence_;  // per issuer
  DeviceCounters counters_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace recmesh::device
