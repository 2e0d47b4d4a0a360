#include "recmesh/metrics/http_endpoint.hpp"

#include <atomic>
#include <chrono>
#include <httplib.h>
#include <sys/socket.h>
#include <thread>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh::metrics {
namespace {

constexpr std::size_t kWorkerThreads = 2;
constexpr std::chrono::seconds kIoTimeout{5};

}  // namespace

struct HttpEndpoint::Impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> finished{false};
  int port = 0;
};

HttpEndpoint::HttpEndpoint(const Registry& registry, const MetricsSettings& settings)
    : impl_(std::make_unique<Impl>()) {
  httplib::Server& server = impl_->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server.set_payload_max_length(0);
  server.set_read_timeout(kIoTimeout);
  server.set_write_timeout(kIoTimeout);
  server.set_keep_alive_max_count(1);
  // Only SO_REUSEADDR: cpp-httplib's default adds SO_REUSEPORT, which would let a second daemon
  // share the port and answer half of the scrapes.
  server.set_socket_options([](int socket) {
    const int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_pre_routing_handler([](const httplib::Request& request, httplib::Response& response) {
    if (request.path != "/metrics") {
      response.status = 404;
      response.set_content("not found; metrics are at /metrics\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (request.method != "GET" && request.method != "HEAD") {
      response.status = 405;
      response.set_header("Allow", "GET, HEAD");
      response.set_content("method not allowed\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry.render_prometheus(), std::string(kPrometheusContentType));
  });
  if (settings.port == 0) {
    impl_->port = server.bind_to_any_port(settings.address);
  } else if (server.bind_to_port(settings.address, settings.port)) {
    impl_->port = settings.port;
  } else {
    impl_->port = -1;
  }
  if (impl_->port <= 0) {
    throw Error(ErrorCode::kUnavailable, fmt::format("cannot listen for metrics on {} port {}",
                                                     settings.address, settings.port));
  }
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->server.listen_after_bind();
    impl->finished = true;
  });
}

HttpEndpoint::~HttpEndpoint() {
  // stop() is a no-op until the server thread has entered its accept loop, so repeat it until
  // the thread is out.
  while (!impl_->finished) {
    impl_->server.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->thread.join();
}

int HttpEndpoint::port() const {
  return impl_->port;
}

}  // namespace recmesh::metrics
