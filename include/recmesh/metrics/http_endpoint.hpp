#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "recmesh/config/schema.hpp"
#include "recmesh/metrics/registry.hpp"

namespace recmesh::metrics {

// The `metrics` block of every daemon's configuration.
struct MetricsSettings {
  bool enabled = false;               // serve GET /metrics
  std::string address = "127.0.0.1";  // loopback only: the endpoint has no authentication
  std::uint16_t port = 9464;          // 0 picks a free port (logged at start-up)

  bool operator==(const MetricsSettings&) const = default;
};

config::Schema<MetricsSettings> settings_schema();

// Serves GET /metrics with the registry's Prometheus text on a loopback address, from two
// worker threads of its own. Anything else is refused: other paths 404, other methods 405,
// request bodies 413, and cpp-httplib's own limits on request line and header size apply.
class HttpEndpoint {
 public:
  // Binds at once; throws Error(kUnavailable) when the address and port cannot be bound.
  HttpEndpoint(const Registry& registry, const MetricsSettings& settings);
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;
  ~HttpEndpoint();  // stops serving and joins the threads

  // The bound port (the chosen one when the settings said 0).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recmesh::metrics
