#include "sim/backbone_proxy.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/loopback.hpp"

namespace recmesh::sim {
namespace {

constexpr std::size_t kChunk = 16384;
constexpr std::size_t kMaxQueuedChunks = 256;  // stop reading a side whose peer lags this far

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

BackboneProxy::BackboneProxy(mqtt::EventLoop& loop, int listen_port, int target_port)
    : loop_(loop), target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = loopback_address(listen_port);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) {
      ::close(listen_fd_);
    }
    throw Error(ErrorCode::kInternal,
                fmt::format("backbone proxy cannot listen on 127.0.0.1:{}: {}", listen_port, why));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  auto watched = loop_.watch(listen_fd_, true, false, [this](mqtt::FdEvents) { on_accept(); });
  if (!watched) {
    ::close(listen_fd_);
    throw Error(ErrorCode::kInternal, watched.status().message);
  }
}

BackboneProxy::~BackboneProxy() {
  while (!links_.empty()) {
    close_link(links_.begin()->first);
  }
  loop_.unwatch(listen_fd_);
  ::close(listen_fd_);
}

void BackboneProxy::cut() {
  cut_ = true;
  std::vector<std::uint64_t> ids;
  for (const auto& [id, link] : links_) {
    ids.push_back(id);
  }
  for (const auto id : ids) {
    close_link(id);
  }
}

void BackboneProxy::restore() {
  cut_ = false;
}

void BackboneProxy::on_accept() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      return;
    }
    if (cut_) {
      ::close(fd);  // the link is down: the bridge sees its connection fail
      continue;
    }
    const int up = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in target = loopback_address(target_port_);
    if (up < 0 || (::connect(up, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0 &&
                   errno != EINPROGRESS)) {
      ::close(fd);
      if (up >= 0) {
        ::close(up);
      }
      continue;
    }
    set_nodelay(fd);
    set_nodelay(up);
    ++accepted_;
    const std::uint64_t id = next_id_++;
    auto link = std::make_unique<Link>();
    link->client.fd = fd;
    link->upstream.fd = up;
    links_.emplace(id, std::move(link));
    (void)loop_.watch(fd, true, false, [this, id](mqtt::FdEvents events) {
      if (events.writable) {
        on_writable(id, true);
      }
      if (events.readable || events.hangup || events.error) {
        on_readable(id, true);
      }
    });
    // Upstream: writable once connected.
    (void)loop_.watch(up, false, true, [this, id](mqtt::FdEvents events) {
      if (events.writable) {
        on_writable(id, false);
      }
      if (events.readable || events.hangup || events.error) {
        on_readable(id, false);
      }
    });
  }
}

void BackboneProxy::on_readable(std::uint64_t id, bool from_client) {
  const auto found = links_.find(id);
  if (found == links_.end()) {
    return;
  }
  Link& link = *found->second;
  Side& from = from_client ? link.client : link.upstream;
  Side& to = from_client ? link.upstream : link.client;
  if (to.outbox.size() >= kMaxQueuedChunks) {
    update_watch(id);
    return;
  }
  char buffer[kChunk];
  const ssize_t n = ::read(from.fd, buffer, sizeof(buffer));
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    loop_.post([this, id] { close_link(id); });
    (void)loop_.modify(from.fd, false, false);
    return;
  }
  if (n < 0) {
    return;
  }
  (from_client ? bytes_up_ : bytes_down_) += static_cast<std::uint64_t>(n);
  to.outbox.push_back({loop_.now() + delay_, std::string(buffer, static_cast<std::size_t>(n))});
  flush(id);
}

void BackboneProxy::on_writable(std::uint64_t id, bool to_client) {
  const auto found = links_.find(id);
  if (found == links_.end()) {
    return;
  }
  Link& link = *found->second;
  if (!to_client && !link.upstream_connected) {
    int error = 0;
    socklen_t len = sizeof(error);
    ::getsockopt(link.upstream.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      loop_.post([this, id] { close_link(id); });
      (void)loop_.modify(link.upstream.fd, false, false);
      (void)loop_.modify(link.client.fd, false, false);
      return;
    }
    link.upstream_connected = true;
  }
  flush(id);
}

void BackboneProxy::flush(std::uint64_t id) {
  const auto found = links_.find(id);
  if (found == links_.end()) {
    return;
  }
  Link& link = *found->second;
  const auto now = loop_.now();
  std::optional<mqtt::MonotonicClock::TimePoint> next_due;
  for (Side* side : {&link.client, &link.upstream}) {
    side->want_write = false;
    if (side == &link.upstream && !link.upstream_connected) {
      side->want_write = true;
      continue;
    }
    while (!side->outbox.empty()) {
      Chunk& chunk = side->outbox.front();
      if (chunk.due > now) {
        next_due = next_due ? std::min(*next_due, chunk.due) : chunk.due;
        break;
      }
      const ssize_t n = ::send(side->fd, chunk.bytes.data(), chunk.bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          side->want_write = true;
          break;
        }
        loop_.post([this, id] { close_link(id); });
        return;
      }
      chunk.bytes.erase(0, static_cast<std::size_t>(n));
      if (!chunk.bytes.empty()) {
        side->want_write = true;
        break;
      }
      side->outbox.pop_front();
    }
  }
  if (next_due && link.timer == 0) {
    link.timer = loop_.add_timer(*next_due - now, [this, id] {
      const auto again = links_.find(id);
      if (again != links_.end()) {
        again->second->timer = 0;
        flush(id);
      }
    });
  }
  update_watch(id);
}

void BackboneProxy::update_watch(std::uint64_t id) {
  const auto found = links_.find(id);
  if (found == links_.end()) {
    return;
  }
  Link& link = *found->second;
  const bool client_read = link.upstream.outbox.size() < kMaxQueuedChunks;
  const bool up_read = link.upstream_connected && link.client.outbox.size() < kMaxQueuedChunks;
  (void)loop_.modify(link.client.fd, client_read, link.client.want_write);
  (void)loop_.modify(link.upstream.fd, up_read, link.upstream.want_write);
}

void BackboneProxy::close_link(std::uint64_t id) {
  const auto found = links_.find(id);
  if (found == links_.end()) {
    return;
  }
  Link& link = *found->second;
  if (link.timer != 0) {
    loop_.cancel_timer(link.timer);
  }
  for (const int fd : {link.client.fd, link.upstream.fd}) {
    loop_.unwatch(fd);
    ::close(fd);
  }
  links_.erase(found);
}

}  // namespace recmesh::sim
