// `recmesh demo`: the built-in community, the README's first command.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "command.hpp"
#include "sim/scenario.hpp"
#include "sim/simulator.hpp"

namespace recmesh::cli {

void add_demo_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Run a whole energy community on this machine: 1 REC, 10 members with 5 devices each, "
      "their brokers, bridges and gateways, and the EMS engine, until Ctrl-C or --duration");
  auto dir = std::make_shared<std::string>("demo");
  auto duration = std::make_shared<std::optional<double>>();
  auto report = std::make_shared<std::string>();
  auto members = std::make_shared<int>(10);
  auto no_view = std::make_shared<bool>(false);
  cmd->add_option("--dir", *dir, "Where its files go (recreated)")->capture_default_str();
  cmd->add_option("--duration", *duration, "Seconds to run once up (default: until Ctrl-C)")
      ->check(CLI::Range(0.0, 31536000.0));
  cmd->add_option("--report", *report, "JSON report file (default DIR/report.json)");
  cmd->add_option("--members", *members, "Members in the REC")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_flag("--no-view", *no_view, "Periodic log lines instead of the live view");
  cmd->callback([&run, dir, duration, report, members, no_view] {
    run = [dir, duration, report, members, no_view] {
      sim::SimOptions options;
      options.dir = *dir;
      options.duration_s = *duration;
      options.report = *report;
      if (*no_view) {
        options.live_view = false;
      }
      return sim::run_simulation(sim::demo_scenario(*members), options);
    };
  });
}

}  // namespace recmesh::cli
