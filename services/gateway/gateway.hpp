#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/control_messages.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

#include "gateway/command_log.hpp"
#include "gateway/gateway_config.hpp"
#include "gateway/gateway_e2e.hpp"
#include "gateway/outbox.hpp"

namespace recmesh::gateway {

// What the gateway refused or did. Nothing is dropped without being counted here.
struct GatewayCounters {
  std::uint64_t metrics_received = 0;
  std::uint64_t aggregates_published = 0;
  std::uint64_t controls_accepted = 0;
  std::uint64_t controls_duplicate = 0;  // answered with the recorded state, not executed
  std::uint64_t device_commands_sent = 0;
  std::uint64_t device_retries = 0;
  std::uint64_t device_timeouts = 0;
  std::uint64_t logs_stored = 0;
  std::uint64_t logs_forwarded = 0;
  std::uint64_t refused_oversize = 0;
  std::uint64_t refused_malformed = 0;        // invalid JSON, wrong types, wrong topic content
  std::uint64_t refused_other_member = 0;     // a control for another member
  std::uint64_t refused_unknown_device = 0;   // a topic or message naming a device not configured
  std::uint64_t refused_unknown_command = 0;  // a response for a command ID not pending
  std::uint64_t refused_expired = 0;
  std::uint64_t refused_sequence = 0;
  std::uint64_t refused_unsupported = 0;  // a well-formed message the gateway does not handle
  std::uint64_t island_periods = 0;
  std::uint64_t island_commands = 0;
  std::uint64_t security_events_forwarded = 0;  // device ERROR logs that carry a security event
  std::uint64_t outbox_delivered = 0;  // platform messages confirmed: the engine's ack (e2e on)
                                       // or the local broker's PUBACK (e2e off)
  std::uint64_t outbox_dropped = 0;    // oldest platform messages dropped: outbox full
  std::uint64_t refused() const {
    return refused_oversize + refused_malformed + refused_other_member + refused_unknown_device +
           refused_unknown_command + refused_expired + refused_sequence + refused_unsupported;
  }
};

// The smart gateway of one member (docs/gateway.md): aggregates device metrics, runs the remote
// control protocol against the devices with a durable command log, and stores and forwards
// device logs. Lives on one EventLoop; every call on its thread (or before it runs).
class Gateway {
 public:
  // Throws Error for unreadable certificate files or an unusable database.
  Gateway(mqtt::EventLoop& loop, GatewayConfig config);
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;
  ~Gateway();

  // Connects, and settles the work a previous run left open (docs/gateway.md, "Restart").
  void start();
  // Publishes offline and disconnects; `done` runs once the connection is closed.
  void stop(std::function<void()> done);
  // Drops the connection as a crash would.
  void abort();

  // Handles one payload that arrived on `topic`; public so that tests can feed bytes directly.
  void handle_message(std::string_view topic, std::string_view payload);

  const GatewayConfig& config() const { return config_; }
  const GatewayCounters& counters() const { return counters_; }
  bool connected() const { return client_ && client_->connected(); }
  const std::optional<protocol::MemberMetrics>& last_aggregate() const { return last_aggregate_; }
  CommandLog& command_log() { return log_; }
  const Outbox& outbox() const { return outbox_; }
  bool in_island_mode() const { return island_; }
  // The end-to-end layer, or null when e2e is disabled.
  const GatewayE2e* e2e() const { return e2e_.get(); }
  // Publishes the aggregate of the window so far now, and starts the next window.
  void publish_aggregate();

 private:
  struct DeviceView {
    const GatewayDevice* device = nullptr;
    bool online = false;
    std::optional<protocol::DeviceMetrics> last;
    std::optional<protocol::DeviceMetrics> window_first;  // counters at the window's start
    double power_sum_w = 0;
    std::uint32_t samples = 0;
  };
  struct DeviceWork {
    std::string device_id;
    protocol::DeviceCommandType type = protocol::DeviceCommandType::kPowerOn;
    nlohmann::json params = nlohmann::json::object();
    std::optional<std::string> signed_payload;  // forwarded untouched, never retried
    std::string command_id;                     // current attempt
    std::uint32_t attempt = 0;
    mqtt::EventLoop::TimerId timer = 0;
    bool done = false;
    protocol::DeviceResult result;
  };
  struct ActiveControl {
    protocol::MemberControl control;
    std::vector<DeviceWork> work;
  };

