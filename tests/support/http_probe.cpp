#include "http_probe.hpp"

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

#include "recmesh/core/loopback.hpp"

namespace recmesh::testing {

HttpReply http_exchange(int port, const std::string& request, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("socket failed");
  }
  sockaddr_in addr = loopback_address(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  // The server may answer and close before the whole request is sent (request too large).
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string raw;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd wait{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&wait, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    std::array<char, 4096> buffer{};
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n <= 0) {
      break;
    }
    raw.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  HttpReply reply;
  const std::size_t end_of_head = raw.find("\r\n\r\n");
  reply.head = raw.substr(0, end_of_head);
  if (end_of_head != std::string::npos) {
    reply.body = raw.substr(end_of_head + 4);
  }
  if (raw.starts_with("HTTP/1.1 ") && raw.size() >= 12) {
    reply.status = std::stoi(raw.substr(9, 3));
  }
  return reply;
}

HttpReply http_get(int port, const std::string& path) {
  return http_exchange(port,
                       "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

}  // namespace recmesh::testing
