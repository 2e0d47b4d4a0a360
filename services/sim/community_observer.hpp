#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

namespace recmesh::sim {

// What the EMS engine's database says about the community (read-only, as `recmesh ctl` does).
struct EmsView {
  std::size_t members_with_metrics = 0;     // members with at least one aggregate
  std::size_t gateways_online = 0;          // smart-gateway status flag "online"
  std::vector<std::string> online_members;  // "rec/member": gateway online and an aggregate
  std::uint64_t metrics_received = 0;       // distinct aggregates stored (repeats not counted)
  std::uint64_t metrics_duplicates = 0;     // aggregates stored more than once (at least once)
  std::map<std::string, std::uint64_t> metrics_by_member;  // "rec/member": distinct aggregates
  std::uint64_t controls_issued = 0;
  std::uint64_t controls_completed = 0;  // SUCCESS
  std::uint64_t controls_failed = 0;     // FAILED, PARTIAL, TIMED_OUT
  std::uint64_t controls_in_flight = 0;  // ISSUED, RECEIVED, EXECUTING
  std::uint64_t devices_online = 0;      // from each member's last aggregate
};

// Reads EmsView from the engine's SQLite file; an absent or busy database gives what it can.
EmsView read_ems_view(const std::filesystem::path& database);

// The community sums of the members' last aggregates (W; SoC mean over members with storage).
struct CommunityPower {
  double production_w = 0;
  double consumption_w = 0;
  double storage_power_w = 0;
  double net_exchange_w = 0;
  std::optional<double> soc_percent;
};

// The simulator's eyes on the central broker: an MQTT client with its own EMS-CA identity
// (ems_sim) that counts traffic up (members to platform) and down (controls and keys), keeps
// every member's last aggregate, captures the last control per member (for a replay attack) and
// counts security events.
class CommunityObserver {
 public:
  CommunityObserver(mqtt::EventLoop& loop, mqtt::MqttClientOptions options);
  ~CommunityObserver();

  void start();
  void stop(const std::function<void()>& done);
  bool connected() const;

  std::uint64_t messages_up() const { return up_; }
  std::uint64_t messages_down() const { return down_; }
  std::uint64_t aggregates() const { return aggregates_; }
  std::uint64_t security_events() const { return security_events_; }
  CommunityPower power() const;
  // The last control seen for `member` ("rec/member"), or for anyone when empty.
  std::optional<std::pair<std::string, std::string>> last_control(const std::string& member) const;
  mqtt::MqttClient& client() { return *client_; }
  // How often a gateway answered EXECUTING for `control_id` (a replay run again shows here).
  std::uint64_t executions(const std::string& control_id) const;
  // The "control_id" of a member control's JSON, or "" for anything else (a signed one).
  static std::string control_id_of(std::string_view payload);

 private:
  void on_message(const mqtt::IncomingMessage& message);

  std::unique_ptr<mqtt::MqttClient> client_;
  std::uint64_t up_ = 0;
  std::uint64_t down_ = 0;
  std::uint64_t aggregates_ = 0;
  std::uint64_t security_events_ = 0;
  std::map<std::string, protocol::MemberMetrics> latest_;
  std::map<std::string, std::pair<std::string, std::string>> controls_;  // member -> topic, payload
  std::string last_control_member_;
  std::map<std::string, std::uint64_t> executions_;  // control_id -> EXECUTING answers
};

}  // namespace recmesh::sim
