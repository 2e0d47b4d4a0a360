#pragma once

#include <filesystem>
#include <optional>
#include <ostream>

#include "sim/scenario.hpp"

namespace recmesh::sim {

struct SimOptions {
  std::filesystem::path dir;         // the run's files; recreated (default ./sim-run)
  std::optional<double> duration_s;  // overrides the scenario's (0: until a signal)
  std::filesystem::path report;      // JSON report; the HTML page goes beside it (.html)
  std::filesystem::path recmesh;     // default: this executable
  std::optional<bool> live_view;     // default: when stdout is a terminal
  std::chrono::milliseconds stop_grace{10000};
};

// `recmesh sim run` and `recmesh demo`: builds the PKI and every configuration under
// options.dir, starts the community as real processes on 127.0.0.1, runs the timeline, shows
// the live view, and on the end of the duration, SIGINT, SIGTERM, SIGHUP or a child that fails
// for good, stops everything it started and writes the report. Files written in options.dir:
// state.json (every PID and port, kept current), logs/, report.json (unless --report).
// Returns 0 after a duration or a signal, 3 when a component failed for good.
int run_simulation(const Scenario& scenario, const SimOptions& options);

}  // namespace recmesh::sim
