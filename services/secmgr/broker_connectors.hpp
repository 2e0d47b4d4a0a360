#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "recmesh/log/logger.hpp"
#include "recmesh/metrics/registry.hpp"

#include "secmgr/security_manager.hpp"

namespace recmesh::policy {
class GuardPublisher;
}

namespace recmesh::secmgr {

class DynsecConnector;
class RabbitmqAuthEndpoint;

struct ConnectorSettings {
  std::filesystem::path pki_dir;   // CA chains that verify each broker's server certificate
  std::filesystem::path certfile;  // ems_secmgr's chain
  std::filesystem::path keyfile;
  std::chrono::milliseconds timeout{5000};  // one push to one broker
};

// Pushes each broker's policy through its connector (docs/secmgr.md, "Connectors"):
//   guard     a signed, sequence-numbered bundle on $CONTROL/recmesh-guard/v1 (recmesh-guard)
//   dynsec    the difference as $CONTROL/dynamic-security/v1 commands (stock Mosquitto)
//   rabbitmq  the decisions of the RabbitMQ authorisation endpoint
//   none      nothing
// Connections to brokers are opened on first use and kept. Calls are serialised by the
// SecurityManager.
class BrokerConnectors final : public PolicyPusher {
 public:
  BrokerConnectors(SecurityManager& manager, ConnectorSettings settings,
                   RabbitmqAuthEndpoint* rabbitmq, log::Logger logger, metrics::Registry& metrics);
  ~BrokerConnectors() override;
  BrokerConnectors(const BrokerConnectors&) = delete;
  BrokerConnectors& operator=(const BrokerConnectors&) = delete;

  std::vector<std::pair<std::string, std::string>> push(const PolicyChange& change) override;
  std::optional<std::string> signed_bundle(const std::string& broker) override;

 private:
  std::string push_one(const BrokerRecord& broker, const PolicySnapshot& snapshot);
  std::filesystem::path broker_cafile(const BrokerRecord& broker) const;

  SecurityManager& manager_;
  ConnectorSettings settings_;
  RabbitmqAuthEndpoint* rabbitmq_;
  log::Logger log_;
  metrics::Counter& pushed_ok_;
  metrics::Counter& pushed_failed_;
  std::map<std::string, std::unique_ptr<policy::GuardPublisher>> guards_;
  std::map<std::string, std::unique_ptr<DynsecConnector>> dynsecs_;
};

}  // namespace recmesh::secmgr
