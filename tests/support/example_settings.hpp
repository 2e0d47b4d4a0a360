#pragma once

// A daemon's settings declared as a real daemon declares them: the example exercised by the
// configuration tests, the fuzz target and the example daemon. Header-only so that the fuzz
// build, which has no test support library, can use it too.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "recmesh/config/schema.hpp"
#include "recmesh/config/tls_client.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/metrics/http_endpoint.hpp"

namespace recmesh::testing {

enum class ExampleMode { kActive, kStandby };

struct ExampleSettings {
  std::string site = "rec-1";                                    // community this instance serves
  ExampleMode mode = ExampleMode::kActive;                       // whether it publishes
  std::chrono::milliseconds publish_interval{5000};              // time between two publications
  bool publish_retain = false;                                   // MQTT retain flag of publications
  std::vector<std::string> publish_topics{"metrics", "events"};  // topic classes published
  std::string publish_transport = "tcp";                         // tcp or websocket
  std::chrono::seconds session_expiry{3600};                     // MQTT session expiry
  config::ByteSize buffer_limit = config::ByteSize::mebibytes(64);  // cap of the buffer
  std::filesystem::path buffer_directory;  // where the buffer lives; empty: in memory
  double max_power_kw = 6.0;               // contracted power of the site
  std::int32_t priority = 0;               // tie-break between instances
  config::TlsClientSettings broker;        // the local broker
  log::LogSettings logging;
  metrics::MetricsSettings metrics;
};

inline config::Schema<ExampleSettings> example_schema() {
  using namespace std::chrono_literals;
  using S = ExampleSettings;
  config::Schema<S> s;
  s.field("site", &S::site, "Community this instance serves").non_empty();
  s.field("mode", &S::mode, "Whether the instance publishes",
          {{"active", ExampleMode::kActive}, {"standby", ExampleMode::kStandby}});
  s.field("publish.interval", &S::publish_interval, "Time between two publications")
      .range(100ms, 1h);
  s.field("publish.retain", &S::publish_retain, "MQTT retain flag of publications");
  s.field("publish.topics", &S::publish_topics, "Topic classes published").non_empty();
  s.field("publish.transport", &S::publish_transport, "How the broker is reached")
      .one_of({"tcp", "websocket"});
  s.field("session_expiry", &S::session_expiry, "MQTT session expiry").range(0s, 24h);
  s.field("buffer.limit", &S::buffer_limit, "Cap of the message buffer")
      .range(config::ByteSize::kibibytes(64), config::ByteSize::gibibytes(4));
  s.field("buffer.directory", &S::buffer_directory,
          "Directory of the persistent buffer; empty keeps it in memory")
      .existing_directory();
  s.field("max_power_kw", &S::max_power_kw, "Contracted power of the site in kW")
      .range(0.0, 1000.0);
  s.field("priority", &S::priority, "Tie-break between instances of one site").range(-10, 10);
  s.block("broker", &S::broker, config::tls_client_schema());
  s.block("logging", &S::logging, log::settings_schema());
  s.block("metrics", &S::metrics, metrics::settings_schema());
  s.validate([](const S& settings, config::Validation& v) {
    if (settings.publish_interval >= settings.session_expiry) {
      v.fail("publish.interval",
             "must be shorter than session_expiry (" +
                 config::format_duration_ms(settings.session_expiry.count() * 1000) + ")");
    }
  });
  return s;
}

}  // namespace recmesh::testing
