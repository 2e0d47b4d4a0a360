#pragma once

// What every recmesh daemon's main does: standard flags, configuration, logging, metrics,
// signals and a bounded shutdown.
//
//   int main(int argc, char** argv) {
//     CLI::App app{"recmesh-gateway: ..."};
//     daemon::DaemonRunner<GatewaySettings> runner("recmesh-gateway", gateway_schema());
//     runner.add_flags(app);               // --config, --check-config, --log-level, --log-format
//     CLI11_PARSE(app, argc, argv);
//     return runner.run([](const GatewaySettings& settings, daemon::DaemonContext& context) {
//       Gateway gateway(settings, context);  // wakes its loops from context.on_stop()
//       gateway.run_until(context.stop_token());
//       return daemon::kExitOk;
//     });
//   }

#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/common.h>

#include "recmesh/config/problem.hpp"
#include "recmesh/config/schema.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/daemon/daemon_context.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/metrics/http_endpoint.hpp"

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's own namespace
class App;
}

namespace recmesh::daemon {

// Exit codes of every daemon, as of every recmesh command (docs/operations.md).
inline constexpr int kExitOk = 0;      // stopped cleanly
inline constexpr int kExitUsage = 2;   // bad flags or configuration
inline constexpr int kExitFailed = 3;  // failed while running, or did not stop in time

// The flags every daemon has.
struct DaemonFlags {
  std::string config_file;    // --config FILE; empty: defaults only
  bool check_config = false;  // --check-config
  std::string log_level;      // --log-level; empty: from the configuration
  std::string log_format;     // --log-format; empty: from the configuration
};

void add_daemon_flags(CLI::App& app, DaemonFlags& flags);

// Declares the `logging` and `metrics` blocks that every daemon's settings hold, as members
// `logging` (log::LogSettings) and `metrics` (metrics::MetricsSettings).
template <typename Settings>
void add_common_blocks(config::Schema<Settings>& schema) {
  schema.block("logging", &Settings::logging, log::settings_schema());
  schema.block("metrics", &Settings::metrics, metrics::settings_schema());
}

struct RunnerOptions {
  // How long the body has to return after stop is requested before the process exits with
  // kExitFailed.
  std::chrono::milliseconds grace_period{10000};
  std::ostream* out = &std::cout;  // --check-config output
  std::ostream* err = &std::cerr;  // configuration problems
  spdlog::sink_ptr log_sink;       // where log lines go; null: standard error
  // Called on the watchdog thread when the grace period runs out; null: log and _Exit(3).
  std::function<void()> on_grace_expired;
};

namespace detail {

// The part of DaemonRunner::run() that does not depend on the settings type.
int run_daemon(const std::string& name, const log::LogSettings& logging,
               const metrics::MetricsSettings& metrics, const RunnerOptions& options,
               const std::function<void(DaemonContext&)>& reload,
               const std::function<int(DaemonContext&)>& body);

}  // namespace detail

template <typename Settings>
class DaemonRunner {
 public:
  using Body = std::function<int(const Settings&, DaemonContext&)>;
  using ReloadHook = std::function<void(const Settings&)>;

  // `schema` must hold the common blocks (add_common_blocks).
  DaemonRunner(std::string name, config::Schema<Settings> schema, RunnerOptions options = {})
      : name_(std::move(name)), schema_(std::move(schema)), options_(std::move(options)) {
    if (!schema_.has_key("logging.level") || !schema_.has_key("metrics.enabled")) {
      throw Error(ErrorCode::kInternal,
                  name_ + ": the settings schema lacks the logging and metrics blocks");
    }
  }

  void add_flags(CLI::App& app) { add_daemon_flags(app, flags_); }
  DaemonFlags& flags() { return flags_; }

  // Called with the new settings after SIGHUP made the runner re-read the file and every check
  // passed; runs on the signal thread. The runner itself applies the logging block.
  void on_reload(ReloadHook hook) {
    std::lock_guard lock(hooks_mutex_);
    reload_hooks_.push_back(std::move(hook));
  }

  // Loads and checks the configuration, then either prints it (--check-config) or runs `body`
  // until it returns; returns the process exit code. Configuration problems are all written
  // to `options.err` and give kExitUsage.
  int run(const Body& body) {
    config::LoadResult<Settings> loaded = load();
    if (!loaded.ok()) {
      *options_.err << name_ << ": error: " << config::describe_problems(loaded.problems) << '\n';
      return kExitUsage;
    }
    if (flags_.check_config) {
      *options_.out << "# " << name_ << ": effective configuration"
                    << (flags_.config_file.empty() ? " (defaults: no --config given)"
                                                   : " from " + flags_.config_file)
                    << "\n"
                    << schema_.render_yaml(loaded.settings, &loaded.keys_in_file);
      return kExitOk;
    }
    const Settings settings = std::move(loaded.settings);
    return detail::run_daemon(
        name_, settings.logging, settings.metrics, options_,
        [this, &settings](DaemonContext& context) { reload(context, settings); },
        [&body, &settings](DaemonContext& context) { return body(settings, context); });
  }

 private:
  // The file (or the defaults) with the logging flags applied over it.
  config::LoadResult<Settings> load() const {
    config::LoadResult<Settings> result = flags_.config_file.empty()
                                              ? schema_.load_defaults()
                                              : schema_.load_file(flags_.config_file);
    const std::string origin = "command line";
    if (!flags_.log_level.empty()) {
      if (auto level = log::parse_level(flags_.log_level)) {
        result.settings.logging.level = *level;
        result.keys_in_file.insert("logging.level");
      } else {
        result.problems.push_back({origin, 0, 0, "--log-level", "unknown level"});
      }
    }
    if (!flags_.log_format.empty()) {
      if (auto format = log::parse_format(flags_.log_format)) {
        result.settings.logging.format = *format;
        result.keys_in_file.insert("logging.format");
      } else {
        result.problems.push_back({origin, 0, 0, "--log-format", "unknown format"});
      }
    }
    return result;
  }

  void reload(DaemonContext& context, const Settings& running) {
    const log::Logger log = context.logger("daemon");
    const auto count = [&context](const char* result) {
      context.metrics()
          .counter("recmesh_config_reloads_total", "Configuration reloads on SIGHUP, by result",
                   {{"result", result}})
          .increment();
    };
    if (flags_.config_file.empty()) {
      log.warn("SIGHUP ignored: no --config file to re-read");
      count("rejected");
      return;
    }
    config::LoadResult<Settings> loaded = load();
    if (!loaded.ok()) {
      for (const config::Problem& problem : loaded.problems) {
        log.error("configuration rejected; the running one stays",
                  {{"problem", config::to_string(problem)}});
      }
      count("rejected");
      return;
    }
    context.log_output().apply(loaded.settings.logging);
    if (!(loaded.settings.metrics == running.metrics)) {
      log.warn("metrics settings changed; they take effect at the next start");
    }
    count("applied");
    {
      std::lock_guard lock(hooks_mutex_);
      for (const ReloadHook& hook : reload_hooks_) {
        hook(loaded.settings);
      }
    }
    log.info("configuration reloaded", {{"file", flags_.config_file}});
  }

  std::string name_;
  config::Schema<Settings> schema_;
  RunnerOptions options_;
  DaemonFlags flags_;
  std::mutex hooks_mutex_;
  std::vector<ReloadHook> reload_hooks_;  // guarded by hooks_mutex_
};

}  // namespace recmesh::daemon
