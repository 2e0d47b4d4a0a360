#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace recmesh::daemon {

// Turns SIGTERM, SIGINT and SIGHUP into calls on a thread of its own. The signal handler only
// counts the signal and writes a byte to a pipe (both async-signal-safe); the callbacks run on
// the watcher thread, once per signal received. At most one watcher exists per process; the
// previous handlers are restored when it is destroyed.
class SignalWatcher {
 public:
  struct Callbacks {
    std::function<void(int signal)> on_terminate;  // SIGTERM or SIGINT
    std::function<void()> on_reload;               // SIGHUP
  };

  // Throws Error(kFailedPrecondition) when another watcher exists, Error(kInternal) when the
  // handlers cannot be installed.
  explicit SignalWatcher(Callbacks callbacks);
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher();

 private:
  void watch();

  Callbacks callbacks_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace recmesh::daemon
