#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/process_supervisor.hpp"

namespace recmesh::sim {

// One point of the run's time series, taken every second.
struct Sample {
  double t_s = 0;
  double production_w = 0;
  double consumption_w = 0;
  double storage_power_w = 0;  // positive while discharging
  double net_exchange_w = 0;   // positive while exporting
  std::optional<double> soc_percent;
  double up_per_s = 0;    // messages members -> platform on the central broker
  double down_per_s = 0;  // controls and keys platform -> members
  std::size_t members_online = 0;
};

// A fault or attack the timeline injected, and what came of it.
struct InjectedFault {
  double at_s = 0;
  std::string what;
  std::string outcome;
  bool refused = false;  // attacks: the platform refused it
};

struct ProcessRecord {
  std::string name;
  std::vector<int> pids;  // every run
  std::vector<int> ports;
  int restarts = 0;
};

// One step of the start-up (docs/scenarios.md, "What it starts") and how long it took.
struct StartupPhase {
  std::string name;
  double seconds = 0;
};

struct SimReport {
  std::string scenario;
  std::string stop_reason;  // "duration", "signal", "failure: ..."
  double duration_s = 0;
  std::size_t members = 0;
  std::size_t members_online = 0;
  std::size_t devices = 0;
  std::uint64_t devices_online = 0;
  std::uint64_t metrics_published = 0;         // aggregates the gateways published
  std::uint64_t device_metrics_published = 0;  // device snapshots on the local brokers
  std::uint64_t metrics_received_by_ems = 0;   // distinct aggregates the EMS engine stored
  std::uint64_t metrics_duplicates = 0;        // aggregates it stored again (at least once)
  std::uint64_t controls_issued = 0;
  std::uint64_t controls_completed = 0;
  std::uint64_t controls_failed = 0;
  std::uint64_t controls_in_flight = 0;
  std::uint64_t security_events = 0;
  std::int64_t lost_qos1 = 0;  // per member: published - received, at least 0; summed
  std::uint64_t messages_up = 0;
  std::uint64_t messages_down = 0;
  std::vector<InjectedFault> faults;
  std::vector<ProcessExit> crashes;  // exits nobody asked for
  std::vector<ProcessRecord> processes;
  std::vector<Sample> samples;
  double startup_s = 0;  // from the simulator's start until every process was up
  std::vector<StartupPhase> startup_phases;
};

nlohmann::json report_json(const SimReport& report);
// A self-contained page (inline SVG, no external assets) with the plots of the run.
std::string report_html(const SimReport& report);

}  // namespace recmesh::sim
