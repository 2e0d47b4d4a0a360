#include "recmesh/core/loopback.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <fstream>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace recmesh {
namespace {

int first_ephemeral_port() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return in >> low && low > 0 ? low : 32768;
}

// A socket listening on 127.0.0.1:port for as long as it lives.
class Listener {
 public:
  explicit Listener(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    const sockaddr_in address = loopback_address(port);
    listening_ = fd_ >= 0 &&
                 ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 &&
                 ::listen(fd_, 4) == 0;
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  bool listening() const { return listening_; }

 private:
  int fd_;
  bool listening_ = false;
};

TEST(LoopbackTest, AddressIsOneTwoSevenZeroZeroOneInNetworkOrder) {
  const sockaddr_in address = loopback_address(20123);
  EXPECT_EQ(address.sin_family, AF_INET);
  EXPECT_EQ(ntohs(address.sin_port), 20123);
  EXPECT_EQ(ntohl(address.sin_addr.s_addr), 0x7f000001U);
}

TEST(LoopbackTest, FreePortsLieBelowTheEphemeralRangeAndAreNeverGivenTwice) {
  std::vector<int> taken;
  for (int i = 0; i < 50; ++i) {
    const int port = free_loopback_port(taken);
    EXPECT_GE(port, 20000);
    EXPECT_LT(port, first_ephemeral_port());
    EXPECT_TRUE(loopback_bindable(port));
  }
  ASSERT_EQ(taken.size(), 50U);
  std::vector<int> sorted = taken;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
}

TEST(LoopbackTest, APortInUseIsNeitherBindableNorFreeAndAcceptsConnections) {
  std::vector<int> taken;
  const int port = free_loopback_port(taken);
  EXPECT_FALSE(loopback_accepts(port));
  {
    const Listener listener(port);
    ASSERT_TRUE(listener.listening());
    EXPECT_FALSE(loopback_bindable(port));
    EXPECT_TRUE(loopback_accepts(port));
    // Taken by the listener, so never handed out while it lives.
    std::vector<int> others;
    for (int i = 0; i < 200; ++i) {
      EXPECT_NE(free_loopback_port(others), port);
    }
  }
}

}  // namespace
}  // namespace recmesh
