#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include "recmesh/log/logger.hpp"
#include "recmesh/metrics/registry.hpp"

namespace recmesh::daemon {

// What a running daemon gets from DaemonRunner: its loggers, its metrics registry, and the
// stop request that SIGTERM or SIGINT raise. Thread-safe.
class DaemonContext {
 public:
  DaemonContext(std::string name, std::shared_ptr<log::LogOutput> output,
                metrics::Registry& registry);
  DaemonContext(const DaemonContext&) = delete;
  DaemonContext& operator=(const DaemonContext&) = delete;

  const std::string& name() const { return name_; }
  log::Logger logger(std::string component) const {
    return log::Logger(std::move(component), output_);
  }
  log::LogOutput& log_output() const { return *output_; }
  metrics::Registry& metrics() const { return registry_; }

  // Asks the daemon to stop. The first call runs every on_stop callback, on the calling thread
  // (the signal thread for SIGTERM and SIGINT); later calls do nothing.
  void request_stop();
  bool stop_requested() const { return stop_.stop_requested(); }
  std::stop_token stop_token() const { return stop_.get_token(); }

  // Runs `callback` once when stop is requested (at once if it already was). It should only
  // wake the daemon's loops: the daemon then has the grace period to return from its body.
  void on_stop(std::function<void()> callback);

  void wait_for_stop() const;
  // True when stop was requested within `timeout`.
  bool wait_for_stop(std::chrono::milliseconds timeout) const;

 private:
  std::string name_;
  std::shared_ptr<log::LogOutput> output_;
  metrics::Registry& registry_;
  std::stop_source stop_;
  mutable std::mutex wait_mutex_;
  mutable std::condition_variable_any wait_cv_;
  std::mutex callbacks_mutex_;
  std::list<std::stop_callback<std::function<void()>>> callbacks_;  // guarded by callbacks_mutex_
};

}  // namespace recmesh::daemon
