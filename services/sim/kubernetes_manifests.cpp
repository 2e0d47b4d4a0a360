// Kubernetes manifests for a scenario (docs/kubernetes.md). The broker configurations are the
// ones `broker-config` renders, with their file paths moved to where the pods mount them.
#include "sim/kubernetes_manifests.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/base64url.hpp"
#include "recmesh/pki/pki.hpp"

#include "bridge/bridge_settings.hpp"
#include "sim/component_launchers.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

constexpr int kMemberPort = 8883;
constexpr int kBridgePort = 8884;
constexpr int kEmsPort = 8883;
constexpr const char* kBrokerFiles = "/etc/recmesh/broker";
constexpr const char* kTlsFiles = "/etc/recmesh/tls";
constexpr const char* kConfigFiles = "/etc/recmesh/config";
constexpr const char* kTrustFiles = "/etc/recmesh/pki";  // a pki_dir with public CA files only

YAML::Node metadata(const std::string& name, const std::string& ns, const std::string& component) {
  YAML::Node m;
  m["name"] = name;
  if (!ns.empty()) {
    m["namespace"] = ns;
  }
  m["labels"]["app.kubernetes.io/part-of"] = "recmesh";
  m["labels"]["app.kubernetes.io/component"] = component;
  return m;
}

YAML::Node namespace_of(const std::string& ns) {
  YAML::Node n;
  n["apiVersion"] = "v1";
  n["kind"] = "Namespace";
  n["metadata"] = metadata(ns, "", "namespace");
  return n;
}

YAML::Node config_map(const std::string& name, const std::string& ns,
                      const std::map<std::string, std::string>& files) {
  YAML::Node n;
  n["apiVersion"] = "v1";
  n["kind"] = "ConfigMap";
  n["metadata"] = metadata(name, ns, name);
  for (const auto& [key, text] : files) {
    n["data"][key] = text;
  }
  return n;
}

YAML::Node secret(const std::string& name, const std::string& ns,
                  const std::map<std::string, fs::path>& files) {
  YAML::Node n;
  n["apiVersion"] = "v1";
  n["kind"] = "Secret";
  n["type"] = "Opaque";
  n["metadata"] = metadata(name, ns, name);
  for (const auto& [key, path] : files) {
    n["data"][key] = crypto::base64_encode(read_file(path));
  }
  return n;
}

YAML::Node service(const std::string& name, const std::string& ns,
                   const std::vector<std::pair<std::string, int>>& ports) {
  YAML::Node n;
  n["apiVersion"] = "v1";
  n["kind"] = "Service";
  n["metadata"] = metadata(name, ns, name);
  n["spec"]["selector"]["app.kubernetes.io/name"] = name;
  for (const auto& [port_name, port] : ports) {
    YAML::Node p;
    p["name"] = port_name;
    p["port"] = port;
    p["targetPort"] = port;
    p["protocol"] = "TCP";
    n["spec"]["ports"].push_back(p);
  }
  return n;
}

struct Mount {
  Mount(std::string volume_name, bool secret_volume, std::string mount_path,
        std::map<std::string, std::string> key_paths = {})
      : volume(std::move(volume_name)),
        is_secret(secret_volume),
        path(std::move(mount_path)),
        items(std::move(key_paths)) {}

  std::string volume;  // ConfigMap or Secret name
  bool is_secret = false;
  std::string path;
  std::map<std::string, std::string> items;  // key -> relative path; empty: every key as a file
};

