#include "secmgr/secmgr_config.hpp"

#include <arpa/inet.h>

#include "recmesh/daemon/daemon_runner.hpp"

namespace recmesh::secmgr {
namespace {

namespace fs = std::filesystem;

fs::path issued_file(const SecmgrSettings& settings, std::string_view name, std::string_view file) {
  return settings.pki_dir / "issued" / ("ems_" + std::string(name)) / file;
}

bool is_loopback(const std::string& address) {
  in_addr v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  return address == "::1";
}

bool is_address(const std::string& address) {
  unsigned char buffer[16];
  return ::inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
         ::inet_pton(AF_INET6, address.c_str(), buffer) == 1;
}

}  // namespace

config::Schema<SecmgrSettings> secmgr_schema() {
  using namespace std::chrono_literals;
  using S = SecmgrSettings;
  config::Schema<S> s;
  s.field("pki.dir", &S::pki_dir, "PKI directory the manager issues from and revokes in")
      .required()
      .existing_directory();
  s.field("pki.passphrase_file", &S::pki_passphrase_file,
          "File (mode 0600) with the CA passphrase; empty: $RECMESH_PKI_PASSPHRASE")
      .existing_file();
  s.field("database", &S::database, "SQLite file of the registry, custom rules and audit log")
      .non_empty();
  s.field("api.address", &S::api_address, "Address the HTTPS API listens on").non_empty();
  s.field("api.port", &S::api_port, "TCP port of the HTTPS API; 0 picks a free one");
  s.field("api.port_file", &S::api_port_file,
          "File the bound API port is written to; empty: not written");
  s.field("api.certfile", &S::api_certfile,
          "Server chain of the API (EMS CA); empty: issued/ems_secmgr-api/chain.pem, issued at "
          "start-up when absent");
  s.field("api.keyfile", &S::api_keyfile,
          "Server key of the API; empty: issued/ems_secmgr-api/key.pem");
  s.field("api.max_body", &S::api_max_body, "Largest request body; larger ones get 413")
      .range(config::ByteSize::kibibytes(1), config::ByteSize::mebibytes(16));
  s.field("api.io_timeout", &S::api_io_timeout, "Read and write timeout of one request")
      .range(100ms, 5min);
  s.field("api.threads", &S::api_threads, "Requests served at once").range(1, 64);
  s.field("connectors.certfile", &S::connector_certfile,
          "Client chain of ems_secmgr for the broker connectors; empty: "
          "issued/ems_secmgr/chain.pem, issued at start-up when absent");
  s.field("connectors.keyfile", &S::connector_keyfile,
          "Client key of ems_secmgr; empty: issued/ems_secmgr/key.pem");
  s.field("connectors.timeout", &S::connector_timeout, "Time allowed for one push to one broker")
      .range(100ms, 5min);
  s.field("connectors.resync_interval", &S::connector_resync_interval,
          "Push every broker's policy again this often (and at start-up); 0: at start-up only")
      .range(0ms, 24h);
  s.field("device_quota.publish_per_second", &S::device_publish_per_second,
          "Publishes per second each device may make (bursts of one second's worth); 0: no limit")
      .range(0, 1000000);
  s.field("device_quota.max_retained", &S::device_max_retained,
          "Topics holding a retained message of one device; 0: no limit")
      .range(0, 1000000);
  s.field("device_quota.max_payload", &S::device_max_payload,
          "Largest payload a device may publish; 0: no limit")
      .range(config::ByteSize{0}, config::ByteSize::mebibytes(256));
  s.field("device_quota.disconnect_after_violations", &S::device_disconnect_after_violations,
          "Violations within 10 s after which a device is disconnected; 0: drop and report only")
      .range(0, 1000000);
  s.field("rabbitmq_auth.enabled", &S::rabbitmq_auth_enabled,
          "Serve RabbitMQ's rabbitmq_auth_backend_http endpoints (/auth/...)");
  s.field("rabbitmq_auth.address", &S::rabbitmq_auth_address,
          "Loopback address of the RabbitMQ authorisation endpoint")
      .non_empty();
  s.field("rabbitmq_auth.port", &S::rabbitmq_auth_port,
          "TCP port of the RabbitMQ authorisation endpoint; 0 picks a free one");
  s.field("rabbitmq_auth.vhost", &S::rabbitmq_auth_vhost, "The only virtual host allowed")
      .non_empty();
  daemon::add_common_blocks(s);
  s.validate([](const S& settings, config::Validation& v) {
    if (!is_address(settings.api_address)) {
      v.fail("api.address", "must be an IPv4 or IPv6 address");
    }
    if (!is_loopback(settings.rabbitmq_auth_address)) {
      v.fail("rabbitmq_auth.address",
             "must be a loopback address (127.0.0.0/8 or ::1): the endpoint has no TLS");
    }
    if (settings.api_certfile.empty() != settings.api_keyfile.empty()) {
      v.fail("api.keyfile", "api.certfile and api.keyfile are given together or not at all");
    }
    if (settings.connector_certfile.empty() != settings.connector_keyfile.empty()) {
      v.fail("connectors.keyfile",
             "connectors.certfile and connectors.keyfile are given together or not at all");
    }
  });
  return s;
}

policy::Quota device_quota(const SecmgrSettings& settings) {
  policy::Quota quota;
  quota.publish_per_second = static_cast<std::uint32_t>(settings.device_publish_per_second);
  quota.max_retained = static_cast<std::uint32_t>(settings.device_max_retained);
  quota.max_payload_bytes = static_cast<std::uint32_t>(settings.device_max_payload.bytes);
  quota.disconnect_after_violations =
      static_cast<std::uint32_t>(settings.device_disconnect_after_violations);
  return quota;
}

fs::path api_certfile(const SecmgrSettings& settings) {
  return settings.api_certfile.empty() ? issued_file(settings, kApiServerName, "chain.pem")
                                       : settings.api_certfile;
}
fs::path api_keyfile(const SecmgrSettings& settings) {
  return settings.api_keyfile.empty() ? issued_file(settings, kApiServerName, "key.pem")
                                      : settings.api_keyfile;
}
fs::path connector_certfile(const SecmgrSettings& settings) {
  return settings.connector_certfile.empty() ? issued_file(settings, kConnectorName, "chain.pem")
                                             : settings.connector_certfile;
}
fs::path connector_keyfile(const SecmgrSettings& settings) {
  return settings.connector_keyfile.empty() ? issued_file(settings, kConnectorName, "key.pem")
                                            : settings.connector_keyfile;
}

}  // namespace recmesh::secmgr