  void on_connect();
  void publish_status_info(protocol::StatusFlag flag, std::string reason);
  void schedule_aggregate();
  void schedule_log_batch();
  void flush_log_batch();

  void on_metrics(const std::string& device, std::string_view payload);
  void on_status(const std::string& device, std::string_view payload);
  void on_log(const std::string& device, protocol::LogLevel level, std::string_view payload);
  void on_control(std::string_view payload);
  void on_signed_control(std::string_view payload);
  void on_device_response(const std::string& device, std::string_view payload);

  bool admit(const std::string& control_id, const std::string& issued_by, std::uint64_t sequence,
             protocol::Timestamp expire_at, const protocol::MemberControl& control,
             std::string_view payload);
  void execute(ActiveControl active, bool resumed);
  std::vector<DeviceWork> translate(const protocol::MemberControl& control,
                                    std::vector<protocol::DeviceResult>& refused);
  void send_attempt(const std::string& control_id, std::size_t index);
  void on_device_outcome(const std::string& control_id, std::size_t index,
                         protocol::DeviceOutcome outcome, std::int32_t exit_code,
                         nlohmann::json details, bool retryable);
  void finish_if_done(const std::string& control_id);
  void respond(const protocol::MemberControl& control, protocol::MemberControlStatus status,
               std::optional<std::string> general, std::vector<protocol::DeviceResult> per_device);
  void refuse_control(const protocol::MemberControl& control, std::string reason);
  void resume_unfinished();

  void on_bridge_status(std::string_view payload);
  void arm_island_timer();
  void enter_island();
  void leave_island();
  void apply_island_policy(const protocol::MemberMetrics& m);

  void refuse(std::uint64_t& counter, std::string_view why, std::string_view detail);
  // An end-to-end refusal, as an ERROR log record for the platform's log management.
  void forward_security_event(std::string_view kind, std::string_view detail);
  // Local traffic (device commands) straight to the client; the gateway's status info for the
  // platform sealed (held until the session is up).
  void publish(std::string_view topic, std::string_view payload, bool retain = false);
  // Traffic for the platform: through the durable outbox, in order.
  void publish_platform(std::string_view topic, std::string_view payload, bool retain = false);
  void pump_outbox();
  void on_delivered(mqtt::MessageId id);
  protocol::Timestamp wall_now() const;

  mqtt::EventLoop& loop_;
  GatewayConfig config_;
  CommandLog log_;
  Outbox outbox_;
  std::map<mqtt::MessageId, std::int64_t> outbox_in_flight_;  // client message -> outbox row
  std::int64_t outbox_handed_ = 0;  // the last outbox row handed to the client
  bool outbox_drop_logged_ = false;
  std::string gateway_id_;
  std::unique_ptr<mqtt::MqttClient> client_;
  std::unique_ptr<GatewayE2e> e2e_;
  std::map<std::string, DeviceView, std::less<>> devices_;
  protocol::Timestamp window_start_;
  std::optional<protocol::MemberMetrics> last_aggregate_;
  mqtt::EventLoop::TimerId aggregate_timer_ = 0;
  mqtt::EventLoop::TimerId log_timer_ = 0;
  std::vector<std::pair<std::int64_t, std::string>> info_batch_;  // row id, LogRecord payload
  std::map<std::string, ActiveControl> active_;                   // by control_id
  std::map<std::string, std::pair<std::string, std::size_t>> pending_commands_;  // command_id
  // Island mode.
  bool island_ = false;
  mqtt::EventLoop::TimerId island_timer_ = 0;
  protocol::Timestamp island_since_;
  std::map<std::string, protocol::DeviceCommandType> island_modes_;  // last mode sent per device
  std::map<std::string, std::size_t> island_commands_;  // command_id -> index in island_actions_
  std::vector<nlohmann::json> island_actions_;
  std::function<void()> on_stopped_;
  bool stopping_ = false;
  // Rate-limited refusal logs: at most one line per second, the rest counted.
  std::chrono::steady_clock::time_point last_refusal_log_{};
  std::uint64_t refusals_unlogged_ = 0;
  GatewayCounters counters_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// `recmesh gateway`: runs the gateway until SIGTERM or SIGINT, then stops it cleanly.
int run_gateway(GatewayConfig config);

}  // namespace recmesh::gateway
