#include "recmesh/daemon/daemon_runner.hpp"

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/daemon/signal_watcher.hpp"
#include "recmesh/metrics/http_endpoint.hpp"

#ifndef RECMESH_VERSION
#define RECMESH_VERSION "unknown"
#endif

namespace recmesh::daemon::detail {
namespace {

// Makes `output` the process's default log output while a daemon runs, so that library code
// logging through log::Logger's default lands in the daemon's format.
class DefaultOutputScope {
 public:
  explicit DefaultOutputScope(std::shared_ptr<log::LogOutput> output)
      : previous_(log::default_output()) {
    log::set_default_output(std::move(output));
  }
  DefaultOutputScope(const DefaultOutputScope&) = delete;
  DefaultOutputScope& operator=(const DefaultOutputScope&) = delete;
  ~DefaultOutputScope() { log::set_default_output(std::move(previous_)); }

 private:
  std::shared_ptr<log::LogOutput> previous_;
};

// Bounds shutdown: once stop is requested, the body has `grace` to return, else `expired` runs.
class GraceWatchdog {
 public:
  GraceWatchdog(const DaemonContext& context, std::chrono::milliseconds grace,
                std::function<void()> expired)
      : expired_(std::move(expired)),
        on_stop_(context.stop_token(), [this] { notify(&stop_requested_); }),
        thread_([this, grace] { watch(grace); }) {}
  GraceWatchdog(const GraceWatchdog&) = delete;
  GraceWatchdog& operator=(const GraceWatchdog&) = delete;
  ~GraceWatchdog() { finish(); }

  // The body returned.
  void finish() {
    notify(&finished_);
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  void notify(bool* flag) {
    {
      std::lock_guard lock(mutex_);
      *flag = true;
    }
    cv_.notify_all();
  }

  void watch(std::chrono::milliseconds grace) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return stop_requested_ || finished_; });
    if (cv_.wait_for(lock, grace, [this] { return finished_; })) {
      return;
    }
    lock.unlock();
    expired_();
  }

  std::function<void()> expired_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_requested_ = false;  // guarded by mutex_
  bool finished_ = false;        // guarded by mutex_
  std::stop_callback<std::function<void()>> on_stop_;
  std::thread thread_;
};

std::string signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return std::to_string(signal);
  }
}

}  // namespace

int run_daemon(const std::string& name, const log::LogSettings& logging,
               const metrics::MetricsSettings& metrics_settings, const RunnerOptions& options,
               const std::function<void(DaemonContext&)>& reload,
               const std::function<int(DaemonContext&)>& body) {
  std::shared_ptr<log::LogOutput> output =
      options.log_sink ? std::make_shared<log::LogOutput>(logging, options.log_sink)
                       : log::LogOutput::to_stderr(logging);
  const DefaultOutputScope default_output(output);
  metrics::Registry registry;
  DaemonContext context(name, output, registry);
  const log::Logger log = context.logger("daemon");
  registry
      .gauge("recmesh_build_info", "Always 1; the labels name the daemon and its version",
             {{"daemon", name}, {"version", RECMESH_VERSION}})
      .set(1);

  // A peer closing a socket must be an error return, never the end of the process.
  if (std::signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
    log.warn("cannot ignore SIGPIPE");
  }

  const std::chrono::milliseconds grace = options.grace_period;
  GraceWatchdog watchdog(context, grace, [&] {
    if (options.on_grace_expired) {
      options.on_grace_expired();
      return;
    }
    log.critical("did not stop within the grace period; exiting now",
                 {{"grace_period_ms", grace.count()}});
    output->flush();
    std::_Exit(kExitFailed);
  });
  std::optional<SignalWatcher> signals;
  int code = kExitFailed;
  try {
    signals.emplace(SignalWatcher::Callbacks{
        .on_terminate =
            [&](int signal) {
              if (context.stop_requested()) {
                log.info("stop already in progress", {{"signal", signal_name(signal)}});
                return;
              }
              log.info("stopping",
                       {{"signal", signal_name(signal)}, {"grace_period_ms", grace.count()}});
              context.request_stop();
            },
        .on_reload =
            [&] {
              log.info("re-reading the configuration", {{"signal", "SIGHUP"}});
              try {
                reload(context);
              } catch (const std::exception& e) {
                log.error("reload failed", {{"error", e.what()}});
              }
            },
    });
    std::optional<metrics::HttpEndpoint> endpoint;
    if (metrics_settings.enabled) {
      endpoint.emplace(registry, metrics_settings);
      log.info("serving metrics",
               {{"url",
                 fmt::format("http://{}:{}/metrics",
                             metrics_settings.address == "::1" ? "[::1]" : metrics_settings.address,
                             endpoint->port())}});
    }
    log.info("started", {{"version", RECMESH_VERSION}, {"pid", static_cast<int>(::getpid())}});
    code = body(context);
  } catch (const Error& e) {
    log.critical("stopped by an error", {{"error", e.what()}, {"code", to_string(e.code())}});
    code = e.code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailed;
  } catch (const std::exception& e) {
    log.critical("stopped by an error", {{"error", e.what()}});
    code = kExitFailed;
  }
  watchdog.finish();
  log.info("stopped", {{"exit_code", code}});
  output->flush();
  return code;
}

}  // namespace recmesh::daemon::detail
