#include "recmesh/mqtt/event_loop.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <climits>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"

namespace recmesh::mqtt {
namespace {

constexpr std::size_t kMaxEventsPerRound = 256;
constexpr int kMaxDeferredPasses = 4;  // then what was deferred again waits for the next round
// epoll data of the eventfd; a watch's data is (generation << 32 | fd) with generation >= 1.
constexpr std::uint64_t kWakeupToken = 0;

std::uint32_t interest(bool want_read, bool want_write) {
  std::uint32_t events = 0;
  if (want_read) {
    events |= EPOLLIN | EPOLLRDHUP;
  }
  if (want_write) {
    events |= EPOLLOUT;
  }
  return events;
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Runs a handler, timer or task; what escapes it is logged, never thrown through the loop.
template <typename F>
void guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("event loop: a {} threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("event loop: a {} threw a non-standard exception", what);
  }
}

}  // namespace

const SteadyClock& SteadyClock::instance() {
  static const SteadyClock clock;
  return clock;
}

EventLoop::EventLoop(const MonotonicClock& clock) : clock_(clock) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw Error(ErrorCode::kInternal, errno_text("epoll_create1"));
  }
  wakeup_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeup_fd_ < 0) {
    const std::string message = errno_text("eventfd");
    ::close(epoll_fd_);
    throw Error(ErrorCode::kInternal, message);
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeupToken;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wakeup_fd_, &event) != 0) {
    const std::string message = errno_text("epoll_ctl(eventfd)");
    ::close(wakeup_fd_);
    ::close(epoll_fd_);
    throw Error(ErrorCode::kInternal, message);
  }
}

EventLoop::~EventLoop() {
  ::close(wakeup_fd_);
  ::close(epoll_fd_);
}

void EventLoop::run() {
  loop_thread_.store(std::this_thread::get_id());
  running_.store(true);
  while (!stop_requested_.load()) {
    run_once(std::chrono::milliseconds::max());
  }
  stop_requested_.store(false);
  running_.store(false);
  loop_thread_.store(std::thread::id{});
}

void EventLoop::stop() {
  stop_requested_.store(true);
  const std::uint64_t one = 1;
  // A full counter (never in practice) still leaves the eventfd readable, which is all we need.
  [[maybe_unused]] const ssize_t written = ::write(wakeup_fd_, &one, sizeof(one));
}

void EventLoop::post(Task task) {
  bool was_empty = false;
  {
    std::lock_guard lock(posted_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(task));
  }
  // The loop's own thread runs the task at the end of this round without being woken.
  const bool from_running_loop =
      running_.load() && loop_thread_.load() == std::this_thread::get_id();
  if (was_empty && !from_running_loop) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(wakeup_fd_, &one, sizeof(one));
  }
}

bool EventLoop::in_loop_thread() const {
  return !running_.load() || loop_thread_.load() == std::this_thread::get_id();
}

int EventLoop::wait_timeout_ms(std::chrono::milliseconds max_wait) const {
  using std::chrono::milliseconds;
  if (stop_requested_.load()) {
    return 0;
  }
  if (!deferred_.empty()) {
    return 0;
  }
  {
    std::lock_guard lock(posted_mutex_);
    if (!posted_.empty()) {
      return 0;
    }
  }
  milliseconds wait = max_wait;
  if (!timers_.empty()) {
    const auto left = timers_.begin()->first.first - clock_.now();
    if (left <= MonotonicClock::Duration::zero()) {
      return 0;
    }
    // Rounded up: waking before the deadline would only spin until it passes.
    wait = std::min(wait, std::chrono::ceil<milliseconds>(left));
  }
  if (wait.count() < 0) {
    return 0;
  }
  return wait.count() > INT_MAX ? -1 : static_cast<int>(wait.count());
}

std::size_t EventLoop::run_once(std::chrono::milliseconds max_wait) {
  std::array<epoll_event, kMaxEventsPerRound> events{};
  const int ready = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                 wait_timeout_ms(max_wait));
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  std::size_t ran = 0;
  if (ready < 0 && errno != EINTR) {
    spdlog::error("event loop: {}", errno_text("epoll_wait"));
  }
  for (int i = 0; i < ready; ++i) {
    const auto& event = events[static_cast<std::size_t>(i)];
    if (event.data.u64 == kWakeupToken) {
      drain_wakeup();
      continue;
    }
    ran += run_fd_event(event.data.u64, event.events);
  }
  ran += run_due_timers();
  ran += run_posted_tasks();
  ran += run_deferred_tasks();
  return ran;
}

std::size_t EventLoop::run_fd_event(std::uint64_t token, std::uint32_t events) {
  const int fd = static_cast<int>(token & 0xffffffffU);
  const auto generation = static_cast<std::uint32_t>(token >> 32);
  const auto it = watches_.find(fd);
  // An earlier handler of this round unwatched the descriptor, or it was closed and watched
  // anew under the same number: this event belongs to neither.
  if (it == watches_.end() || it->second.generation != generation) {
    return 0;
  }
  const std::shared_ptr<FdHandler> handler = it->second.handler;
  FdEvents ready;
  ready.readable = (events & (EPOLLIN | EPOLLPRI)) != 0;
  ready.writable = (events & EPOLLOUT) != 0;
  ready.hangup = (events & (EPOLLHUP | EPOLLRDHUP)) != 0;
  ready.error = (events & EPOLLERR) != 0;
  guarded("descriptor handler", [&] { (*handler)(ready); });
  return 1;
}

