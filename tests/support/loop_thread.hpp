#pragma once

#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <thread>
#include <type_traits>
#include <utility>

#include "recmesh/mqtt/event_loop.hpp"

namespace recmesh::testing {

// An EventLoop on its own thread, for tests that drive daemons living on a loop:
//   LoopThread loop;
//   loop.run([&] { gateway = std::make_unique<Gateway>(loop.loop(), config); gateway->start(); });
//   ASSERT_TRUE(loop.eventually([&] { return gateway->connected(); }));
// Objects created on the loop must be destroyed on it (or after stop()).
class LoopThread {
 public:
  LoopThread() : thread_([this] { loop_.run(); }) {}
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  ~LoopThread() { stop(); }

  mqtt::EventLoop& loop() { return loop_; }

  // Stops the loop and joins its thread; run() then calls on the caller's thread.
  void stop() {
    if (thread_.joinable()) {
      loop_.stop();
      thread_.join();
    }
  }

  // Runs `f` on the loop thread and returns its result. A test that waits a minute for it is
  // broken beyond repair: abort rather than leave `f` running on a dead stack.
  template <typename F>
  auto run(F&& f) -> std::invoke_result_t<F&> {
    if (!thread_.joinable()) {
      return f();
    }
    using R = std::invoke_result_t<F&>;
    std::packaged_task<R()> task(std::forward<F>(f));
    auto future = task.get_future();
    loop_.post([&task] { task(); });
    if (future.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      std::abort();
    }
    return future.get();
  }

  // Polls `predicate` on the loop until it holds; false after `timeout`.
  template <typename Predicate>
  bool eventually(Predicate predicate,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!run(predicate)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  // Calls `stop(done)` on the loop for an object with an asynchronous stop, and waits for done.
  template <typename Stoppable>
  bool stop_and_wait(Stoppable& object,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto stopped = std::make_shared<std::promise<void>>();
    run([&] {
      object.stop([stopped] { stopped->set_value(); });
      return 0;
    });
    return stopped->get_future().wait_for(timeout) == std::future_status::ready;
  }

 private:
  mqtt::EventLoop loop_;
  std::thread thread_;
};

}  // namespace recmesh::testing
