#include "secmgr/rabbitmq_auth_endpoint.hpp"

#include <atomic>
#include <httplib.h>
#include <map>
#include <mutex>
#include <set>
#include <sys/socket.h>
#include <thread>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/policy_matcher.hpp"

namespace recmesh::secmgr {
namespace {

constexpr std::size_t kWorkerThreads = 4;
constexpr std::chrono::seconds kIoTimeout{5};
constexpr std::string_view kTopicExchange = "amq.topic";
constexpr std::string_view kMqttQueuePrefix = "mqtt-";

std::vector<std::string_view> levels(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = text.find('/', start);
    out.push_back(text.substr(start, slash - start));
    if (slash == std::string_view::npos) {
      return out;
    }
    start = slash + 1;
  }
}

// What one identity may do on the central broker, as the last bundle said.
struct Permissions {
  std::vector<std::string> publish;
  std::vector<std::string> subscribe;
};

struct Decisions {
  std::map<std::string, Permissions, std::less<>> by_identity;  // identity key
  std::set<std::string, std::less<>> revoked;                   // identity keys
};

}  // namespace

bool filter_covers(std::string_view allowed, std::string_view filter) {
  const auto a = levels(allowed);
  const auto f = levels(filter);
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "#") {
      return true;
    }
    if (i >= f.size() || f[i] == "#") {
      return false;
    }
    if (a[i] == "+") {
      continue;
    }
    if (f[i] == "+" || f[i] != a[i]) {
      return false;
    }
  }
  return a.size() == f.size();
}

std::string mqtt_topic_of_routing_key(std::string_view routing_key) {
  std::string out(routing_key);
  for (char& c : out) {
    if (c == '.') {
      c = '/';
    } else if (c == '*') {
      c = '+';
    }
  }
  return out;
}

struct RabbitmqAuthEndpoint::Impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> finished{false};
  int port = 0;
  std::string vhost;
  log::Logger log;
  metrics::Counter& allowed;
  metrics::Counter& denied;
  mutable std::mutex mutex;
  std::shared_ptr<const Decisions> decisions = std::make_shared<Decisions>();  // guarded by mutex

  Impl(std::string v, log::Logger l, metrics::Registry& metrics)
      : vhost(std::move(v)),
        log(std::move(l)),
        allowed(metrics.counter("recmesh_secmgr_rabbitmq_decisions_total",
                                "RabbitMQ authorisation answers", {{"answer", "allow"}})),
        denied(metrics.counter("recmesh_secmgr_rabbitmq_decisions_total",
                               "RabbitMQ authorisation answers", {{"answer", "deny"}})) {}

  std::shared_ptr<const Decisions> current() const {
    std::lock_guard lock(mutex);
    return decisions;
  }

  // The permissions of a username (a certificate CN), or null when it has none.
  const Permissions* permissions_of(const Decisions& d, const std::string& username) const {
    const std::optional<pki::Identity> identity = pki::parse_common_name(username);
    if (!identity) {
      return nullptr;
    }
    const std::string key = policy::client_identity_of(*identity).key();
    if (d.revoked.contains(key)) {
      return nullptr;
    }
    const auto found = d.by_identity.find(key);
    return found == d.by_identity.end() ? nullptr : &found->second;
  }

  bool decide(const std::string& path, const httplib::Request& request) const {
    const std::shared_ptr<const Decisions> d = current();
    const auto param = [&request](const char* key) {
      return request.has_param(key) ? request.get_param_value(key) : std::string();
    };
    const Permissions* permissions = permissions_of(*d, param("username"));
    if (permissions == nullptr) {
      return false;
    }
    if (path == "/auth/user") {
      return true;
    }
    if (param("vhost") != vhost) {
      return false;
    }
    if (path == "/auth/vhost") {
      return true;
    }
    const std::string resource = param("resource");
    const std::string name = param("name");
    const std::string permission = param("permission");
    if (path == "/auth/resource") {
      if (resource == "exchange") {
        return name == kTopicExchange && (permission == "read" || permission == "write");
      }
      return resource == "queue" && name.starts_with(kMqttQueuePrefix);
    }
    // /auth/topic
    if (resource != "topic" || name != kTopicExchange) {
      return false;
    }
    const std::string topic = mqtt_topic_of_routing_key(param("routing_key"));
    if (permission == "write") {
      return std::any_of(permissions->publish.begin(), permissions->publish.end(),
                         [&](const std::string& f) { return policy::filter_matches(f, topic); });
    }
    if (permission == "read") {
      return std::any_of(permissions->subscribe.begin(), permissions->subscribe.end(),
                         [&](const std::string& f) { return filter_covers(f, topic); });
    }
    return false;
  }
};

RabbitmqAuthEndpoint::RabbitmqAuthEndpoint(const std::string& address, int port, std::string vhost,
                                           log::Logger logger, metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(std::move(vhost), std::move(logger), metrics)) {
  httplib::Server& server = impl_->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server.set_payload_max_length(std::size_t{16} * 1024);
  server.set_read_timeout(kIoTimeout);
  server.set_write_timeout(kIoTimeout);
  server.set_socket_options([](int socket) {
    const int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  Impl* impl = impl_.get();
  for (const char* path : {"/auth/user", "/auth/vhost", "/auth/resource", "/auth/topic"}) {
    const auto handler = [impl, path](const httplib::Request& request,
                                      httplib::Response& response) {
      const bool allow = impl->decide(path, request);
      (allow ? impl->allowed : impl->denied).increment();
      response.set_content(allow ? "allow" : "deny", "text/plain");
    };
    server.Get(path, handler);
    server.Post(path, handler);
  }
  impl_->port = port == 0 ? server.bind_to_any_port(address)
                          : (server.bind_to_port(address, port) ? port : -1);
  if (impl_->port <= 0) {
    throw Error(ErrorCode::kUnavailable,
                fmt::format("cannot listen for RabbitMQ on {} port {}", address, port));
  }
  impl_->thread = std::thread([impl] {
    impl->server.listen_after_bind();
    impl->finished = true;
  });
}

RabbitmqAuthEndpoint::~RabbitmqAuthEndpoint() {
  while (!impl_->finished) {
    impl_->server.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->thread.join();
}

void RabbitmqAuthEndpoint::update(const policy::PolicyBundle& bundle) {
  auto next = std::make_shared<Decisions>();
  for (const policy::Grant& grant : bundle.grants) {
    Permissions& p = next->by_identity[grant.identity];
    p.publish.insert(p.publish.end(), grant.publish.begin(), grant.publish.end());
    p.subscribe.insert(p.subscribe.end(), grant.subscribe.begin(), grant.subscribe.end());
  }
  next->revoked.insert(bundle.revocations.identities.begin(), bundle.revocations.identities.end());
  std::lock_guard lock(impl_->mutex);
  impl_->decisions = std::move(next);
}

int RabbitmqAuthEndpoint::port() const {
  return impl_->port;
}

}  // namespace recmesh::secmgr
