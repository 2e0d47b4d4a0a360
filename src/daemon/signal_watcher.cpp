#include "recmesh/daemon/signal_watcher.hpp"

#include <array>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh::daemon {
namespace {

constexpr std::array<int, 3> kSignals{SIGTERM, SIGINT, SIGHUP};

// Shared with the signal handler, so plain lock-free atomics only.
std::array<std::atomic<unsigned>, kSignals.size()> g_counts{};
std::atomic<int> g_wake_write{-1};
std::atomic<bool> g_watcher_exists{false};
static_assert(std::atomic<unsigned>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

// Created once and never closed: a handler still running on another thread while a watcher is
// torn down must not write into a descriptor that was closed and reused.
int wake_read_fd() {
  static const int fd = [] {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC | O_NONBLOCK) != 0) {
      throw Error(ErrorCode::kInternal, "cannot create the signal pipe");
    }
    g_wake_write.store(fds[1]);
    return fds[0];
  }();
  return fd;
}

extern "C" void on_signal(int signal) {
  const int saved_errno = errno;
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    if (kSignals[i] == signal) {
      g_counts[i].fetch_add(1);
    }
  }
  const char byte = 1;
  // A full pipe already holds a wake-up; the count above is what matters.
  [[maybe_unused]] const ssize_t n = ::write(g_wake_write.load(), &byte, 1);
  errno = saved_errno;
}

std::array<struct sigaction, kSignals.size()> g_previous{};

void drain(int fd) {
  std::array<char, 64> buffer{};
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
}

}  // namespace

SignalWatcher::SignalWatcher(Callbacks callbacks) : callbacks_(std::move(callbacks)) {
  if (g_watcher_exists.exchange(true)) {
    throw Error(ErrorCode::kFailedPrecondition, "a signal watcher already exists");
  }
  const int read_fd = wake_read_fd();
  drain(read_fd);
  for (auto& count : g_counts) {
    count.store(0);
  }
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    if (::sigaction(kSignals[i], &action, &g_previous[i]) != 0) {
      for (std::size_t j = 0; j < i; ++j) {
        ::sigaction(kSignals[j], &g_previous[j], nullptr);
      }
      g_watcher_exists = false;
      throw Error(ErrorCode::kInternal, fmt::format("cannot handle signal {}", kSignals[i]));
    }
  }
  thread_ = std::thread([this] { watch(); });
}

SignalWatcher::~SignalWatcher() {
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    ::sigaction(kSignals[i], &g_previous[i], nullptr);
  }
  stopping_ = true;
  const char byte = 0;
  [[maybe_unused]] const ssize_t n = ::write(g_wake_write.load(), &byte, 1);
  thread_.join();
  g_watcher_exists = false;
}

void SignalWatcher::watch() {
  const int fd = wake_read_fd();
  while (true) {
    pollfd wait{fd, POLLIN, 0};
    if (::poll(&wait, 1, -1) < 0 && errno != EINTR) {
      return;
    }
    drain(fd);
    if (stopping_) {
      return;
    }
    for (std::size_t i = 0; i < kSignals.size(); ++i) {
      for (unsigned n = g_counts[i].exchange(0); n > 0; --n) {
        // Callbacks report their own failures; one that throws must not end signal handling.
        try {
          if (kSignals[i] == SIGHUP) {
            if (callbacks_.on_reload) {
              callbacks_.on_reload();
            }
          } else if (callbacks_.on_terminate) {
            callbacks_.on_terminate(kSignals[i]);
          }
        } catch (...) {  // NOLINT(bugprone-empty-catch)
        }
      }
    }
  }
}

}  // namespace recmesh::daemon
