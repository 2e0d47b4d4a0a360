#include "secmgr/broker_connectors.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/guard_publisher.hpp"

#include "secmgr/dynsec_connector.hpp"
#include "secmgr/policy_compiler.hpp"
#include "secmgr/rabbitmq_auth_endpoint.hpp"

namespace recmesh::secmgr {
namespace {

constexpr std::string_view kOk = "ok";

}  // namespace

BrokerConnectors::BrokerConnectors(SecurityManager& manager, ConnectorSettings settings,
                                   RabbitmqAuthEndpoint* rabbitmq, log::Logger logger,
                                   metrics::Registry& metrics)
    : manager_(manager),
      settings_(std::move(settings)),
      rabbitmq_(rabbitmq),
      log_(std::move(logger)),
      pushed_ok_(metrics.counter("recmesh_secmgr_pushes_total", "Policy pushes by result",
                                 {{"result", "ok"}})),
      pushed_failed_(metrics.counter("recmesh_secmgr_pushes_total", "Policy pushes by result",
                                     {{"result", "failed"}})) {}

BrokerConnectors::~BrokerConnectors() = default;

std::filesystem::path BrokerConnectors::broker_cafile(const BrokerRecord& broker) const {
  const std::optional<pki::Identity> server = pki::parse_common_name(broker.id);
  const std::string authority = server ? pki::issuing_authority_id(*server) : std::string("ems");
  return settings_.pki_dir / "ca" / authority / "chain.pem";
}

std::vector<std::pair<std::string, std::string>> BrokerConnectors::push(
    const PolicyChange& change) {
  const PolicySnapshot snapshot = manager_.policy_snapshot();
  std::vector<std::pair<std::string, std::string>> results;
  for (const BrokerRecord& broker : snapshot.brokers) {
    if (!change.all_brokers && std::find(change.brokers.begin(), change.brokers.end(), broker.id) ==
                                   change.brokers.end()) {
      continue;
    }
    std::string result;
    try {
      result = push_one(broker, snapshot);
    } catch (const std::exception& e) {
      result = e.what();
    }
    (result == kOk ? pushed_ok_ : pushed_failed_).increment();
    if (result == kOk) {
      log_.info(
          "policy pushed",
          {{"broker", broker.id}, {"connector", broker.connector}, {"reason", change.reason}});
    } else {
      log_.warn("policy push failed",
                {{"broker", broker.id}, {"connector", broker.connector}, {"cause", result}});
    }
    manager_.record_push(broker.id, result);
    results.emplace_back(broker.id, std::move(result));
  }
  return results;
}

std::optional<std::string> BrokerConnectors::signed_bundle(const std::string& broker) {
  const PolicySnapshot snapshot = manager_.policy_snapshot();
  for (const BrokerRecord& record : snapshot.brokers) {
    if (record.id == broker) {
      const policy::PolicyBundle bundle = compile_policy(
          record, snapshot, manager_.next_bundle_sequence(broker), manager_.now_unix());
      return policy::BundleSigner(
                 crypto::JwsSigner::from_files(settings_.certfile, settings_.keyfile))
          .sign(bundle);
    }
  }
  return std::nullopt;
}

std::string BrokerConnectors::push_one(const BrokerRecord& broker, const PolicySnapshot& snapshot) {
  if (broker.connector == "none") {
    return std::string(kOk);
  }
  const std::uint64_t sequence = manager_.next_bundle_sequence(broker.id);
  const policy::PolicyBundle bundle =
      compile_policy(broker, snapshot, sequence, manager_.now_unix());
  mqtt::MqttClientOptions options;
  options.host = broker.host;
  options.port = broker.port;
  options.client_id = "ems_secmgr";
  options.cafile = broker_cafile(broker);
  options.certfile = settings_.certfile;
  options.keyfile = settings_.keyfile;
  if (broker.connector == "guard") {
    auto& publisher = guards_[broker.id];
    if (!publisher) {
      publisher = std::make_unique<policy::GuardPublisher>(
          policy::BundleSigner(
              crypto::JwsSigner::from_files(settings_.certfile, settings_.keyfile)),
          options);
    }
    auto answer = publisher->push(bundle, settings_.timeout);
    if (!answer) {
      guards_.erase(broker.id);  // reconnect from scratch next time
      return answer.status().message;
    }
    if (!answer->accepted) {
      return fmt::format("refused by recmesh-guard: {}", answer->reason);
    }
    return std::string(kOk);
  }
  if (broker.connector == "dynsec") {
    auto& connector = dynsecs_[broker.id];
    if (!connector) {
      connector = std::make_unique<DynsecConnector>(options, "ems_secmgr");
    }
    auto synced = connector->sync(bundle, settings_.timeout);
    if (!synced) {
      dynsecs_.erase(broker.id);
      return synced.status().message;
    }
    return std::string(kOk);
  }
  if (broker.connector == "rabbitmq") {
    if (rabbitmq_ == nullptr) {
      return "rabbitmq_auth.enabled is false: no endpoint serves this broker";
    }
    rabbitmq_->update(bundle);
    return std::string(kOk);
  }
  return fmt::format("unknown connector {}", broker.connector);
}

}  // namespace recmesh::secmgr
