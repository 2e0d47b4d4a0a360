#pragma once

#include <functional>
#include <string_view>

#include "recmesh/mqtt/event_loop.hpp"

namespace recmesh::services {

// How every daemon runs: SIGTERM and SIGINT are blocked for the process and read as bytes on the
// daemon's event loop, so a signal never interrupts a handler. Construct it before any thread.
class StopOnSignal {
 public:
  StopOnSignal();  // throws Error(kInternal) when the signals cannot be redirected
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
  ~StopOnSignal();

  // Calls `start`, then runs `loop`. The first signal calls `stop` with a callback that ends the
  // loop; later signals are ignored while the daemon finishes stopping.
  void run(mqtt::EventLoop& loop, std::string_view what, const std::function<void()>& start,
           const std::function<void(std::function<void()>)>& stop) const;

 private:
  int fd_ = -1;
};

}  // namespace recmesh::services
