#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/protocol/device_commands.hpp"

namespace recmesh::sim {

// How many devices of each kind a member has (docs/scenarios.md, "members").
struct DeviceCounts {
  int pv = 0;                 // generators
  int battery = 0;            // accumulators
  int controllable_load = 0;  // loads the EMS may switch (EV charger, heat pump)
  int passive_load = 0;       // consumption that accepts no command
  int smart_meter = 0;        // the member's DSO interface (at most one)

  int total() const { return pv + battery + controllable_load + passive_load + smart_meter; }
};

// One simulated device as the simulator names it: pv1, battery1, load1, passive1, meter.
struct SimDevice {
  std::string id;
  protocol::DeviceKind kind = protocol::DeviceKind::kGenerator;
};

struct MemberSpec {
  std::string rec;
  std::string id;
  DeviceCounts devices;

  std::vector<SimDevice> device_list() const;
  std::string label() const { return rec + "/" + id; }
};

struct RecSpec {
  std::string id;
  std::vector<MemberSpec> members;
};

// Every kind of process the simulator starts. `bridge` is the member's `recmesh bridge`, its
// link to the central broker.
enum class ComponentKind { kCentralBroker, kEms, kLocalBroker, kBridge, kGateway, kDevices };
std::string_view to_string(ComponentKind kind);
bool is_member_component(ComponentKind kind);

enum class FaultAction {
  kKill,             // SIGKILL; the supervisor restarts it per the restart policy
  kStop,             // SIGTERM and keep it down until a `restart`
  kRestart,          // SIGTERM, then start again at once
  kCutBackbone,      // the member's backbone proxy drops every connection and refuses new ones
  kRestoreBackbone,  // accepts again
  kSlowBackbone,     // adds delay_ms to every chunk in both directions (0 restores full speed)
  kCrashDevices,     // SIGKILL of the member's device process
  kCrashDevice,      // one device crashes: UNHEALTHY, no production until a reboot command
  kAttack,
};
std::string_view to_string(FaultAction action);

enum class AttackKind {
  kPublishFlood,   // a legitimate extra device identity publishes as fast as `rate_per_s`
  kForeignCa,      // a client certificate of another PKI with a fresh name
  kCollidingCn,    // a foreign PKI's certificate carrying the target's own common names
  kReplayControl,  // the last control captured on the central broker, published again
  kRetainedSpam,   // `count` retained messages on distinct topics
};
std::string_view to_string(AttackKind kind);

struct TimelineEvent {
  double at_s = 0;  // seconds after every component is up
  FaultAction action = FaultAction::kKill;
  std::optional<ComponentKind> component;  // kill, stop, restart
  std::string rec;                         // member events (rec defaults to the only REC)
  std::string member;
  std::string device;  // crash-device
  std::optional<AttackKind> attack;
  int delay_ms = 0;       // slow-backbone: 0 .. 60000
  int rate_per_s = 200;   // publish-flood: 1 .. 100000
  double duration_s = 5;  // publish-flood: 0.1 .. 3600
  int count = 100;        // retained-spam: 1 .. 1000000
  int line = 0;           // where it is written in the scenario file

  std::string member_label() const { return member.empty() ? "" : rec + "/" + member; }
  std::string describe() const;
};

enum class RestartPolicy { kNever, kOnFailure, kAlways };

struct Scenario {
  std::string name = "scenario";
  std::uint64_t seed = 1;
  double duration_s = 0;  // 0: until SIGINT or SIGTERM
  // Rates (thesis §4.3.2: devices every 5 s, gateways every 30 s).
  int metrics_interval_ms = 5000;     // device metrics: 50 .. 3600000
  int aggregate_interval_ms = 30000;  // gateway aggregates: 100 .. 3600000
  int device_timeout_ms = 10000;      // gateway's wait per device command: 100 .. 3600000
  // Device physics (docs/device-simulator.md).
  double start_hour = 12;
  double time_scale = 1;
  double cloudiness = 0.2;
  double crash_fraction = 0;  // devices that crash by themselves during the run
  // EMS policy (docs/ems.md).
  int policy_period_ms = 10000;
  int control_timeout_ms = 30000;
  double surplus_threshold_w = 500;
  double deficit_threshold_w = 500;
  double max_soc_percent = 95;
  double min_soc_percent = 20;
  // Supervision of every process.
  RestartPolicy restart = RestartPolicy::kOnFailure;
  int max_restarts = 5;            // per component: 0 .. 1000
  int restart_delay_ms = 1000;     // 0 .. 600000
  int startup_timeout_ms = 30000;  // a listener that does not open by then fails the run
  std::vector<RecSpec> recs;
  std::vector<TimelineEvent> timeline;  // sorted by at_s

  std::size_t member_count() const;
  std::size_t device_count() const;
  const MemberSpec* find_member(std::string_view rec, std::string_view member) const;
  std::vector<const MemberSpec*> members() const;
};

// Parses a scenario; unknown keys, wrong types, out-of-range values and inconsistent events
// throw Error(kInvalidArgument) as "<source>:<line>: <key>: <problem>".
Scenario parse_scenario(std::string_view yaml, std::string_view source);
Scenario load_scenario(const std::filesystem::path& file);

// `recmesh demo`: one REC, `members` members with five devices each (pv, battery,
// controllable load, passive load, smart meter) and a quick EMS policy.
Scenario demo_scenario(int members = 10);

}  // namespace recmesh::sim
