#include "recmesh/metrics/http_endpoint.hpp"

namespace recmesh::metrics {

config::Schema<MetricsSettings> settings_schema() {
  config::Schema<MetricsSettings> s;
  s.field("enabled", &MetricsSettings::enabled, "Serve Prometheus metrics at GET /metrics");
  s.field("address", &MetricsSettings::address,
          "Loopback address to listen on (the endpoint has no authentication)")
      .one_of({"127.0.0.1", "::1"});
  s.field("port", &MetricsSettings::port, "TCP port to listen on; 0 picks a free port")
      .range(0, 65535);
  return s;
}

}  // namespace recmesh::metrics
