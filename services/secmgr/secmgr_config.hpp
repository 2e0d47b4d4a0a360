#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "recmesh/config/byte_size.hpp"
#include "recmesh/config/schema.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/metrics/http_endpoint.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::secmgr {

// `recmesh secmgr --config F` (docs/secmgr.md, "Configuration"). Every key has a default except
// pki.dir.
struct SecmgrSettings {
  std::filesystem::path pki_dir;  // the PKI the manager issues from and revokes in
  // File (mode 0600) holding the CA passphrase; empty: $RECMESH_PKI_PASSPHRASE.
  std::filesystem::path pki_passphrase_file;
  std::filesystem::path database = "secmgr.db";  // registry, custom rules and audit log

  std::string api_address = "127.0.0.1";  // the REST API listens here (loopback by default)
  std::uint16_t api_port = 8443;          // 0 picks a free port (logged, and see api.port_file)
  std::filesystem::path api_port_file;    // the bound port is written here; empty: not written
  // The API's server certificate and key (EMS CA, serverAuth). Empty: issued/ems_secmgr-api/ in
  // the PKI, issued at start-up when absent.
  std::filesystem::path api_certfile;
  std::filesystem::path api_keyfile;
  config::ByteSize api_max_body = config::ByteSize::kibibytes(256);  // larger bodies get 413
  std::chrono::milliseconds api_io_timeout{5000};  // read and write timeout of one request
  std::int32_t api_threads = 4;                    // requests served at once

  // The manager's MQTT client identity ems_secmgr, for the broker connectors. Empty:
  // issued/ems_secmgr/ in the PKI, issued at start-up when absent.
  std::filesystem::path connector_certfile;
  std::filesystem::path connector_keyfile;
  std::chrono::milliseconds connector_timeout{5000};  // one push to one broker
  // Every broker's policy is pushed again this often (and at start-up); 0: at start-up only.
  std::chrono::milliseconds connector_resync_interval{60000};

  // Quota of every registered device in guard bundles (0: no limit); the gateway, bridges and
  // services are not limited.
  std::int32_t device_publish_per_second = 0;
  std::int32_t device_max_retained = 0;
  config::ByteSize device_max_payload{0};
  std::int32_t device_disconnect_after_violations = 0;

  bool rabbitmq_auth_enabled = false;               // serve rabbitmq_auth_backend_http
  std::string rabbitmq_auth_address = "127.0.0.1";  // loopback only: the endpoint has no TLS
  std::uint16_t rabbitmq_auth_port = 8089;          // 0 picks a free port
  std::string rabbitmq_auth_vhost = "/";            // the only virtual host allowed

  log::LogSettings logging;
  metrics::MetricsSettings metrics;
};

config::Schema<SecmgrSettings> secmgr_schema();

// The device quota of the settings, as bundles carry it.
policy::Quota device_quota(const SecmgrSettings& settings);

// Files derived from pki.dir where the settings leave them empty.
std::filesystem::path api_certfile(const SecmgrSettings& settings);
std::filesystem::path api_keyfile(const SecmgrSettings& settings);
std::filesystem::path connector_certfile(const SecmgrSettings& settings);
std::filesystem::path connector_keyfile(const SecmgrSettings& settings);

// Common names of the manager's own certificates.
inline constexpr std::string_view kApiServerName = "secmgr-api";  // ems_secmgr-api
inline constexpr std::string_view kConnectorName = "secmgr";      // ems_secmgr

}  // namespace recmesh::secmgr
