#include "tcp_proxy.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "recmesh/core/loopback.hpp"

namespace recmesh::testing {
namespace {

constexpr int kBufferBytes = 65536;
constexpr int kPollMs = 100;

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// A blocking connect to 127.0.0.1:port; -1 when nothing listens.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  const sockaddr_in address = loopback_address(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  set_nodelay(fd);
  return fd;
}

}  // namespace

TcpProxy::TcpProxy(int target_port, int listen_port) : target_port_(target_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address = loopback_address(listen_port);
  socklen_t length = sizeof(address);
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listener_, 64) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string reason = std::to_string(errno);
    if (listener_ >= 0) {
      ::close(listener_);
    }
    throw std::runtime_error("TcpProxy: cannot listen on 127.0.0.1 (errno " + reason + ")");
  }
  port_ = ntohs(address.sin_port);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(listener_);
    throw std::runtime_error("TcpProxy: pipe2 failed");
  }
  wake_read_ = pipe_fds[0];
  wake_write_ = pipe_fds[1];
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  wake();
  thread_.join();
  for (Pair& pair : pairs_) {
    close_pair(pair);
  }
  ::close(listener_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void TcpProxy::cut(Cut mode) {
  mode_ = static_cast<int>(mode);
  wake();
}

void TcpProxy::restore() {
  mode_ = kFlowing;
  wake();
}

void TcpProxy::wake() {
  const char byte = 0;
  [[maybe_unused]] const auto written = ::write(wake_write_, &byte, 1);
}

void TcpProxy::close_pair(Pair& pair) {
  if (pair.client >= 0) {
    ::close(pair.client);
    pair.client = -1;
    open_.fetch_sub(1);
  }
  if (pair.server >= 0) {
    ::close(pair.server);
    pair.server = -1;
  }
}

bool TcpProxy::relay(int from, int to) {
  char buffer[kBufferBytes];
  const ssize_t n = ::read(from, buffer, sizeof(buffer));
  if (n <= 0) {
    return false;
  }
  if (to < 0) {
    return true;  // blackholed: read and forget
  }
  ssize_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(to, buffer + done, static_cast<std::size_t>(n - done));
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    done += w;
  }
  bytes_.fetch_add(static_cast<std::uint64_t>(n));
  return true;
}

void TcpProxy::run() {
  while (!stop_) {
    const int mode = mode_.load();
    if (mode == static_cast<int>(Cut::kReset)) {
      for (Pair& pair : pairs_) {
        close_pair(pair);
      }
      pairs_.clear();
    }
    std::vector<pollfd> fds;
    fds.push_back({wake_read_, POLLIN, 0});
    fds.push_back({listener_, POLLIN, 0});
    for (const Pair& pair : pairs_) {
      fds.push_back({pair.client, POLLIN, 0});
      fds.push_back({pair.server, static_cast<short>(pair.server >= 0 ? POLLIN : 0), 0});
    }
    const std::size_t polled = pairs_.size();  // accept() below may add one
    if (::poll(fds.data(), fds.size(), kPollMs) < 0) {
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      char drain[64];
      while (::read(wake_read_, drain, sizeof(drain)) > 0) {
      }
    }
    if ((fds[1].revents & POLLIN) != 0) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        accepted_.fetch_add(1);
        if (mode_.load() == static_cast<int>(Cut::kReset)) {
          ::close(client);
        } else {
          set_nodelay(client);
          // Blackholed: no route to the server; the client waits for an answer that never comes.
          const int server = mode_.load() == kFlowing ? connect_to(target_port_) : -1;
          if (mode_.load() == kFlowing && server < 0) {
            ::close(client);  // nothing listens behind: refuse, as the server would
          } else {
            pairs_.push_back({client, server});
            open_.fetch_add(1);
          }
        }
      }
    }
    const bool blackholed = mode_.load() == static_cast<int>(Cut::kBlackhole);
    for (std::size_t i = 0; i < polled; ++i) {
      Pair& pair = pairs_[i];
      const short client_events = fds[2 + 2 * i].revents;
      const short server_events = fds[3 + 2 * i].revents;
      bool ok = true;
      if (pair.client >= 0 && (client_events & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ok = relay(pair.client, blackholed ? -1 : pair.server);
      }
      if (ok && pair.server >= 0 && (server_events & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ok = relay(pair.server, blackholed ? -1 : pair.client);
      }
      if (!ok || (pair.server < 0 && !blackholed)) {
        close_pair(pair);
      }
    }
    std::erase_if(pairs_, [](const Pair& pair) { return pair.client < 0; });
  }
}

}  // namespace recmesh::testing
