// `recmesh sim`: a whole community from a scenario file (docs/scenarios.md).
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "command.hpp"
#include "sim/kubernetes_manifests.hpp"
#include "sim/scenario.hpp"
#include "sim/simulator.hpp"

namespace recmesh::cli {

// The flags `sim run` and `demo` share.
struct SimFlags {
  std::string dir = "sim-run";
  std::optional<double> duration_s;
  std::string report;
  bool no_view = false;
};

void add_sim_run_flags(CLI::App& cmd, SimFlags& flags) {
  cmd.add_option("--dir", flags.dir,
                 "Where the PKI, configurations, logs and state.json go "
                 "(recreated; refused if it holds anything else)")
      ->capture_default_str();
  cmd.add_option("--duration", flags.duration_s,
                 "Seconds to run once everything is up (0: until Ctrl-C or SIGTERM)")
      ->check(CLI::Range(0.0, 31536000.0));
  cmd.add_option("--report", flags.report,
                 "JSON report file (default DIR/report.json); the HTML page goes beside it");
  cmd.add_flag("--no-view", flags.no_view,
               "Periodic log lines instead of the live view, even on a terminal");
}

int run_sim(const sim::Scenario& scenario, const SimFlags& flags) {
  sim::SimOptions options;
  options.dir = flags.dir;
  options.duration_s = flags.duration_s;
  options.report = flags.report;
  if (flags.no_view) {
    options.live_view = false;
  }
  return sim::run_simulation(scenario, options);
}

void add_sim_command(CLI::App& app, Runner& run) {
  auto* sim = app.add_subcommand("sim", "Simulate a community from a scenario (docs/scenarios.md)");
  sim->require_subcommand(1);

  auto* run_cmd = sim->add_subcommand(
      "run", "Start the scenario's community as real processes, inject its timeline, report");
  auto scenario_file = std::make_shared<std::string>();
  auto flags = std::make_shared<SimFlags>();
  auto check_only = std::make_shared<bool>(false);
  run_cmd->add_option("SCENARIO", *scenario_file, "Scenario YAML file")->required();
  add_sim_run_flags(*run_cmd, *flags);
  run_cmd->add_flag("--check", *check_only, "Validate the scenario and exit");
  run_cmd->callback([&run, scenario_file, flags, check_only] {
    run = [scenario_file, flags, check_only] {
      const sim::Scenario scenario = sim::load_scenario(*scenario_file);
      if (*check_only) {
        std::cout << scenario.name << ": " << scenario.member_count() << " members, "
                  << scenario.device_count() << " devices, " << scenario.timeline.size()
                  << " timeline events\n";
        return kExitOk;
      }
      return run_sim(scenario, *flags);
    };
  });

  auto* k8s = sim->add_subcommand(
      "render-k8s", "Write Kubernetes manifests for the scenario (docs/kubernetes.md)");
  auto k8s_file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto image = std::make_shared<std::string>("recmesh:latest");
  k8s->add_option("SCENARIO", *k8s_file, "Scenario YAML file")->required();
  k8s->add_option("--out", *out, "Output directory (created)")->required();
  auto guard_plugin = std::make_shared<std::string>(sim::kImageGuardPlugin);
  k8s->add_option("--image", *image, "Container image holding recmesh and mosquitto")
      ->capture_default_str();
  k8s->add_option("--guard-plugin", *guard_plugin,
                  "Absolute path of recmesh_guard.so inside the image")
      ->capture_default_str();
  k8s->callback([&run, k8s_file, out, image, guard_plugin] {
    run = [k8s_file, out, image, guard_plugin] {
      const auto files =
          sim::render_kubernetes(sim::load_scenario(*k8s_file), *out, *image, *guard_plugin);
      std::cout << files.size() << " manifests written to " << *out << '\n';
      return kExitOk;
    };
  });
}

}  // namespace recmesh::cli