std::size_t EventLoop::run_due_timers() {
  if (timers_.empty()) {
    return 0;
  }
  const auto now = clock_.now();
  // Collected first, so a timer that adds a timer due now does not run in this round.
  std::vector<TimerKey> due;
  for (auto it = timers_.begin(); it != timers_.end() && it->first.first <= now; ++it) {
    due.push_back(it->first);
  }
  std::size_t ran = 0;
  for (const TimerKey& key : due) {
    auto node = timers_.extract(key);
    if (node.empty()) {
      continue;  // cancelled by an earlier timer of this round
    }
    timer_deadlines_.erase(key.second);
    guarded("timer", node.mapped());
    ++ran;
  }
  return ran;
}

std::size_t EventLoop::run_posted_tasks() {
  std::vector<Task> tasks;
  {
    std::lock_guard lock(posted_mutex_);
    tasks.swap(posted_);
  }
  for (Task& task : tasks) {
    guarded("posted task", task);
  }
  return tasks.size();
}

void EventLoop::defer(Task task) {
  assert(in_loop_thread());
  deferred_.push_back(std::move(task));
}

std::size_t EventLoop::run_deferred_tasks() {
  std::size_t ran = 0;
  for (int pass = 0; pass < kMaxDeferredPasses && !deferred_.empty(); ++pass) {
    std::vector<Task> tasks;
    tasks.swap(deferred_);
    for (Task& task : tasks) {
      guarded("deferred task", task);
    }
    ran += tasks.size();
  }
  return ran;
}

// Not const: reading the eventfd consumes its counter, state that belongs to the loop.
void EventLoop::drain_wakeup() {  // NOLINT(readability-make-member-function-const)
  std::uint64_t count = 0;
  [[maybe_unused]] const ssize_t got = ::read(wakeup_fd_, &count, sizeof(count));
}

EventLoop::TimerId EventLoop::add_timer(MonotonicClock::Duration delay, Task task) {
  const auto deadline = clock_.now() + std::max(delay, MonotonicClock::Duration::zero());
  const TimerId id = next_timer_id_++;
  timers_.emplace(TimerKey{deadline, id}, std::move(task));
  timer_deadlines_.emplace(id, deadline);
  return id;
}

bool EventLoop::cancel_timer(TimerId id) {
  const auto it = timer_deadlines_.find(id);
  if (it == timer_deadlines_.end()) {
    return false;
  }
  timers_.erase(TimerKey{it->second, id});
  timer_deadlines_.erase(it);
  return true;
}

Result<Done> EventLoop::watch(int fd, bool want_read, bool want_write, FdHandler handler) {
  if (fd < 0) {
    return Result<Done>::failure(ErrorCode::kInvalidArgument, "watch: negative descriptor");
  }
  if (watches_.contains(fd)) {
    return Result<Done>::failure(ErrorCode::kAlreadyExists,
                                 "descriptor " + std::to_string(fd) + " is already watched");
  }
  Watch entry;
  entry.generation = next_generation_++;
  if (next_generation_ == 0) {
    next_generation_ = 1;  // 0 would collide with the wakeup token's generation
  }
  entry.events = interest(want_read, want_write);
  entry.handler = std::make_shared<FdHandler>(std::move(handler));
  epoll_event event{};
  event.events = entry.events;
  event.data.u64 = (std::uint64_t{entry.generation} << 32) | static_cast<std::uint32_t>(fd);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return Result<Done>::failure(ErrorCode::kInternal, errno_text("epoll_ctl(ADD)"));
  }
  watches_.emplace(fd, std::move(entry));
  return Done{};
}

Result<Done> EventLoop::modify(int fd, bool want_read, bool want_write) {
  const auto it = watches_.find(fd);
  if (it == watches_.end()) {
    return Result<Done>::failure(ErrorCode::kNotFound,
                                 "descriptor " + std::to_string(fd) + " is not watched");
  }
  const std::uint32_t events = interest(want_read, want_write);
  if (events == it->second.events) {
    return Done{};
  }
  epoll_event event{};
  event.events = events;
  event.data.u64 = (std::uint64_t{it->second.generation} << 32) | static_cast<std::uint32_t>(fd);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0) {
    return Result<Done>::failure(ErrorCode::kInternal, errno_text("epoll_ctl(MOD)"));
  }
  it->second.events = events;
  return Done{};
}

void EventLoop::unwatch(int fd) {
  const auto it = watches_.find(fd);
  if (it == watches_.end()) {
    return;
  }
  // EBADF or ENOENT when the descriptor was closed already: the kernel dropped it then.
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watches_.erase(it);
}

}  // namespace recmesh::mqtt
