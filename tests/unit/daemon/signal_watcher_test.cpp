#include "recmesh/daemon/signal_watcher.hpp"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <mutex>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include "recmesh/core/error.hpp"
#include "recmesh/daemon/daemon_context.hpp"

namespace recmesh::daemon {
namespace {

using namespace std::chrono_literals;

// Counts calls and lets a test wait for a number of them without sleeping.
class CallCounter {
 public:
  void add() {
    {
      std::lock_guard lock(mutex_);
      ++count_;
    }
    cv_.notify_all();
  }
  bool wait_for(int count) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] { return count_ >= count; });
  }
  int count() {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_ = 0;
};

TEST(SignalWatcherTest, RaisedSigtermTriggersStopOnce) {
  metrics::Registry registry;
  DaemonContext context("test",
                        std::make_shared<log::LogOutput>(
                            log::LogSettings{}, std::make_shared<spdlog::sinks::null_sink_mt>()),
                        registry);
  CallCounter stops;
  CallCounter terminations;
  std::atomic<int> last_signal{0};
  context.on_stop([&] { stops.add(); });
  const SignalWatcher watcher({
      .on_terminate =
          [&](int signal) {
            last_signal = signal;
            context.request_stop();
            terminations.add();
          },
      .on_reload = [] {},
  });
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_TRUE(context.wait_for_stop(10s));
  ASSERT_EQ(std::raise(SIGTERM), 0);
  ASSERT_TRUE(terminations.wait_for(2));
  EXPECT_EQ(last_signal, SIGTERM);
  EXPECT_EQ(stops.count(), 1);
  EXPECT_TRUE(context.stop_requested());
  // A callback added after the stop runs at once.
  context.on_stop([&] { stops.add(); });
  EXPECT_EQ(stops.count(), 2);
}

TEST(SignalWatcherTest, SigintAlsoTerminatesAndSighupReloads) {
  CallCounter terminations;
  CallCounter reloads;
  std::atomic<int> last_signal{0};
  const SignalWatcher watcher({
      .on_terminate =
          [&](int signal) {
            last_signal = signal;
            terminations.add();
          },
      .on_reload = [&] { reloads.add(); },
  });
  ASSERT_EQ(std::raise(SIGHUP), 0);
  ASSERT_EQ(std::raise(SIGHUP), 0);
  ASSERT_TRUE(reloads.wait_for(2));
  ASSERT_EQ(std::raise(SIGINT), 0);
  ASSERT_TRUE(terminations.wait_for(1));
  EXPECT_EQ(last_signal, SIGINT);
  EXPECT_EQ(reloads.count(), 2);
}

TEST(SignalWatcherTest, ACallbackThatThrowsDoesNotEndSignalHandling) {
  CallCounter reloads;
  const SignalWatcher watcher({
      .on_terminate = [](int) { throw std::runtime_error("boom"); },
      .on_reload = [&] { reloads.add(); },
  });
  ASSERT_EQ(std::raise(SIGTERM), 0);
  ASSERT_EQ(std::raise(SIGHUP), 0);
  EXPECT_TRUE(reloads.wait_for(1));
}

TEST(SignalWatcherTest, OnlyOneWatcherAtATime) {
  const SignalWatcher first(SignalWatcher::Callbacks{});
  try {
    const SignalWatcher second(SignalWatcher::Callbacks{});
    FAIL() << "two watchers";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
  }
}

std::atomic<int> g_previous_handler_calls{0};
extern "C" void count_previous(int) {
  g_previous_handler_calls.fetch_add(1);
}

TEST(SignalWatcherTest, PreviousHandlersComeBackAfterwards) {
  g_previous_handler_calls = 0;
  struct sigaction mine {};
  mine.sa_handler = count_previous;
  sigemptyset(&mine.sa_mask);
  struct sigaction original {};
  ASSERT_EQ(::sigaction(SIGHUP, &mine, &original), 0);
  {
    CallCounter reloads;
    const SignalWatcher watcher({.on_terminate = {}, .on_reload = [&] { reloads.add(); }});
    ASSERT_EQ(std::raise(SIGHUP), 0);
    ASSERT_TRUE(reloads.wait_for(1));
    EXPECT_EQ(g_previous_handler_calls, 0);
  }
  ASSERT_EQ(std::raise(SIGHUP), 0);
  EXPECT_EQ(g_previous_handler_calls, 1);
  ::sigaction(SIGHUP, &original, nullptr);
  // A new watcher works after an old one is gone.
  CallCounter reloads;
  const SignalWatcher again({.on_terminate = {}, .on_reload = [&] { reloads.add(); }});
  ASSERT_EQ(std::raise(SIGHUP), 0);
  EXPECT_TRUE(reloads.wait_for(1));
}

TEST(DaemonContextTest, WaitForStopTimesOutWithoutARequest) {
  metrics::Registry registry;
  DaemonContext context("test", log::default_output(), registry);
  EXPECT_FALSE(context.wait_for_stop(1ms));
  std::thread stopper([&] { context.request_stop(); });
  context.wait_for_stop();
  stopper.join();
  EXPECT_TRUE(context.stop_token().stop_requested());
}

}  // namespace
}  // namespace recmesh::daemon
