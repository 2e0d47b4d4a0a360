// Kubernetes manifests for a scenario (docs/kubernetes.md): the platform namespace (Security
// Manager, central broker, EMS engine) and one namespace per member.
#include "sim/kubernetes_manifests.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/pki/pki.hpp"

#include "bridge/bridge_settings.hpp"
#include "sim/component_launchers.hpp"
#include "sim/kubernetes_brokers.hpp"
#include "sim/kubernetes_objects.hpp"
#include "sim/kubernetes_secmgr.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

using k8s::Container;
using k8s::Mount;
using k8s::VolumeKind;

constexpr const char* kTlsFiles = "/etc/recmesh/tls";
constexpr const char* kConfigFiles = "/etc/recmesh/config";
constexpr const char* kTrustFiles = "/etc/recmesh/pki";  // a pki_dir with public CA files only

std::map<std::string, fs::path> identity_files(pki::Pki& pki, const std::string& cn,
                                               const std::string& stem) {
  const auto files = pki.files_of(pki.find_by_common_name(cn));
  return {{stem + ".crt", files.chain}, {stem + ".key", files.key}};
}

// The public files of `authorities` (chain, certificate and CRL of each CA) as a ConfigMap
// `pki-trust` and the mount that lays them out as a pki_dir (ca/<id>/...) at kTrustFiles: what
// the end-to-end handshakes read (docs/protocol/e2e.md). No key and no issued certificate.
Mount trust_objects(pki::Pki& pki, const std::vector<std::string>& authorities,
                    const std::string& ns, std::vector<YAML::Node>& out) {
  std::map<std::string, std::string> files;
  Mount mount("pki-trust", VolumeKind::kConfigMap, kTrustFiles);
  for (const auto& id : authorities) {
    for (const auto& [file, path] :
         {std::pair<std::string, fs::path>{"chain.pem", pki.authority_chain_path(id)},
          {"cert.pem", pki.authority_cert_path(id)},
          {"crl.pem", pki.authority_crl_path(id)}}) {
      const std::string key = fmt::format("{}.{}", id, file);
      files[key] = read_file(path);
      mount.items[key] = fmt::format("ca/{}/{}", id, file);
    }
  }
  out.push_back(k8s::config_map("pki-trust", ns, files));
  return mount;
}

// `recmesh <command>` with its configuration (ConfigMap <name>-config, file <name>.yaml) and
// certificates (Secret <name>-tls).
Container recmesh_daemon(const std::string& name, const std::string& command,
                         std::vector<Mount> more_mounts = {}) {
  Container c{name,
              {"recmesh", command, "--config", fmt::format("{}/{}.yaml", kConfigFiles, name)},
              {Mount(name + "-config", VolumeKind::kConfigMap, kConfigFiles),
               Mount(name + "-tls", VolumeKind::kSecret, kTlsFiles)},
              {}};
  for (auto& mount : more_mounts) {
    c.mounts.push_back(std::move(mount));
  }
  return c;
}

// The brokers the Security Manager pushes to, at their cluster addresses: the central broker's
// EMS listener, each local broker's management listener (as `sim run` registers them).
std::vector<BrokerRegistration> cluster_brokers(const Scenario& scenario) {
  std::vector<BrokerRegistration> brokers{
      {pki::Identity::make(pki::IdentityKind::kCentralBroker, "", "", "").common_name(), kEmsPort,
       central_broker_host()}};
  for (const MemberSpec* member : scenario.members()) {
    brokers.push_back(
        {pki::Identity::make(pki::IdentityKind::kLocalBroker, member->rec, member->id, "")
             .common_name(),
         kManagementPort, local_broker_host(member_namespace(*member))});
  }
  return brokers;
}

}  // namespace

std::string member_namespace(const MemberSpec& member) {
  return fmt::format("{}-{}", member.rec, member.id);
}

