// The Security Manager of a rendered cluster (docs/kubernetes.md, "The Security Manager"):
// registered at render time through its own API, shipped with its registry and PKI.
#include "sim/kubernetes_secmgr.hpp"

#include <fmt/format.h>

#include "recmesh/broker/seed_policy.hpp"
#include "recmesh/config/problem.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/log/logger.hpp"
#include "recmesh/metrics/registry.hpp"
#include "recmesh/pki/identity.hpp"

#include "secmgr/api_client.hpp"
#include "secmgr/api_server.hpp"
#include "secmgr/broker_connectors.hpp"
#include "secmgr/secmgr_config.hpp"
#include "secmgr/security_manager.hpp"
#include "sim/component_launchers.hpp"
#include "sim/kubernetes_objects.hpp"
#include "sim/kubernetes_state_secrets.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPlatform = "recmesh-platform";
constexpr const char* kStateDir = "/var/lib/recmesh";  // the claim: PKI and registry
constexpr const char* kStateSeed = "/run/recmesh/secmgr-state";
constexpr const char* kPassphraseDir = "/etc/recmesh/passphrase";
constexpr const char* kConfigDir = "/etc/recmesh/config";

// secmgr.yaml with its state (pki/, secmgr.db) in `state_dir` and the CA passphrase in
// `passphrase_dir`: as the cluster's manager reads it, or as this process checks it. The device
// quota is the simulator's (docs/scenarios.md), so that both sign the same policy.
std::string secmgr_yaml(const std::string& state_dir, const std::string& passphrase_dir) {
  return fmt::format(
      "pki: {{dir: {0}/pki, passphrase_file: {1}/ca.passphrase}}\n"
      "database: {0}/secmgr.db\n"
      "api: {{address: 0.0.0.0, port: {2}, threads: 2}}\n"
      "# A broker that was not up at a push gets the whole policy again within this interval.\n"
      "connectors: {{timeout: 5s, resync_interval: 30s}}\n"
      "device_quota: {{publish_per_second: {3}, max_retained: {4}}}\n",
      state_dir, passphrase_dir, kSecmgrApiPort, kDevicePublishPerSecond, kDeviceMaxRetained);
}

std::string cluster_secmgr_yaml() {
  return secmgr_yaml(kStateDir, kPassphraseDir);
}

// The cluster's settings, checked against the rendered files (`out` holds pki/ and
// ca.passphrase as the claim and the passphrase Secret will).
secmgr::SecmgrSettings cluster_settings(const fs::path& out) {
  auto loaded =
      secmgr::secmgr_schema().load_text(secmgr_yaml(out.string(), out.string()), "secmgr.yaml");
  if (!loaded.ok()) {
    throw config::to_error(loaded.problems);
  }
  return loaded.settings;
}

// No broker runs while the cluster is rendered: nothing is pushed (the brokers start seeded,
// and the cluster's manager pushes to all of them at its start). Bundles are signed as the
// cluster's manager signs a push.
class RenderTimePusher final : public secmgr::PolicyPusher {
 public:
  explicit RenderTimePusher(secmgr::PolicyPusher& signer) : signer_(signer) {}
  std::vector<std::pair<std::string, std::string>> push(
      const secmgr::PolicyChange& /*change*/) override {
    return {};
  }
  std::optional<std::string> signed_bundle(const std::string& broker) override {
    return signer_.signed_bundle(broker);
  }

 private:
  secmgr::PolicyPusher& signer_;
};

// The API's server certificate, named for its Service, as `recmesh secmgr` would issue it.
pki::IssuedFiles api_identity(pki::Pki& pki) {
  const pki::Identity identity = pki::Identity::make(pki::IdentityKind::kCentralBroker, "", "",
                                                     std::string(secmgr::kApiServerName));
  for (const auto& record : pki.certificates()) {
    if (record.common_name == identity.common_name() &&
        record.status == pki::CertificateStatus::kValid) {
      return pki.files_of(record);
    }
  }
  pki::IssueRequest request;
  request.identity = identity;
  request.sans = {pki::SubjectAltName{pki::SubjectAltName::Type::kDns, secmgr_host()}};
  return pki.issue(request).files;
}

// The manager's copy of the PKI: the database (which holds every certificate), the CAs, the
// bridges' trust bundles and its own two identities; no other leaf's files, which it never
// reads (the leaf keys stay with the operator). Path under the state directory -> file.
std::map<std::string, fs::path> pki_copy(const pki::Pki& pki) {
  std::map<std::string, fs::path> files;
  const fs::path& root = pki.directory();
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) {
      continue;
    }
    const fs::path relative = entry.path().lexically_relative(root);
    const std::vector<fs::path> parts(relative.begin(), relative.end());
    if (parts.size() == 3 && parts[0] == "issued" && parts[1] != "ems_secmgr" &&
        parts[1] != "ems_secmgr-api") {
      continue;
    }
    files.emplace((fs::path("pki") / relative).string(), entry.path());
  }
  return files;
}

}  // namespace

