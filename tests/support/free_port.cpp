#include "free_port.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <set>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "recmesh/core/loopback.hpp"

namespace recmesh::testing {
int free_tcp_port() {
  // Never hand out the same port twice in one process, even if the first was not bound yet.
  static std::set<int> given;
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback_address(0);
    socklen_t length = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      if (fd >= 0) {
        ::close(fd);
      }
      continue;
    }
    ::close(fd);
    const int port = ntohs(addr.sin_port);
    if (given.insert(port).second) {
      return port;
    }
  }
  throw std::runtime_error("no free TCP port on 127.0.0.1");
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
