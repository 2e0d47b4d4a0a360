// The brokers of a rendered cluster (docs/kubernetes.md): the configurations `broker-config`
// renders, with recmesh-guard seeded with the Security Manager's bundle, moved into the pods.
#include "sim/kubernetes_brokers.hpp"

#include <map>

#include <fmt/format.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/text.hpp"

#include "sim/kubernetes_objects.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPlatform = "recmesh-platform";
constexpr const char* kConfigDir = "/etc/mosquitto/conf";
constexpr const char* kSecretDir = "/run/recmesh/broker-tls";

broker::GuardPluginOptions seeded_guard(const fs::path& plugin, const std::string& policy) {
  broker::GuardPluginOptions guard;
  guard.plugin = plugin;
  guard.plugin_is_local = false;
  guard.seed_bundle = policy;
  return guard;
}

// Mosquitto started as root reads its files as `mosquitto`, and recmesh-guard refuses a key
// file its group may read: the Secret's files are installed for that account (keys 0600) into
// the pod's own volume, and the guard's store is seeded there once (a later push replaces it
// in place and survives restarts of the container).
k8s::Container install_files() {
  return {"install-files",
          {"sh", "-c",
           fmt::format("set -eu\n"
                       "install -d -o mosquitto -g mosquitto -m 0700 {0} {1}\n"
                       "cd {2}\n"
                       "for f in *; do\n"
                       "  case \"$f\" in *.key|{3}) mode=0600 ;; *) mode=0644 ;; esac\n"
                       "  install -o mosquitto -g mosquitto -m \"$mode\" \"$f\" \"{0}/$f\"\n"
                       "done\n"
                       "if [ ! -e {1}/{3} ]; then\n"
                       "  install -o mosquitto -g mosquitto -m 0600 {3} {1}/{3}\n"
                       "fi\n",
                       kBrokerFiles, kBrokerData, kSecretDir, kGuardStore)},
          {k8s::Mount("broker-tls", k8s::VolumeKind::kSecret, kSecretDir),
           k8s::Mount("broker-files", k8s::VolumeKind::kEmptyDir, kBrokerFiles).writable(),
           k8s::Mount("broker-data", k8s::VolumeKind::kEmptyDir, kBrokerData).writable()},
          {}};
}

// A rendered broker directory as a ConfigMap (mosquitto.conf, paths moved) and a Secret (the
// certificates, keys and CRLs it names, the guard's key and seeded store), then its Deployment
// and Service.
void broker_objects(const std::string& name, const fs::path& rendered, const std::string& ns,
                    const std::string& image, const std::vector<std::pair<std::string, int>>& ports,
                    std::vector<YAML::Node>& out) {
  std::string conf = read_file(rendered / "mosquitto.conf");
  conf = replace_all(conf, (rendered / "data").string() + "/", std::string(kBrokerData) + "/");
  conf = replace_all(conf, rendered.string(), kBrokerFiles);
  std::map<std::string, fs::path> files;
  for (const auto& entry : fs::directory_iterator(rendered)) {
    if (entry.is_regular_file() && entry.path().filename() != "mosquitto.conf") {
      files[entry.path().filename().string()] = entry.path();
    }
  }
  files[kGuardStore] = rendered / "data" / kGuardStore;
  out.push_back(k8s::config_map("broker-config", ns, {{"mosquitto.conf", conf}}));
  out.push_back(k8s::secret("broker-tls", ns, files));
  k8s::Container main{
      name,
      {"mosquitto", "-c", std::string(kConfigDir) + "/mosquitto.conf"},
      {k8s::Mount("broker-config", k8s::VolumeKind::kConfigMap, kConfigDir),
       k8s::Mount("broker-files", k8s::VolumeKind::kEmptyDir, kBrokerFiles),
       k8s::Mount("broker-data", k8s::VolumeKind::kEmptyDir, kBrokerData).writable()},
      {}};
  for (const auto& [port_name, port] : ports) {
    main.ports.push_back(port);
  }
  out.push_back(k8s::deployment(name, ns, image, main, {install_files()}));
  out.push_back(k8s::service(name, ns, ports));
}

}  // namespace

std::string central_broker_host() {
  return fmt::format("central-broker.{}.svc.cluster.local", kPlatform);
}

std::string local_broker_host(const std::string& ns) {
  return fmt::format("local-broker.{}.svc.cluster.local", ns);
}

void central_broker_objects(pki::Pki& pki, const fs::path& scratch, const fs::path& guard_plugin,
                            const std::string& policy, const std::string& image,
                            std::vector<YAML::Node>& out) {
  broker::CentralBrokerOptions options;
  options.ems_port = kEmsPort;
  options.bridge_port = kBridgePort;
  options.bind_address = "0.0.0.0";
  options.sans = {pki::SubjectAltName{pki::SubjectAltName::Type::kDns, central_broker_host()}};
  options.guard = seeded_guard(guard_plugin, policy);
  broker::render_central_broker(pki, options, scratch);
  broker_objects("central-broker", scratch, kPlatform, image,
                 {{"ems", kEmsPort}, {"bridge", kBridgePort}}, out);
}

void local_broker_objects(pki::Pki& pki, const MemberSpec& member, const std::string& ns,
                          const fs::path& scratch, const fs::path& guard_plugin,
                          const std::string& policy, const std::string& image,
                          std::vector<YAML::Node>& out) {
  broker::LocalBrokerOptions options;
  options.rec = member.rec;
  options.member = member.id;
  options.member_port = kMemberPort;
  options.bridge_port = kBridgePort;
  options.management_port = kManagementPort;
  options.bind_address = "0.0.0.0";
  options.sans = {pki::SubjectAltName{pki::SubjectAltName::Type::kDns, local_broker_host(ns)}};
  options.guard = seeded_guard(guard_plugin, policy);
  broker::render_local_broker(pki, options, scratch);
  broker_objects(
      "local-broker", scratch, ns, image,
      {{"member", kMemberPort}, {"bridge", kBridgePort}, {"management", kManagementPort}}, out);
}

}  // namespace recmesh::sim
