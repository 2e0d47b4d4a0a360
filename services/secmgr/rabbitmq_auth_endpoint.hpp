#pragma once

#include <memory>
#include <string>

#include "recmesh/log/logger.hpp"
#include "recmesh/metrics/registry.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::secmgr {

// RabbitMQ's rabbitmq_auth_backend_http, served for clustered central brokers
// (docs/secmgr.md, "RabbitMQ"): GET or POST /auth/user, /auth/vhost, /auth/resource and
// /auth/topic answer `allow` or `deny` from the central broker's policy. The MQTT plugin's
// usernames are certificate CNs (ssl_cert_login); topics are its routing keys (`/` <-> `.`,
// `+` <-> `*`). Loopback only, plain HTTP, as RabbitMQ calls it from the same host.
class RabbitmqAuthEndpoint {
 public:
  // Binds at once (port 0 picks a free one); throws Error(kUnavailable) when it cannot.
  RabbitmqAuthEndpoint(const std::string& address, int port, std::string vhost, log::Logger logger,
                       metrics::Registry& metrics);
  RabbitmqAuthEndpoint(const RabbitmqAuthEndpoint&) = delete;
  RabbitmqAuthEndpoint& operator=(const RabbitmqAuthEndpoint&) = delete;
  ~RabbitmqAuthEndpoint();

  // Decisions follow `bundle` from now on (until then, everything is denied).
  void update(const policy::PolicyBundle& bundle);
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether every topic `filter` can match is matched by `allowed` (MQTT filters): a
// subscription RabbitMQ may bind without a per-message check.
bool filter_covers(std::string_view allowed, std::string_view filter);

// RabbitMQ routing key (as its MQTT plugin forms it) -> MQTT topic or filter.
std::string mqtt_topic_of_routing_key(std::string_view routing_key);

}  // namespace recmesh::secmgr
