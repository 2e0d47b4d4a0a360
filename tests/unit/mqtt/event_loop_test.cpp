#include "recmesh/mqtt/event_loop.hpp"

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace recmesh::mqtt {
namespace {

using namespace std::chrono_literals;

// A pipe closed on destruction.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::runtime_error("pipe2 failed");
    }
    read_end = fds[0];
    write_end = fds[1];
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    if (read_end >= 0) {
      ::close(read_end);
    }
    if (write_end >= 0) {
      ::close(write_end);
    }
  }
};

TEST(EventLoopTest, TimersRunInDeadlineOrderWhenTheClockReachesThem) {
  ManualClock clock;
  EventLoop loop(clock);
  std::vector<std::string> fired;
  loop.add_timer(30ms, [&] { fired.push_back("30"); });
  loop.add_timer(10ms, [&] { fired.push_back("10"); });
  loop.add_timer(20ms, [&] { fired.push_back("20"); });

  loop.run_once(0ms);
  EXPECT_TRUE(fired.empty());
  clock.advance(25ms);
  loop.run_once(0ms);
  EXPECT_EQ(fired, (std::vector<std::string>{"10", "20"}));
  clock.advance(5ms);
  loop.run_once(0ms);
  EXPECT_EQ(fired, (std::vector<std::string>{"10", "20", "30"}));
  EXPECT_EQ(loop.timer_count(), 0U);
}

TEST(EventLoopTest, TimersDueTogetherRunInTheOrderAdded) {
  ManualClock clock;
  EventLoop loop(clock);
  std::vector<int> fired;
  for (int i = 0; i < 5; ++i) {
    loop.add_timer(10ms, [&fired, i] { fired.push_back(i); });
  }
  clock.advance(10ms);
  loop.run_once(0ms);
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(EventLoopTest, CancelledTimerNeverRuns) {
  ManualClock clock;
  EventLoop loop(clock);
  bool ran = false;
  const EventLoop::TimerId id = loop.add_timer(5ms, [&] { ran = true; });
  EXPECT_TRUE(loop.cancel_timer(id));
  EXPECT_FALSE(loop.cancel_timer(id));
  clock.advance(10ms);
  loop.run_once(0ms);
  EXPECT_FALSE(ran);
}

TEST(EventLoopTest, TimerMayCancelAnotherDueInTheSameRound) {
  ManualClock clock;
  EventLoop loop(clock);
  std::vector<std::string> fired;
  EventLoop::TimerId second = 0;
  loop.add_timer(1ms, [&] {
    fired.push_back("first");
    loop.cancel_timer(second);
  });
  second = loop.add_timer(1ms, [&] { fired.push_back("second"); });
  clock.advance(1ms);
  loop.run_once(0ms);
  EXPECT_EQ(fired, (std::vector<std::string>{"first"}));
}

TEST(EventLoopTest, TimerAddedByATimerWaitsForTheNextRound) {
  ManualClock clock;
  EventLoop loop(clock);
  int runs = 0;
  std::function<void()> again = [&] {
    ++runs;
    loop.add_timer(0ms, again);  // would spin forever if run in the same round
  };
  loop.add_timer(0ms, again);
  loop.run_once(0ms);
  EXPECT_EQ(runs, 1);
  loop.run_once(0ms);
  EXPECT_EQ(runs, 2);
}

TEST(EventLoopTest, DeferredTasksRunLastInTheRoundEvenWhenDeferredByAPostedTask) {
  ManualClock clock;
  EventLoop loop(clock);
  std::vector<std::string> order;
  loop.add_timer(0ms, [&] {
    order.push_back("timer");
    loop.defer([&] { order.push_back("deferred by the timer"); });
  });
  loop.post([&] {
    order.push_back("posted");
    loop.defer([&] {
      order.push_back("deferred by the task");
      loop.defer([&] { order.push_back("deferred again"); });
    });
  });
  EXPECT_EQ(loop.run_once(0ms), 5U);
  EXPECT_EQ(order, (std::vector<std::string>{"timer", "posted", "deferred by the timer",
                                             "deferred by the task", "deferred again"}));
}

TEST(EventLoopTest, ATaskThatKeepsDeferringItselfYieldsToTheNextRound) {
  ManualClock clock;
  EventLoop loop(clock);
  int runs = 0;
  std::function<void()> again = [&] {
    ++runs;
    loop.defer(again);  // would never let the round end if every pass ran
  };
  loop.defer(again);
  loop.run_once(0ms);
  EXPECT_GE(runs, 1);
  EXPECT_LE(runs, 8);
  const int first_round = runs;
  loop.run_once(1000ms);  // the waiting deferred task runs without waiting for the timeout
  EXPECT_GT(runs, first_round);
}

TEST(EventLoopTest, WaitsOnTheRealClockUntilATimerIsDue) {
  EventLoop loop;
  bool ran = false;
  loop.add_timer(30ms, [&] { ran = true; });
  const auto start = std::chrono::steady_clock::now();
  while (!ran) {
    loop.run_once(1000ms);
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(EventLoopTest, PostFromAnotherThreadRunsOnTheLoopThreadInOrder) {
  EventLoop loop;
  std::thread::id loop_thread;
  std::vector<int> order;
  std::vector<std::thread::id> ran_on;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop.run();
  });
  std::promise<void> done;
  for (int i = 0; i < 100; ++i) {
    loop.post([&, i] {
      order.push_back(i);
      ran_on.push_back(std::this_thread::get_id());
    });
  }
  loop.post([&] { done.set_value(); });
  ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  loop.stop();
  runner.join();

  ASSERT_EQ(order.size(), 100U);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
    EXPECT_EQ(ran_on[static_cast<std::size_t>(i)], loop_thread);
  }
}

