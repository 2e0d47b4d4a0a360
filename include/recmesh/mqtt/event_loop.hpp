#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "recmesh/core/result.hpp"

namespace recmesh::mqtt {

// A Result that carries no value, for operations that either happen or fail with a Status.
using Done = std::monostate;

// Monotonic time for timers, injected so that tests can move time by hand.
class MonotonicClock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~MonotonicClock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public MonotonicClock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  static const SteadyClock& instance();
};

// Time that moves only when a test says so. Safe to read from any thread.
class ManualClock final : public MonotonicClock {
 public:
  TimePoint now() const override { return TimePoint(Duration(ticks_.load())); }
  void advance(Duration by) { ticks_.fetch_add(by.count()); }

 private:
  std::atomic<Duration::rep> ticks_{0};
};

// What epoll reported for a watched descriptor.
struct FdEvents {
  bool readable = false;
  bool writable = false;
  bool hangup = false;  // the peer closed its side, or both sides are shut
  bool error = false;   // an error is pending on the socket (read it with SO_ERROR)
};

// A single-threaded event loop on epoll: descriptor readiness, timers on a monotonic clock and
// tasks posted from other threads through an eventfd.
//
// The thread that calls run() is the loop thread. Everything except post(), stop() and
// wakeups() must be called on it (or before run() starts, from the thread that will run it).
// Handlers and tasks run on the loop thread; an exception that escapes one is logged and
// swallowed so that one faulty handler cannot take every connection of the loop down with it.
class EventLoop {
 public:
  using Task = std::function<void()>;
  using FdHandler = std::function<void(FdEvents)>;
  using TimerId = std::uint64_t;  // never 0, so 0 can mean "no timer"

  // Throws Error(kInternal) when the kernel refuses an epoll or eventfd descriptor.
  explicit EventLoop(const MonotonicClock& clock = SteadyClock::instance());
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  // Runs until stop(). A stop() that arrives before run() starts makes it return at once.
  void run();
  // One round: waits up to `max_wait` (less when a timer is due or a task is posted), then runs
  // the ready descriptor handlers, the due timers, the posted and the deferred tasks. Returns
  // how many ran.
  std::size_t run_once(std::chrono::milliseconds max_wait);
  // Thread-safe. run() returns after the handler that is running, if any.
  void stop();
  // Thread-safe. Runs `task` on the loop thread, in posting order; posted from a handler, it
  // runs at the end of the same round.
  void post(Task task);
  // Loop thread only. Runs `task` last in the current round, after the posted tasks; deferred
  // from a posted or deferred task, still in this round (a few passes at most, then the next).
  // For work that gathers what the whole round produced, such as one socket write.
  void defer(Task task);

  // Runs `task` once, `delay` from now. Timers due at the same time run in the order added.
  TimerId add_timer(MonotonicClock::Duration delay, Task task);
  // False when the timer already ran or was cancelled.
  bool cancel_timer(TimerId id);

  // Calls `handler` while `fd` is ready for what is asked (level-triggered). Fails when the
  // kernel refuses the descriptor or it is already watched.
  Result<Done> watch(int fd, bool want_read, bool want_write, FdHandler handler);
  Result<Done> modify(int fd, bool want_read, bool want_write);
  // Stops watching `fd`. Safe when `fd` was already closed (the kernel dropped it then).
  void unwatch(int fd);

  bool in_loop_thread() const;
  MonotonicClock::TimePoint now() const { return clock_.now(); }
  // Rounds that returned from epoll_wait so far; lets tests show that nothing spins.
  std::uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }
  std::size_t timer_count() const { return timers_.size(); }

 private:
  struct Watch {
    std::uint32_t generation = 0;
    std::uint32_t events = 0;
    std::shared_ptr<FdHandler> handler;  // shared: a handler may unwatch its own descriptor
  };
  using TimerKey = std::pair<MonotonicClock::TimePoint, TimerId>;

  int wait_timeout_ms(std::chrono::milliseconds max_wait) const;
  std::size_t run_fd_event(std::uint64_t token, std::uint32_t events);
  std::size_t run_due_timers();
  std::size_t run_posted_tasks();
  std::size_t run_deferred_tasks();
  void drain_wakeup();

  const MonotonicClock& clock_;
  int epoll_fd_ = -1;
  int wakeup_fd_ = -1;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::thread::id> loop_thread_{};
  std::atomic<std::uint64_t> wakeups_{0};

  mutable std::mutex posted_mutex_;
  std::vector<Task> posted_;    // guarded by posted_mutex_
  std::vector<Task> deferred_;  // loop thread only

  std::map<TimerKey, Task> timers_;
  std::unordered_map<TimerId, MonotonicClock::TimePoint> timer_deadlines_;
  TimerId next_timer_id_ = 1;

  std::unordered_map<int, Watch> watches_;
  std::uint32_t next_generation_ = 1;
};

}  // namespace recmesh::mqtt