YAML::Node deployment(const std::string& name, const std::string& ns, const std::string& image,
                      const std::vector<std::string>& command, const std::vector<Mount>& mounts,
                      const std::vector<int>& ports) {
  YAML::Node n;
  n["apiVersion"] = "apps/v1";
  n["kind"] = "Deployment";
  n["metadata"] = metadata(name, ns, name);
  n["spec"]["replicas"] = 1;
  n["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = name;
  YAML::Node pod;
  pod["metadata"]["labels"]["app.kubernetes.io/name"] = name;
  pod["metadata"]["labels"]["app.kubernetes.io/part-of"] = "recmesh";
  YAML::Node container;
  container["name"] = name;
  container["image"] = image;
  for (const auto& arg : command) {
    container["command"].push_back(arg);
  }
  for (const int port : ports) {
    YAML::Node p;
    p["containerPort"] = port;
    container["ports"].push_back(p);
  }
  container["securityContext"]["allowPrivilegeEscalation"] = false;
  container["securityContext"]["readOnlyRootFilesystem"] = false;
  for (const auto& mount : mounts) {
    YAML::Node m;
    m["name"] = mount.volume;
    m["mountPath"] = mount.path;
    m["readOnly"] = true;
    container["volumeMounts"].push_back(m);
    YAML::Node v;
    v["name"] = mount.volume;
    if (mount.is_secret) {
      v["secret"]["secretName"] = mount.volume;
      v["secret"]["defaultMode"] = 0400;
    } else {
      v["configMap"]["name"] = mount.volume;
    }
    for (const auto& [key, path] : mount.items) {
      YAML::Node item;
      item["key"] = key;
      item["path"] = path;
      v[mount.is_secret ? "secret" : "configMap"]["items"].push_back(item);
    }
    pod["spec"]["volumes"].push_back(v);
  }
  pod["spec"]["containers"].push_back(container);
  n["spec"]["template"] = pod;
  return n;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// A rendered broker directory as a ConfigMap (mosquitto.conf, paths moved) and a Secret (the
// certificates, keys and CRLs it names).
void broker_objects(const fs::path& rendered, const std::string& ns, std::vector<YAML::Node>& out) {
  std::string conf = read_file(rendered / "mosquitto.conf");
  conf = replace_all(conf, (rendered / "data").string() + "/", "/var/lib/mosquitto/");
  conf = replace_all(conf, rendered.string(), kBrokerFiles);
  std::map<std::string, fs::path> files;
  for (const auto& entry : fs::directory_iterator(rendered)) {
    if (entry.is_regular_file() && entry.path().filename() != "mosquitto.conf") {
      files[entry.path().filename().string()] = entry.path();
    }
  }
  out.push_back(config_map("broker-config", ns, {{"mosquitto.conf", conf}}));
  out.push_back(secret("broker-tls", ns, files));
}

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
  Mount mount("pki-trust", false, kTrustFiles);
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
  out.push_back(config_map("pki-trust", ns, files));
  return mount;
}

void write_manifest(const fs::path& file, const std::vector<YAML::Node>& objects) {
  std::string text = "# Generated by `recmesh sim render-k8s` (docs/kubernetes.md).\n";
  for (const auto& object : objects) {
    YAML::Emitter emitter;
    emitter << object;
    text += "---\n";
    text += emitter.c_str();
    text += "\n";
  }
  write_file_atomic(file, text, 0600);  // holds private keys
}

}  // namespace

std::string member_namespace(const MemberSpec& member) {
  return fmt::format("{}-{}", member.rec, member.id);
}

