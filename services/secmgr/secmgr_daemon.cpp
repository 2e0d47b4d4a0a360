#include "secmgr/secmgr_daemon.hpp"

#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/daemon/daemon_runner.hpp"
#include "recmesh/pki/pki.hpp"

#include "secmgr/api_server.hpp"
#include "secmgr/broker_connectors.hpp"
#include "secmgr/rabbitmq_auth_endpoint.hpp"
#include "secmgr/security_manager.hpp"

namespace recmesh::secmgr {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPassphraseEnv = "RECMESH_PKI_PASSPHRASE";

// Issues `identity` into the PKI's issued/ directory unless its files are there already.
void ensure_identity(pki::Pki& pki, const pki::Identity& identity, const fs::path& certfile,
                     const log::Logger& log) {
  if (fs::exists(certfile)) {
    return;
  }
  for (const auto& record : pki.certificates()) {
    if (record.common_name == identity.common_name() &&
        record.status == pki::CertificateStatus::kValid) {
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("{} has a valid certificate but {} is missing; renew it with "
                              "`recmesh pki renew --cn {}`",
                              identity.common_name(), certfile.string(), identity.common_name()));
    }
  }
  pki::IssueRequest request;
  request.identity = identity;
  const pki::IssuedCertificate issued = pki.issue(request);
  log.info("issued the manager's certificate",
           {{"cn", identity.common_name()}, {"serial", issued.record.serial}});
}

}  // namespace

int run_secmgr(const SecmgrSettings& settings, daemon::DaemonContext& context) {
  const log::Logger log = context.logger("secmgr");
  pki::Pki pki =
      pki::Pki::open(settings.pki_dir, pki::Pki::Access::kReadWrite,
                     secret_from_file_or_env(settings.pki_passphrase_file, kPassphraseEnv));
  if (settings.api_certfile.empty()) {
    ensure_identity(
        pki,
        pki::Identity::make(pki::IdentityKind::kCentralBroker, "", "", std::string(kApiServerName)),
        api_certfile(settings), log);
  }
  if (settings.connector_certfile.empty()) {
    ensure_identity(
        pki, pki::Identity::make(pki::IdentityKind::kService, "", "", std::string(kConnectorName)),
        connector_certfile(settings), log);
  }
  ApiServerOptions api;
  api.address = settings.api_address;
  api.port = settings.api_port;
  api.certfile = api_certfile(settings);
  api.keyfile = api_keyfile(settings);
  api.client_ca = pki.authority_chain_path("ems");
  api.client_crls = {pki.authority_crl_path("ems"), pki.authority_crl_path("root")};
  api.max_body = settings.api_max_body.bytes;
  api.io_timeout = settings.api_io_timeout;
  api.threads = settings.api_threads;

  SecurityManager manager(settings.database, std::move(pki), context.logger("registry"));
  std::optional<RabbitmqAuthEndpoint> rabbitmq;
  if (settings.rabbitmq_auth_enabled) {
    rabbitmq.emplace(settings.rabbitmq_auth_address, settings.rabbitmq_auth_port,
                     settings.rabbitmq_auth_vhost, context.logger("rabbitmq"), context.metrics());
    log.info("serving RabbitMQ authorisation",
             {{"address", settings.rabbitmq_auth_address}, {"port", rabbitmq->port()}});
  }
  BrokerConnectors connectors(
      manager,
      {settings.pki_dir, connector_certfile(settings), connector_keyfile(settings),
       settings.connector_timeout, device_quota(settings)},
      rabbitmq ? &*rabbitmq : nullptr, context.logger("connectors"), context.metrics());
  manager.set_pusher(&connectors);
  // Brokers converge on the registry after a restart of either side, and after a push that
  // failed while a broker was down.
  std::thread resync([&manager, &context, &settings, &log] {
    std::chrono::milliseconds wait{0};
    while (!context.wait_for_stop(wait)) {
      try {
        (void)manager.push("");
      } catch (const std::exception& e) {
        log.warn("periodic push failed", {{"cause", e.what()}});
      }
      if (settings.connector_resync_interval.count() == 0) {
        return;
      }
      wait = settings.connector_resync_interval;
    }
  });
  {
    ApiServer server(manager, api, context.logger("api"), context.metrics());
    if (!settings.api_port_file.empty()) {
      write_file_atomic(settings.api_port_file, std::to_string(server.port()) + "\n", 0644);
    }
    log.info("serving the API", {{"address", settings.api_address},
                                 {"port", server.port()},
                                 {"database", settings.database}});
    context.wait_for_stop();
    log.info("stopping");
  }
  resync.join();
  manager.set_pusher(nullptr);
  return daemon::kExitOk;
}

}  // namespace recmesh::secmgr
