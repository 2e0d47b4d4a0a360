// recmesh-example: a daemon that only ticks, counts and logs, with the settings of
// tests/support/example_settings.hpp. main() does what every daemon's main does.
#include <atomic>
#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>

#include "recmesh/daemon/daemon_runner.hpp"

#include "example_settings.hpp"

int main(int argc, char** argv) {
  using namespace recmesh;
  using testing::ExampleSettings;
  CLI::App app{"recmesh-example: ticks every publish.interval and counts the ticks.",
               "recmesh-example"};
  daemon::RunnerOptions options;
  options.grace_period = std::chrono::milliseconds(500);
  daemon::DaemonRunner<ExampleSettings> runner("recmesh-example", testing::example_schema(),
                                               options);
  runner.add_flags(app);
  bool hang_on_stop = false;
  app.add_flag("--hang-on-stop", hang_on_stop,
               "Ignore the stop request (to show the grace period at work)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? daemon::kExitOk : daemon::kExitUsage;
  }
  std::atomic<long long> interval_ms{0};
  runner.on_reload(
      [&](const ExampleSettings& settings) { interval_ms = settings.publish_interval.count(); });
  return runner.run([&](const ExampleSettings& settings, daemon::DaemonContext& context) {
    const log::Logger log = context.logger("example");
    metrics::Counter& ticks =
        context.metrics().counter("recmesh_example_ticks_total", "Ticks since start");
    interval_ms = settings.publish_interval.count();
    log.info("ticking", {{"site", settings.site}, {"interval_ms", interval_ms.load()}});
    while (!context.wait_for_stop(std::chrono::milliseconds(interval_ms.load()))) {
      ticks.increment();
      log.debug("tick", {{"count", ticks.value()}});
    }
    if (hang_on_stop) {
      std::this_thread::sleep_for(std::chrono::hours(1));
    }
    return daemon::kExitOk;
  });
}