std::vector<fs::path> render_kubernetes(const Scenario& scenario, const fs::path& out_dir,
                                        const std::string& image) {
  const fs::path out = fs::absolute(out_dir);
  fs::create_directories(out);
  const std::string passphrase = random_passphrase();
  write_file_atomic(out / "ca.passphrase", passphrase, 0600);
  pki::Pki pki = pki::Pki::create(out / "pki", Secret(passphrase));
  issue_community(pki, scenario);
  const std::string central_host =
      fmt::format("central-broker.{}.svc.cluster.local", kPlatformNamespace);
  std::vector<fs::path> written;

  // The platform: central broker and EMS engine.
  {
    std::vector<YAML::Node> objects{namespace_of(kPlatformNamespace)};
    broker::CentralBrokerOptions options;
    options.ems_port = kEmsPort;
    options.bridge_port = kBridgePort;
    options.bind_address = "0.0.0.0";
    options.sans = {pki::SubjectAltName{pki::SubjectAltName::Type::kDns, central_host}};
    const fs::path rendered = out / ".rendered" / "central";
    broker::render_central_broker(pki, options, rendered);
    broker_objects(rendered, kPlatformNamespace, objects);
    objects.push_back(deployment(
        "central-broker", kPlatformNamespace, image,
        {"mosquitto", "-c", "/etc/mosquitto/conf/mosquitto.conf"},
        {{"broker-config", false, "/etc/mosquitto/conf"}, {"broker-tls", true, kBrokerFiles}},
        {kEmsPort, kBridgePort}));
    objects.push_back(service("central-broker", kPlatformNamespace,
                              {{"ems", kEmsPort}, {"bridge", kBridgePort}}));
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
        central_host, kEmsPort, kTlsFiles, kTlsFiles, kTlsFiles, kTrustFiles,
        scenario.policy_period_ms, scenario.control_timeout_ms, scenario.surplus_threshold_w,
        scenario.deficit_threshold_w, scenario.max_soc_percent, scenario.min_soc_percent);
    objects.push_back(config_map("ems-config", kPlatformNamespace, {{"ems.yaml", ems_yaml}}));
    auto tls = identity_files(pki, "ems_engine", "engine");
    tls["ems-ca.pem"] = pki.authority_chain_path("ems");
    objects.push_back(secret("ems-tls", kPlatformNamespace, tls));
    objects.push_back(deployment(
        "ems", kPlatformNamespace, image,
        {"recmesh", "ems", "--config", std::string(kConfigFiles) + "/ems.yaml"},
        {{"ems-config", false, kConfigFiles}, {"ems-tls", true, kTlsFiles}, ems_trust}, {}));
    written.push_back(out / "00-platform.yaml");
    write_manifest(written.back(), objects);
  }

  // One namespace per member.
  for (const MemberSpec* member : scenario.members()) {
    const std::string ns = member_namespace(*member);
    const std::string broker_host = fmt::format("local-broker.{}.svc.cluster.local", ns);
    std::vector<YAML::Node> objects{namespace_of(ns)};
    broker::LocalBrokerOptions options;
    options.rec = member->rec;
    options.member = member->id;
    options.member_port = kMemberPort;
    options.bridge_port = kBridgePort;
    options.bind_address = "0.0.0.0";
    options.sans = {pki::SubjectAltName{pki::SubjectAltName::Type::kDns, broker_host}};
    const fs::path rendered = out / ".rendered" / ns;
    broker::render_local_broker(pki, options, rendered);
    broker_objects(rendered, ns, objects);
    objects.push_back(deployment(
        "local-broker", ns, image, {"mosquitto", "-c", "/etc/mosquitto/conf/mosquitto.conf"},
        {{"broker-config", false, "/etc/mosquitto/conf"}, {"broker-tls", true, kBrokerFiles}},
        {kMemberPort, kBridgePort}));
    objects.push_back(
        service("local-broker", ns, {{"member", kMemberPort}, {"bridge", kBridgePort}}));

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
      bridge.central.host = central_host;
      bridge.store_path = "/var/lib/recmesh/bridge.db";
      objects.push_back(config_map("bridge-config", ns,
                                   {{"bridge.yaml", bridge::bridge_schema().render_yaml(bridge)}}));
      auto bridge_tls = identity_files(pki, bridge.common_name(), "bridge");
      bridge_tls["bridge-ca.pem"] =
          pki.files_of(pki.find_by_common_name(bridge.common_name())).cafile;
      objects.push_back(secret("bridge-tls", ns, bridge_tls));
      objects.push_back(deployment(
          "bridge", ns, image,
          {"recmesh", "bridge", "--config", std::string(kConfigFiles) + "/bridge.yaml"},
          {{"bridge-config", false, kConfigFiles}, {"bridge-tls", true, kTlsFiles}}, {}));
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
    objects.push_back(config_map("gateway-config", ns, {{"gateway.yaml", gateway_yaml}}));
    objects.push_back(secret("gateway-tls", ns, gateway_tls));
    objects.push_back(deployment(
        "gateway", ns, image,
        {"recmesh", "gateway", "--config", std::string(kConfigFiles) + "/gateway.yaml"},
        {{"gateway-config", false, kConfigFiles}, {"gateway-tls", true, kTlsFiles}, gateway_trust},
        {}));
    objects.push_back(config_map("devices-config", ns, {{"devices.yaml", devices_yaml}}));
    objects.push_back(secret("devices-tls", ns, device_tls));
    objects.push_back(deployment(
        "devices", ns, image,
        {"recmesh", "device", "--config", std::string(kConfigFiles) + "/devices.yaml"},
        {{"devices-config", false, kConfigFiles}, {"devices-tls", true, kTlsFiles}}, {}));
    written.push_back(out / (ns + ".yaml"));
    write_manifest(written.back(), objects);
  }
  fs::remove_all(out / ".rendered");
  return written;
}

}  // namespace recmesh::sim