TEST(EventLoopTest, ManyThreadsPostingConcurrentlyLoseNoTask) {
  EventLoop loop;
  std::thread runner([&] { loop.run(); });
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        loop.post([&] { ran.fetch_add(1); });
      }
    });
  }
  for (auto& poster : posters) {
    poster.join();
  }
  std::promise<void> done;
  loop.post([&] { done.set_value(); });
  ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  loop.stop();
  runner.join();
  EXPECT_EQ(ran.load(), kThreads * kPerThread);
}

TEST(EventLoopTest, StopFromAnotherThreadEndsAnIdleRun) {
  EventLoop loop;
  std::thread runner([&] { loop.run(); });
  std::this_thread::sleep_for(20ms);  // let it block in epoll_wait with nothing to do
  loop.stop();
  runner.join();  // hangs (and the test times out) if stop() did not wake it
  SUCCEED();
}

TEST(EventLoopTest, StopBeforeRunMakesRunReturnAtOnce) {
  EventLoop loop;
  loop.stop();
  loop.run();
  SUCCEED();
}

TEST(EventLoopTest, ReportsReadabilityAndWritabilityOfAWatchedDescriptor) {
  EventLoop loop;
  Pipe pipe;
  int readable = 0;
  ASSERT_TRUE(loop.watch(pipe.read_end, true, false, [&](FdEvents events) {
    if (events.readable) {
      ++readable;
      char buffer[16];
      [[maybe_unused]] const ssize_t got = ::read(pipe.read_end, buffer, sizeof(buffer));
    }
  }));
  loop.run_once(0ms);
  EXPECT_EQ(readable, 0);
  ASSERT_EQ(::write(pipe.write_end, "x", 1), 1);
  loop.run_once(1000ms);
  EXPECT_EQ(readable, 1);

  bool writable = false;
  ASSERT_TRUE(loop.watch(pipe.write_end, false, true,
                         [&](FdEvents events) { writable = events.writable; }));
  loop.run_once(1000ms);
  EXPECT_TRUE(writable);
  EXPECT_FALSE(loop.watch(pipe.write_end, false, true, [](FdEvents) {}))
      << "a descriptor is watched once";
  loop.unwatch(pipe.write_end);
  loop.unwatch(pipe.read_end);
}

TEST(EventLoopTest, ModifyChangesWhatWakesTheHandler) {
  EventLoop loop;
  Pipe pipe;
  int calls = 0;
  ASSERT_TRUE(loop.watch(pipe.write_end, false, false, [&](FdEvents) { ++calls; }));
  loop.run_once(0ms);
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(loop.modify(pipe.write_end, false, true));
  loop.run_once(1000ms);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(loop.modify(12345, true, false)) << "not watched";
  loop.unwatch(pipe.write_end);
}

TEST(EventLoopTest, ReportsHangupWhenThePeerCloses) {
  EventLoop loop;
  Pipe pipe;
  bool hangup = false;
  ASSERT_TRUE(
      loop.watch(pipe.read_end, true, false, [&](FdEvents events) { hangup = events.hangup; }));
  ::close(pipe.write_end);
  pipe.write_end = -1;
  loop.run_once(1000ms);
  EXPECT_TRUE(hangup);
  loop.unwatch(pipe.read_end);
}

TEST(EventLoopTest, HandlerMayUnwatchItselfAndOthers) {
  EventLoop loop;
  Pipe first;
  Pipe second;
  int calls = 0;
  ASSERT_EQ(::write(first.write_end, "x", 1), 1);
  ASSERT_EQ(::write(second.write_end, "x", 1), 1);
  const auto handler = [&](FdEvents) {
    ++calls;
    loop.unwatch(first.read_end);
    loop.unwatch(second.read_end);
  };
  ASSERT_TRUE(loop.watch(first.read_end, true, false, handler));
  ASSERT_TRUE(loop.watch(second.read_end, true, false, handler));
  loop.run_once(1000ms);
  loop.run_once(0ms);
  EXPECT_EQ(calls, 1) << "the second event of the round belonged to an unwatched descriptor";
}

TEST(EventLoopTest, UnwatchAfterCloseIsHarmless) {
  EventLoop loop;
  auto pipe = std::make_unique<Pipe>();
  const int fd = pipe->read_end;
  ASSERT_TRUE(loop.watch(fd, true, false, [](FdEvents) {}));
  pipe.reset();
  loop.unwatch(fd);
  loop.run_once(0ms);
  SUCCEED();
}

TEST(EventLoopTest, ThrowingTaskIsLoggedAndTheLoopKeepsGoing) {
  EventLoop loop;
  bool after = false;
  loop.post([] { throw std::runtime_error("boom"); });
  loop.add_timer(0ms, [] { throw 42; });
  loop.post([&] { after = true; });
  loop.run_once(0ms);
  EXPECT_TRUE(after);
}

TEST(EventLoopTest, InLoopThreadHoldsOnlyOnTheRunningThread) {
  EventLoop loop;
  EXPECT_TRUE(loop.in_loop_thread()) << "before run(), the owner may set up";
  std::promise<bool> inside;
  std::thread runner([&] { loop.run(); });
  loop.post([&] { inside.set_value(loop.in_loop_thread()); });
  auto future = inside.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(future.get());
  std::promise<void> started;
  loop.post([&] { started.set_value(); });
  started.get_future().wait();
  EXPECT_FALSE(loop.in_loop_thread());
  loop.stop();
  runner.join();
}

TEST(EventLoopTest, IdleLoopDoesNotSpin) {
  EventLoop loop;
  std::thread runner([&] { loop.run(); });
  std::this_thread::sleep_for(200ms);
  loop.stop();
  runner.join();
  EXPECT_LE(loop.wakeups(), 3U);
}

}  // namespace
}  // namespace recmesh::mqtt
