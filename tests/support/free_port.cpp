#include "free_port.hpp"

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "recmesh/core/loopback.hpp"

namespace recmesh::testing {

int free_tcp_port() {
  static std::mutex mutex;
  static std::vector<int> given;
  const std::lock_guard lock(mutex);
  return free_loopback_port(given);
}

bool accepts_tcp(int port) {
  return loopback_accepts(port);
}

bool wait_for_listener(int port, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (accepts_tcp(port)) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace recmesh::testing