std::string secmgr_host() {
  return fmt::format("secmgr.{}.svc.cluster.local", kPlatform);
}

ClusterSecurityManager register_for_cluster(pki::Pki& pki, const Scenario& scenario,
                                            const std::vector<BrokerRegistration>& brokers,
                                            const fs::path& database) {
  const secmgr::SecmgrSettings settings = cluster_settings(pki.directory().parent_path());
  const pki::IssuedFiles signer = broker::secmgr_files(pki);
  const pki::IssuedFiles api_files = api_identity(pki);
  const auto output = log::LogOutput::to_stderr({log::Level::kWarn, log::Format::kHuman});
  metrics::Registry metrics;
  secmgr::SecurityManager manager(database,
                                  pki::Pki::open(pki.directory(), pki::Pki::Access::kReadOnly),
                                  log::Logger("registry", output));
  secmgr::BrokerConnectors connectors(manager,
                                      {pki.directory(), signer.chain, signer.key,
                                       settings.connector_timeout, secmgr::device_quota(settings)},
                                      nullptr, log::Logger("connectors", output), metrics);
  RenderTimePusher pusher(connectors);
  manager.set_pusher(&pusher);
  ClusterSecurityManager out;
  out.database = database;
  {
    secmgr::ApiServerOptions options;
    options.certfile = api_files.chain;
    options.keyfile = api_files.key;
    options.client_ca = pki.authority_chain_path("ems");
    options.client_crls = {pki.authority_crl_path("ems"), pki.authority_crl_path("root")};
    options.threads = 1;
    secmgr::ApiServer server(manager, options, log::Logger("api", output), metrics);
    secmgr::ApiClientOptions api;
    api.port = server.port();
    api.cafile = pki.authority_chain_path("ems");
    const auto operator_files = pki.files_of(pki.find_by_common_name("ems_operator-sim"));
    api.certfile = operator_files.chain;
    api.keyfile = operator_files.key;
    secmgr::ApiClient client(api);
    register_community(client, scenario, SimulatorIdentities::kLeaveOut);
    out.bundles = register_brokers(client, brokers);
  }
  manager.set_pusher(nullptr);
  return out;
}

void secmgr_objects(const pki::Pki& pki, const fs::path& passphrase_file,
                    const ClusterSecurityManager& manager, const std::string& image,
                    std::vector<YAML::Node>& out) {
  using k8s::Mount;
  using k8s::VolumeKind;
  out.push_back(
      k8s::config_map("secmgr-config", kPlatform, {{"secmgr.yaml", cluster_secmgr_yaml()}}));
  std::map<std::string, fs::path> state = pki_copy(pki);
  state["secmgr.db"] = manager.database;
  out.push_back(k8s::secret("secmgr-passphrase", kPlatform, {{"ca.passphrase", passphrase_file}}));
  out.push_back(k8s::persistent_volume_claim("secmgr-data", kPlatform, "1Gi"));
  // The claim is filled once, from the rendered state; from then on it is the manager's own
  // (registrations, certificates and revocations made in the cluster survive restarts).
  std::vector<Mount> restore_mounts;
  const std::vector<StateSecret> secrets = pack_state_secrets(state);
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    const std::string name = i == 0 ? "secmgr-state" : fmt::format("secmgr-state-{}", i);
    out.push_back(k8s::secret_of_contents(name, kPlatform, secrets[i].data));
    restore_mounts.emplace_back(name, VolumeKind::kSecret, fmt::format("{}/{}", kStateSeed, i),
                                secrets[i].items);
  }
  restore_mounts.push_back(Mount("secmgr-data", VolumeKind::kClaim, kStateDir).writable());
  const k8s::Container restore{
      "restore-state",
      {"sh", "-c", restore_state_script(kStateDir, kStateSeed, "secmgr.db")},
      std::move(restore_mounts),
      {}};
  k8s::Container main{"secmgr",
                      {"recmesh", "secmgr", "--config", std::string(kConfigDir) + "/secmgr.yaml"},
                      {Mount("secmgr-config", VolumeKind::kConfigMap, kConfigDir),
                       Mount("secmgr-passphrase", VolumeKind::kSecret, kPassphraseDir),
                       Mount("secmgr-data", VolumeKind::kClaim, kStateDir).writable()},
                      {kSecmgrApiPort}};
  out.push_back(k8s::deployment("secmgr", kPlatform, image, main, {restore}, true));
  out.push_back(k8s::service("secmgr", kPlatform, {{"api", kSecmgrApiPort}}));
}

}  // namespace recmesh::sim
