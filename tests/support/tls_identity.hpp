#pragma once

// One identity of a test PKI as a client sees it: the files it connects with, its MqttClient
// options, and the endpoint sections of a `recmesh bridge` YAML. Header-only, so that the
// benchmarks use the same pieces as the integration tests without linking the test library.

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/pki/pki.hpp"

namespace recmesh::testing {

struct TlsFiles {
  std::filesystem::path cafile;
  std::filesystem::path cert;  // leaf, then intermediates
  std::filesystem::path key;
};

inline TlsFiles tls_files(const pki::IssuedCertificate& issued) {
  return {issued.files.cafile, issued.files.chain, issued.files.key};
}

inline pki::IssueRequest issue_request(pki::IdentityKind kind, std::string rec, std::string member,
                                       std::string name) {
  pki::IssueRequest request;
  request.identity = pki::Identity::make(kind, std::move(rec), std::move(member), std::move(name));
  return request;
}

// A client of 127.0.0.1:`port` over mutual TLS with `tls`: 60,000 pending messages, reconnecting
// after 100 ms up to 500 ms.
inline mqtt::MqttClientOptions tls_client_options(const std::string& client_id, int port,
                                                  const TlsFiles& tls, bool clean_session) {
  using namespace std::chrono_literals;
  mqtt::MqttClientOptions options;
  options.client_id = client_id;
  options.port = port;
  options.cafile = tls.cafile;
  options.certfile = tls.cert;
  options.keyfile = tls.key;
  options.clean_session = clean_session;
  options.max_pending_messages = 60000;
  options.reconnect.initial = 100ms;
  options.reconnect.max = 500ms;
  return options;
}

// The `local:` or `central:` section of a bridge YAML: 127.0.0.1:`port` with `tls`.
inline std::string bridge_endpoint_yaml(std::string_view section, int port, const TlsFiles& tls) {
  return fmt::format(
      "{}:\n  host: 127.0.0.1\n  port: {}\n  cafile: {}\n  certfile: {}\n  keyfile: {}\n", section,
      port, tls.cafile.string(), tls.cert.string(), tls.key.string());
}

}  // namespace recmesh::testing
