#include "recmesh/core/loopback.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
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

// The ports this process handed out, and a claim on each that the user's other processes see: a
// one-byte lock at offset `port` of one file in the temporary directory, held as long as the
// process lives. A port between its pick and its bind is invisible to a bind probe; without the
// claim two processes starting brokers at the same time could both pick it.
class PortClaims {
 public:
  // A candidate in [low, high], at random.
  int random_port(int low, int high) {
    const std::lock_guard lock(mutex_);
    follow_fork();
    return std::uniform_int_distribution<int>(low, high)(random_);
  }

  // False when this process or another one already claimed `port`.
  bool claim(int port) {
    const std::lock_guard lock(mutex_);
    follow_fork();
    if (mine_.contains(port)) {
      return false;
    }
    if (fd_ >= 0) {
      struct flock range {};
      range.l_type = F_WRLCK;
      range.l_whence = SEEK_SET;
      range.l_start = port;
      range.l_len = 1;
      if (::fcntl(fd_, F_OFD_SETLK, &range) != 0) {
        if (errno == EAGAIN || errno == EACCES) {
          return false;  // another process holds it
        }
        // Locks do not work on this file system: claims within this process only, as when the
        // file cannot be opened (refusing every port would leave no port at all).
        ::close(fd_);
        fd_ = -1;
      }
    }
    mine_.insert(port);
    return true;
  }

 private:
  // A forked child would share its parent's open file, and so its locks, and draw the same
  // random ports: it opens the file itself and seeds its own generator.
  void follow_fork() {
    if (owner_ == ::getpid()) {
      return;
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
    owner_ = ::getpid();
    mine_.clear();
    random_.seed(std::random_device{}());
    fd_ = open_claims_file();
  }

  // The user's own file, never through a link; -1 (claims within this process only) otherwise.
  static int open_claims_file() {
    std::error_code error;
    const std::filesystem::path dir = std::filesystem::temp_directory_path(error);
    if (error) {
      return -1;
    }
    const std::string path = (dir / fmt::format("recmesh-loopback-ports-{}", ::getuid())).string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      return -1;
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != ::getuid()) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  std::mutex mutex_;
  pid_t owner_ = 0;
  int fd_ = -1;
  std::mt19937 random_;
  std::set<int> mine_;
};

PortClaims& port_claims() {
  static PortClaims claims;
  return claims;
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

int free_loopback_port(std::vector<int>& taken) {
  const int high = first_ephemeral_port() - 1;
  if (high > kLowestPort) {
    PortClaims& claims = port_claims();
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const int port = claims.random_port(kLowestPort, high);
      if (std::find(taken.begin(), taken.end(), port) == taken.end() && loopback_bindable(port) &&
          claims.claim(port)) {
        taken.push_back(port);
        return port;
      }
    }
  }
  throw Error(ErrorCode::kInternal,
              fmt::format("no free TCP port on 127.0.0.1 between {} and {}", kLowestPort, high));
}

}  // namespace recmesh
