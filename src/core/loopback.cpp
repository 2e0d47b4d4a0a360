#include "recmesh/core/loopback.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh {
namespace {

enum class Probe { kBind, kConnect };

bool probe(int port, Probe how) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  const sockaddr_in addr = loopback_address(port);
  const auto* target = reinterpret_cast<const sockaddr*>(&addr);
  const bool ok = (how == Probe::kBind ? ::bind(fd, target, sizeof(addr))
                                       : ::connect(fd, target, sizeof(addr))) == 0;
  ::close(fd);
  return ok;
}

// The first port of the kernel's ephemeral range (net.ipv4.ip_local_port_range).
int first_ephemeral_port() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return in >> low && low > 0 ? low : 32768;
}

constexpr int kLowestPort = 20000;

}  // namespace

sockaddr_in loopback_address(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool loopback_bindable(int port) {
  return probe(port, Probe::kBind);
}

bool loopback_accepts(int port) {
  return probe(port, Probe::kConnect);
}

int free_loopback_port(std::vector<int>& taken) {
  static std::mutex mutex;
  static std::mt19937 random{std::random_device{}()};
  const int high = first_ephemeral_port() - 1;
  if (high > kLowestPort) {
    std::uniform_int_distribution<int> pick(kLowestPort, high);
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const int port = [&] {
        const std::lock_guard lock(mutex);
        return pick(random);
      }();
      if (std::find(taken.begin(), taken.end(), port) == taken.end() && loopback_bindable(port)) {
        taken.push_back(port);
        return port;
      }
    }
  }
  throw Error(ErrorCode::kInternal,
              fmt::format("no free TCP port on 127.0.0.1 between {} and {}", kLowestPort, high));
}

}  // namespace recmesh
