#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/control_messages.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

#include "ems/ems_config.hpp"
#include "ems/ems_store.hpp"
#include "ems/engine_e2e.hpp"

namespace recmesh::ems {

// What the engine has seen since start. Every message the e2e layer lets through lands in exactly
// one of the counters from metrics_stored to bad_input.
struct EmsCounters {
  std::uint64_t received = 0;
  std::uint64_t metrics_stored = 0;
  std::uint64_t statuses_stored = 0;
  std::uint64_t diagnostics_stored = 0;
  std::uint64_t responses_applied = 0;
  std::uint64_t ignored = 0;     // well-formed but not ours: unknown control IDs, keys responses
  std::uint64_t duplicates = 0;  // end-to-end messages stored before (re-sealed after a restart)
  std::uint64_t bad_input = 0;   // refused: topic, payload or inconsistent with what we issued
  std::uint64_t controls_issued = 0;
  std::uint64_t controls_final = 0;
  std::uint64_t controls_timed_out = 0;
  std::uint64_t controls_resumed = 0;  // open controls of an earlier run tracked again at start
  std::uint64_t controls_resent = 0;   // unanswered controls sent again in a new e2e session
  std::uint64_t logs_received = 0;     // member log records (opened end to end)
  std::uint64_t requests_taken = 0;    // operator requests (`recmesh ctl`) issued
  std::uint64_t requests_refused = 0;  // ... that could not be issued
  std::uint64_t requests_expired = 0;  // ... found past their take_by
  std::uint64_t reports_verified = 0;  // diagnostic reports that answered a request
  std::uint64_t reports_refused = 0;   // ... that failed verification
};

// The EMS engine (docs/ems.md): on the central broker as ems_engine, it stores what members
// report, runs the community policy and issues and tracks member controls. Everything runs on
// the loop's thread; construct, start() and stop() there (or before the loop runs).
class EmsEngine {
 public:
  // Throws Error for an unusable database or unreadable certificate files.
  EmsEngine(mqtt::EventLoop& loop, EmsConfig config);
  EmsEngine(const EmsEngine&) = delete;
  EmsEngine& operator=(const EmsEngine&) = delete;
  ~EmsEngine();

  void start();
  void stop(std::function<void()> done);

  // Publishes a member control on /<rec>/<member>/control and tracks it to a final state.
  Result<protocol::MemberControl> issue(const std::string& rec, const std::string& member,
                                        protocol::MemberControlType type,
                                        nlohmann::json params = nlohmann::json::object(),
                                        std::vector<std::string> devices = {});
  // One round of the community policy (also run every policy_period).
  void run_policy();
  // Issues every operator request queued in the database (`recmesh ctl`, docs/ems.md,
  // "Operator requests"); also run whenever another process commits to the database.
  void take_requests();

  // Called on the loop thread each time a tracked control moves to a new state (RECEIVED, ...,
  // TIMED_OUT), after it is stored: for tools that follow controls as they happen.
  using ControlObserver =
      std::function<void(const std::string& control_id, const std::string& state)>;
  void observe_controls(ControlObserver observer) { observer_ = std::move(observer); }
  // The tracked state of a control this engine issued: ISSUED, RECEIVED, ..., TIMED_OUT.
  std::optional<std::string> control_state(const std::string& control_id) const;
  const EmsCounters& counters() const { return counters_; }
  bool connected() const { return client_ && client_->connected(); }
  // The end-to-end layer, or null when e2e is disabled.
  const EngineE2e* e2e() const { return e2e_.get(); }
  EmsStore& store() { return store_; }
  const EmsConfig& config() const { return config_; }

 private:
  struct Tracked {
    std::string rec;
    std::string member;
    protocol::MemberControlType type = protocol::MemberControlType::kDiagnostic;
    std::string state;
    mqtt::EventLoop::TimerId timer = 0;
  };
  struct Latest {
    protocol::MemberMetrics metrics;
    mqtt::MonotonicClock::TimePoint received;
  };

  protocol::MemberControl make_control(const std::string& member, protocol::MemberControlType type,
                                       nlohmann::json params, std::vector<std::string> devices,
                                       const protocol::Uuid& control_id);
  Result<protocol::MemberControl> send(const std::string& rec, protocol::MemberControl control);
  void take_request(const RequestRow& row);
  // Signs the diagnostic command for `device` into control.params.signed_commands; returns its
  // command ID.
  std::string sign_diagnostic(const std::string& rec, const std::string& member,
                              const std::string& device, protocol::MemberControl& control) const;
  void match_diagnostic_report(const std::string& rec, const std::string& member,
                               const std::string& device, std::string_view payload);
  void schedule_requests();
  void on_message(const mqtt::IncomingMessage& message);
  // Stores or acts on what a member sent (opened); runs inside on_message's transaction.
  void handle(const protocol::Topic& topic, const mqtt::IncomingMessage& message);
  void resend_unconfirmed_controls(const std::string& rec, const std::string& member);
  void resume_unconfirmed_controls();
  void refuse(std::string_view topic, std::string_view why);
  void handle_response(const std::string& rec, const std::string& member, std::string_view payload);
  void on_timeout(const std::string& control_id);
  void track(const std::string& control_id, Tracked tracked, mqtt::MonotonicClock::Duration left);
  void resume_open_controls();
  void schedule_policy();
  bool has_open_energy_control(const std::string& rec, const std::string& member) const;

  mqtt::EventLoop& loop_;
  EmsConfig config_;
  EmsStore store_;
  std::unique_ptr<mqtt::MqttClient> client_;
  std::unique_ptr<EngineE2e> e2e_;
  std::map<std::string, Tracked> tracked_;  // by control ID
  std::map<std::pair<std::string, std::string>, Latest> latest_;
  mqtt::EventLoop::TimerId policy_timer_ = 0;
  mqtt::EventLoop::TimerId requests_timer_ = 0;
  std::int64_t requests_version_ = -1;  // the database's data_version at the last look
  EmsCounters counters_;
  std::function<void()> on_stopped_;
  ControlObserver observer_;
};

// `recmesh ems`: runs the engine until SIGTERM or SIGINT, then stops it cleanly. Returns 0.
int run_ems(EmsConfig config);

// The current time as a wire timestamp.
protocol::Timestamp now_timestamp();

}  // namespace recmesh::ems