std::vector<fs::path> render_kubernetes(const Scenario& scenario, const fs::path& out_dir,
                                        const std::string& image, const fs::path& guard_plugin) {
  if (!guard_plugin.is_absolute()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("--guard-plugin {} is not an absolute path in the image",
                            quote_untrusted(guard_plugin.string())));
  }
  const fs::path out = fs::absolute(out_dir);
  fs::create_directories(out);
  const std::string passphrase = random_passphrase();
  write_file_atomic(out / "ca.passphrase", passphrase, 0600);
  pki::Pki pki = pki::Pki::create(out / "pki", Secret(passphrase));
  issue_community(pki, scenario);
  const fs::path scratch = out / ".rendered";
  fs::remove_all(scratch);
  create_directories(scratch, 0700);
  const std::vector<BrokerRegistration> brokers = cluster_brokers(scenario);
  const ClusterSecurityManager manager =
      register_for_cluster(pki, scenario, brokers, scratch / "secmgr.db");
  std::vector<std::pair<fs::path, std::vector<YAML::Node>>> manifests;

  // The platform: central broker and EMS engine (the Security Manager last, below).
  {
    std::vector<YAML::Node> objects{k8s::namespace_of(kPlatformNamespace)};
    central_broker_objects(pki, scratch / "central", guard_plugin,
                           manager.bundles.at(brokers.front().id), image, objects);
    // The engine's end-to-end sessions check each member's certificates against its CA chain.
    std::vector<std::string> every_authority;
    for (const auto& authority : pki.authorities()) {
      every_authority.push_back(authority.id);
    }
    const Mount ems_trust = trust_objects(pki, every_authority, kPlatformNamespace, objects);
    const std::string ems_yaml = fmt::format(
        "broker: {{host: {}, port: {}}}\ncafile: {}/ems-ca.pem\ncert: {}/engine.crt\n"
        "key: {}/engine.key\npki_dir: {}\ndatabase: /var/lib/recmesh/ems.db\n"
        "policy_period_ms: {}\n"
        "control_timeout_ms: {}\nsurplus_threshold_w: {}\ndeficit_threshold_w: {}\n"
        "max_soc_percent: {}\nmin_soc_percent: {}\n",
        central_broker_host(), kEmsPort, kTlsFiles, kTlsFiles, kTlsFiles, kTrustFiles,
        scenario.policy_period_ms, scenario.control_timeout_ms, scenario.surplus_threshold_w,
        scenario.deficit_threshold_w, scenario.max_soc_percent, scenario.min_soc_percent);
    objects.push_back(k8s::config_map("ems-config", kPlatformNamespace, {{"ems.yaml", ems_yaml}}));
    auto tls = identity_files(pki, "ems_engine", "engine");
    tls["ems-ca.pem"] = pki.authority_chain_path("ems");
    objects.push_back(k8s::secret("ems-tls", kPlatformNamespace, tls));
    objects.push_back(k8s::deployment("ems", kPlatformNamespace, image,
                                      recmesh_daemon("ems", "ems", {ems_trust})));
    manifests.emplace_back(out / "00-platform.yaml", std::move(objects));
  }

  // One namespace per member.
  const std::vector<const MemberSpec*> members = scenario.members();
  for (std::size_t i = 0; i < members.size(); ++i) {
    const MemberSpec* member = members[i];
    const std::string ns = member_namespace(*member);
    const std::string broker_host = local_broker_host(ns);
    std::vector<YAML::Node> objects{k8s::namespace_of(ns)};
    local_broker_objects(pki, *member, ns, scratch / ns, guard_plugin,
                         manager.bundles.at(brokers[i + 1].id), image, objects);

    // The member's bridge: its own Deployment, from the local broker's bridge listener to the
    // central broker's, with the member's Bridge-CA certificate; its store on the pod's disk.
    {
      bridge::BridgeSettings bridge;
      bridge.rec = member->rec;
      bridge.member = member->id;
      bridge.local.host = broker_host;
      bridge.local.port = kBridgePort;
      bridge.local.cafile = std::string(kTlsFiles) + "/bridge-ca.pem";
      bridge.local.certfile = std::string(kTlsFiles) + "/bridge.crt";
      bridge.local.keyfile = std::string(kTlsFiles) + "/bridge.key";
      bridge.central = bridge.local;
      bridge.central.host = central_broker_host();
      bridge.store_path = "/var/lib/recmesh/bridge.db";
      objects.push_back(k8s::config_map(
          "bridge-config", ns, {{"bridge.yaml", bridge::bridge_schema().render_yaml(bridge)}}));
      auto bridge_tls = identity_files(pki, bridge.common_name(), "bridge");
      bridge_tls["bridge-ca.pem"] =
          pki.files_of(pki.find_by_common_name(bridge.common_name())).cafile;
      objects.push_back(k8s::secret("bridge-tls", ns, bridge_tls));
      objects.push_back(k8s::deployment("bridge", ns, image, recmesh_daemon("bridge", "bridge")));
    }

    // The gateway's end-to-end sessions check the engine's certificate against the EMS CA.
    const Mount gateway_trust = trust_objects(pki, {"root", "ems"}, ns, objects);
    const std::string member_ca =
        pki::authority_id(pki::AuthorityKind::kMember, member->rec, member->id);
    std::string gateway_yaml = fmt::format(
        "rec: {}\nmember: {}\nbroker: {{host: {}, port: {}}}\ncert: {}/gateway.crt\n"
        "key: {}/gateway.key\ncafile: {}/member-ca.pem\npki_dir: {}\n"
        "database: /var/lib/recmesh/gateway.db\n"
        "metrics_interval_ms: {}\ndevice_timeout_ms: {}\ndevices:\n",
        member->rec, member->id, broker_host, kMemberPort, kTlsFiles, kTlsFiles, kTlsFiles,
        kTrustFiles, scenario.aggregate_interval_ms, scenario.device_timeout_ms);
    std::string devices_yaml = fmt::format(
        "broker: {{host: {}, port: {}}}\nrec: {}\nmember: {}\nmetrics_interval_ms: {}\n"
        "seed: {}\ncrash_fraction: {}\nstart_hour: {}\ntime_scale: {}\ncloudiness: {}\n"
        "diagnostic: {{ems_ca: {}/ems-ca.pem, ems_crl: {}/ems-crl.pem}}\ndevices:\n",
        broker_host, kMemberPort, member->rec, member->id, scenario.metrics_interval_ms,
        scenario.seed, scenario.crash_fraction, scenario.start_hour, scenario.time_scale,
        scenario.cloudiness, kTlsFiles, kTlsFiles);
    auto gateway_tls =
        identity_files(pki, fmt::format("rec_{}_{}_gateway", member->rec, member->id), "gateway");
    gateway_tls["member-ca.pem"] = pki.authority_chain_path(member_ca);
    std::map<std::string, fs::path> device_tls{
        {"member-ca.pem", pki.authority_chain_path(member_ca)},
        {"ems-ca.pem", pki.authority_cert_path("ems")},
        {"ems-crl.pem", pki.authority_crl_path("ems")}};
    for (const auto& device : member->device_list()) {
      const std::string kind(protocol::to_string(device.kind));
      gateway_yaml += fmt::format("  - {{id: {}, kind: {}}}\n", device.id, kind);
      devices_yaml += fmt::format(
          "  - {{id: {0}, kind: {1}, cert: {2}/{0}.crt, key: {2}/{0}.key, "
          "cafile: {2}/member-ca.pem}}\n",
          device.id, kind, kTlsFiles);
      device_tls.merge(identity_files(
          pki, fmt::format("rec_{}_{}_{}", member->rec, member->id, device.id), device.id));
    }
    objects.push_back(k8s::config_map("gateway-config", ns, {{"gateway.yaml", gateway_yaml}}));
    objects.push_back(k8s::secret("gateway-tls", ns, gateway_tls));
    objects.push_back(k8s::deployment("gateway", ns, image,
                                      recmesh_daemon("gateway", "gateway", {gateway_trust})));
    objects.push_back(k8s::config_map("devices-config", ns, {{"devices.yaml", devices_yaml}}));
    objects.push_back(k8s::secret("devices-tls", ns, device_tls));
    objects.push_back(k8s::deployment("devices", ns, image, recmesh_daemon("devices", "device")));
    manifests.emplace_back(out / (ns + ".yaml"), std::move(objects));
  }

  // The Security Manager's copy of the PKI is taken once every certificate is issued.
  secmgr_objects(pki, out / "ca.passphrase", manager, image, manifests.front().second);
  std::vector<fs::path> written;
  for (const auto& [file, objects] : manifests) {
    k8s::write_manifest(file, objects);
    written.push_back(file);
  }
  fs::remove_all(scratch);
  return written;
}

}  // namespace recmesh::sim
