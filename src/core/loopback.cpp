#include "recmesh/core/loopback.hpp"

#include <arpa/inet.h>
#include <cstdint>
#include <sys/socket.h>
#include <unistd.h>

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

}  // namespace recmesh
