#include "sim/kubernetes_manifests.hpp"

#include <map>
#include <set>
#include <string>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include "recmesh/config/problem.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/text.hpp"
#include "recmesh/crypto/base64url.hpp"
#include "recmesh/e2e/handshake.hpp"
#include "recmesh/log/logger.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/policy_store.hpp"

#include "bridge/bridge_settings.hpp"
#include "device/device_config.hpp"
#include "ems/ems_config.hpp"
#include "gateway/gateway_config.hpp"
#include "kubelet_volume.hpp"
#include "secmgr/secmgr_config.hpp"
#include "secmgr/security_manager.hpp"
#include "sim/component_launchers.hpp"
#include "temp_dir.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

// kind/name -> object, per namespace.
using Objects = std::map<std::string, std::map<std::string, YAML::Node>>;

Objects load(const std::vector<fs::path>& files) {
  Objects out;
  for (const auto& file : files) {
    for (const auto& doc : YAML::LoadAllFromFile(file.string())) {
      const std::string kind = doc["kind"].as<std::string>();
      const std::string name = doc["metadata"]["name"].as<std::string>();
      const std::string ns =
          kind == "Namespace" ? name : doc["metadata"]["namespace"].as<std::string>();
      out[ns][kind + "/" + name] = doc;
    }
  }
  return out;
}

TEST(KubernetesManifests, OneNamespacePerMemberWithEverythingItMounts) {
  testing::TempDir tmp;
  const Scenario scenario = parse_scenario(
      "recs:\n  - id: sun\n    members:\n      - id: alice\n        devices: {pv: 1, battery: 1, "
      "smart_meter: 1}\n      - id: bob\n        devices: {passive_load: 2}\n",
      "k8s.yaml");
  const auto files = render_kubernetes(scenario, tmp / "out", "example/recmesh:1");
  ASSERT_EQ(files.size(), 3U);
  for (const auto& file : {files[0], files[1], files[2], tmp / "out" / "ca.passphrase"}) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600U) << file;  // Secrets hold keys
  }
  EXPECT_FALSE(fs::exists(tmp / "out" / ".rendered"));
  const Objects objects = load(files);
  ASSERT_EQ(objects.size(), 3U);
  ASSERT_TRUE(objects.contains("recmesh-platform"));
  ASSERT_TRUE(objects.contains("sun-alice"));
  ASSERT_TRUE(objects.contains("sun-bob"));

  for (const auto& [ns, in_ns] : objects) {
    EXPECT_TRUE(in_ns.contains("Namespace/" + ns));
    for (const auto& [key, object] : in_ns) {
      if (object["kind"].as<std::string>() != "Deployment") {
        continue;
      }
      const auto pod = object["spec"]["template"];
      EXPECT_EQ(
          pod["metadata"]["labels"]["app.kubernetes.io/name"].as<std::string>(),
          object["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>());
      EXPECT_EQ(pod["spec"]["containers"][0]["image"].as<std::string>(), "example/recmesh:1");
      for (const auto& volume : pod["spec"]["volumes"]) {
        if (volume["emptyDir"]) {
          continue;
        }
        const std::string wanted =
            volume["secret"] ? "Secret/" + volume["secret"]["secretName"].as<std::string>()
            : volume["configMap"]
                ? "ConfigMap/" + volume["configMap"]["name"].as<std::string>()
                : "PersistentVolumeClaim/" +
                      volume["persistentVolumeClaim"]["claimName"].as<std::string>();
        EXPECT_TRUE(in_ns.contains(wanted)) << ns << " " << key << " mounts missing " << wanted;
        if (volume["secret"]) {
          EXPECT_EQ(volume["secret"]["defaultMode"].as<int>(), 0400) << key;
        }
      }
    }
    for (const auto& [key, object] : in_ns) {
      if (object["kind"].as<std::string>() != "Secret") {
        continue;
      }
      for (const auto& item : object["data"]) {
        const std::string name = item.first.as<std::string>();
        const auto decoded = crypto::base64_decode(item.second.as<std::string>());
        ASSERT_TRUE(decoded.has_value()) << key << " " << name;
        if (name.ends_with(".pem") || name.ends_with(".crt") ||
            (name.ends_with(".key") && name != "guard.key")) {
          EXPECT_NE(decoded->find("-----BEGIN "), std::string::npos) << key << " " << name;
        }
      }
    }
  }

  const auto& platform = objects.at("recmesh-platform");
  for (const char* name :
       {"Deployment/central-broker", "Service/central-broker", "Deployment/ems",
        "ConfigMap/ems-config", "Secret/ems-tls", "ConfigMap/broker-config", "Secret/broker-tls"}) {
    EXPECT_TRUE(platform.contains(name)) << name;
  }
  const auto ports = platform.at("Service/central-broker")["spec"]["ports"];
  ASSERT_EQ(ports.size(), 2U);
  EXPECT_EQ(ports[0]["port"].as<int>(), 8883);
  EXPECT_EQ(ports[1]["port"].as<int>(), 8884);

  const auto& alice = objects.at("sun-alice");
  for (const char* name :
       {"Deployment/local-broker", "Service/local-broker", "Deployment/gateway",
        "Deployment/devices", "Secret/devices-tls", "Secret/gateway-tls", "Deployment/bridge",
        "ConfigMap/bridge-config", "Secret/bridge-tls", "ConfigMap/pki-trust"}) {
    EXPECT_TRUE(alice.contains(name)) << name;
  }
  const std::string conf =
      alice.at("ConfigMap/broker-config")["data"]["mosquitto.conf"].as<std::string>();
  // The member's link is its bridge Deployment, not a bridge inside the broker.
  EXPECT_EQ(conf.find("connection "), std::string::npos) << conf;
  EXPECT_EQ(conf.find("address "), std::string::npos) << conf;
  EXPECT_NE(conf.find("listener 8883 0.0.0.0"), std::string::npos);
  EXPECT_EQ(conf.find((tmp / "out").string()), std::string::npos);  // no host paths left
  const auto device_files = alice.at("Secret/devices-tls")["data"];
  for (const char* file : {"pv1.crt", "pv1.key", "battery1.crt", "meter.key", "member-ca.pem"}) {
    EXPECT_TRUE(device_files[file]) << file;
  }

  // The rendered daemon configurations load with the daemons' own parsers.
  // The bridge's files checked where its Secret would be mounted.
  const fs::path bridge_tls = tmp / "bridge-tls";
  fs::create_directories(bridge_tls);
  for (const auto& item : alice.at("Secret/bridge-tls")["data"]) {
    write_file_atomic(bridge_tls / item.first.as<std::string>(),
                      *crypto::base64_decode(item.second.as<std::string>()), 0600);
  }
  std::string bridge_yaml =
      alice.at("ConfigMap/bridge-config")["data"]["bridge.yaml"].as<std::string>();
  bridge_yaml = replace_all(bridge_yaml, "/etc/recmesh/tls", bridge_tls.string());
  const auto bridge = bridge::bridge_schema().load_text(bridge_yaml, "bridge.yaml");
  ASSERT_TRUE(bridge.ok()) << config::to_error(bridge.problems).what();
  EXPECT_EQ(bridge.settings.common_name(), "bridge_sun_alice");
  EXPECT_EQ(bridge.settings.local.host, "local-broker.sun-alice.svc.cluster.local");
  EXPECT_EQ(bridge.settings.local.port, 8884);
  EXPECT_EQ(bridge.settings.central.host, "central-broker.recmesh-platform.svc.cluster.local");
  EXPECT_EQ(bridge.settings.central.port, 8884);
  EXPECT_EQ(bridge.settings.store_path, "/var/lib/recmesh/bridge.db");
  const auto gateway_config = gateway::parse_gateway_config(
      alice.at("ConfigMap/gateway-config")["data"]["gateway.yaml"].as<std::string>(), "gw");
  EXPECT_EQ(gateway_config.pki_dir, "/etc/recmesh/pki");
  EXPECT_EQ(gateway_config.certfile, "/etc/recmesh/tls/gateway.crt");

  // The trust ConfigMaps, laid out as their pods see them, are what the end-to-end handshakes
  // read: the gateway the EMS CA, the engine every member CA.
  const auto unpack = [&tmp](const std::map<std::string, YAML::Node>& in_ns,
                             const std::string& name) {
    const fs::path root = tmp / name;
    for (const auto& [key, object] : in_ns) {
      if (object["kind"].as<std::string>() != "Deployment") {
        continue;
      }
      for (const auto& volume : object["spec"]["template"]["spec"]["volumes"]) {
        if (!volume["configMap"] || volume["configMap"]["name"].as<std::string>() != "pki-trust") {
          continue;
        }
        const auto data = in_ns.at("ConfigMap/pki-trust")["data"];
        for (const auto& item : volume["configMap"]["items"]) {
          const fs::path file = root / item["path"].as<std::string>();
          fs::create_directories(file.parent_path());
          write_file_atomic(file, data[item["key"].as<std::string>()].as<std::string>(), 0644);
        }
      }
    }
    return root;
  };
  const fs::path gateway_trust = unpack(alice, "alice-trust");
  EXPECT_NO_THROW(e2e::PeerTrust::from_pki_dir(gateway_trust, "ems", "ems_engine"));
  EXPECT_FALSE(fs::exists(gateway_trust / "ca" / "member_sun_alice"));  // only what it needs
  const fs::path ems_trust = unpack(platform, "platform-trust");
  EXPECT_NO_THROW(e2e::PeerTrust::from_pki_dir(ems_trust, "member_sun_bob", "rec_sun_bob_gateway"));
  for (const auto& [ns, in_ns] : objects) {
    if (in_ns.contains("ConfigMap/pki-trust")) {
      for (const auto& item : in_ns.at("ConfigMap/pki-trust")["data"]) {
        EXPECT_EQ(item.second.as<std::string>().find("PRIVATE KEY"), std::string::npos);
      }
    }
  }
  const auto devices = device::parse_device_config(
      alice.at("ConfigMap/devices-config")["data"]["devices.yaml"].as<std::string>(), "dev");
  EXPECT_EQ(devices.devices.size(), 3U);
  EXPECT_EQ(devices.broker_host, "local-broker.sun-alice.svc.cluster.local");
  EXPECT_NO_THROW(ems::parse_ems_config(
      platform.at("ConfigMap/ems-config")["data"]["ems.yaml"].as<std::string>(), "ems"));
}

// The files of a Secret, written as a pod sees them (items laid out by their paths, 0600).
fs::path unpack_secret(const YAML::Node& secret, const fs::path& root,
                       const YAML::Node& items = YAML::Node()) {
  std::map<std::string, std::string> paths;
  for (const auto& item : items) {
    paths[item["key"].as<std::string>()] = item["path"].as<std::string>();
  }
  for (const auto& item : secret["data"]) {
    const std::string key = item.first.as<std::string>();
    if (!items.IsNull() && !paths.contains(key)) {
      continue;
    }
    const fs::path file = root / (paths.contains(key) ? paths.at(key) : key);
    fs::create_directories(file.parent_path());
    fs::permissions(file.parent_path(), fs::perms::owner_all, fs::perm_options::replace);
    write_file_atomic(file, *crypto::base64_decode(item.second.as<std::string>()), 0600);
  }
  return root;
}

std::string decoded(const YAML::Node& secret, const std::string& key) {
  return *crypto::base64_decode(secret["data"][key].as<std::string>());
}

// The value of `option` in a mosquitto.conf ("" when absent).
std::string conf_value(const std::string& conf, const std::string& option) {
  const std::string prefix = "\n" + option + " ";
  const auto at = conf.find(prefix);
  if (at == std::string::npos) {
    return {};
  }
  const auto start = at + prefix.size();
  return conf.substr(start, conf.find('\n', start) - start);
}

// A pod volume of `deployment` by name (undefined when absent).
YAML::Node find_volume(const YAML::Node& deployment, const std::string& name) {
  for (const auto& volume : deployment["spec"]["template"]["spec"]["volumes"]) {
    if (volume["name"].as<std::string>() == name) {
      return static_cast<const YAML::Node&>(volume);
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

// mountPath -> (volume, readOnly) of a container.
std::map<std::string, std::pair<std::string, bool>> mounts_of(const YAML::Node& container) {
  std::map<std::string, std::pair<std::string, bool>> out;
  for (const auto& mount : container["volumeMounts"]) {
    out[mount["mountPath"].as<std::string>()] = {mount["name"].as<std::string>(),
                                                 mount["readOnly"].as<bool>()};
  }
  return out;
}

const policy::Grant* grant_of(const policy::PolicyBundle& bundle, const std::string& cn) {
  for (const auto& grant : bundle.grants) {
    if (grant.identity.ends_with(":" + cn)) {
      return &grant;
    }
  }
  return nullptr;
}

std::set<std::string> as_set(const std::vector<std::string>& topics) {
  return {topics.begin(), topics.end()};
}

TEST(KubernetesManifests, EveryBrokerStartsGuardedWithTheSecurityManagersBundle) {
  testing::TempDir tmp;
  const Scenario scenario = parse_scenario(
      "recs:\n  - id: sun\n    members:\n      - id: alice\n        devices: {pv: 1, battery: 1}\n"
      "      - id: bob\n        devices: {smart_meter: 1}\n",
      "k8s.yaml");
  const auto files =
      render_kubernetes(scenario, tmp / "out", "example/recmesh:1", "/opt/recmesh/guard.so");
  const Objects objects = load(files);
  const auto& platform = objects.at("recmesh-platform");

  // The Security Manager: its Deployment restores the rendered state into its claim, then runs.
  for (const char* name :
       {"Deployment/secmgr", "Service/secmgr", "ConfigMap/secmgr-config", "Secret/secmgr-state",
        "Secret/secmgr-passphrase", "PersistentVolumeClaim/secmgr-data"}) {
    ASSERT_TRUE(platform.contains(name)) << name;
  }
  const auto secmgr_service = platform.at("Service/secmgr")["spec"]["ports"];
  ASSERT_EQ(secmgr_service.size(), 1U);
  EXPECT_EQ(secmgr_service[0]["port"].as<int>(), 8443);
  const YAML::Node secmgr = platform.at("Deployment/secmgr");
  EXPECT_EQ(secmgr["spec"]["strategy"]["type"].as<std::string>(), "Recreate");
  const auto secmgr_pod = secmgr["spec"]["template"]["spec"];
  ASSERT_EQ(secmgr_pod["initContainers"].size(), 1U);
  const auto restore_mounts = mounts_of(secmgr_pod["initContainers"][0]);
  EXPECT_EQ(restore_mounts.at("/run/recmesh/secmgr-state/0"),
            std::make_pair(std::string("secmgr-state"), true));
  EXPECT_EQ(restore_mounts.size(), 2U) << "a small community's state fits in one Secret";
  EXPECT_EQ(restore_mounts.at("/var/lib/recmesh"),
            std::make_pair(std::string("secmgr-data"), false));
  const auto secmgr_mounts = mounts_of(secmgr_pod["containers"][0]);
  EXPECT_EQ(secmgr_mounts.at("/etc/recmesh/config").first, "secmgr-config");
  EXPECT_EQ(secmgr_mounts.at("/etc/recmesh/passphrase").first, "secmgr-passphrase");
  EXPECT_EQ(secmgr_mounts.at("/var/lib/recmesh"),
            std::make_pair(std::string("secmgr-data"), false));
  EXPECT_EQ(secmgr_pod["containers"][0]["command"][1].as<std::string>(), "secmgr");
  EXPECT_EQ(decoded(platform.at("Secret/secmgr-passphrase"), "ca.passphrase"),
            read_file(tmp / "out" / "ca.passphrase"));

  // Its state, as the init container leaves it in the claim from the Secrets it mounts: a PKI
  // that opens, holding its own keys but no other leaf key, and a registry that already holds
  // the community and the brokers at their cluster addresses.
  const fs::path state = tmp / "claim";
  fs::create_directories(state);
  for (const auto& [path, mount] : restore_mounts) {
    if (mount.first == "secmgr-data") {
      continue;
    }
    const YAML::Node volume = find_volume(secmgr, mount.first);
    ASSERT_TRUE(volume.IsDefined()) << mount.first;
    std::map<std::string, std::string> contents;
    std::map<std::string, std::string> items;
    for (const auto& item : platform.at("Secret/" + mount.first)["data"]) {
      contents[item.first.as<std::string>()] =
          decoded(platform.at("Secret/" + mount.first), item.first.as<std::string>());
    }
    for (const auto& item : volume["secret"]["items"]) {
      items[item["key"].as<std::string>()] = item["path"].as<std::string>();
    }
    testing::mount_secret_like_kubelet(tmp / "seed" / fs::path(path).filename(), contents, items);
  }
  const testing::ScriptResult restored =
      testing::run_pod_script(secmgr_pod["initContainers"][0]["command"][2].as<std::string>(),
                              {{"/var/lib/recmesh", state.string()},
                               {"/run/recmesh/secmgr-state", (tmp / "seed").string()}});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_TRUE(fs::exists(state / "pki" / "issued" / "ems_secmgr" / "key.pem"));
  EXPECT_TRUE(fs::exists(state / "pki" / "issued" / "ems_secmgr-api" / "key.pem"));
  EXPECT_TRUE(fs::exists(state / "pki" / "ca" / "ems" / "key.pem"));
  EXPECT_TRUE(fs::exists(state / "pki" / "ca" / "member_sun_bob" / "crl.pem"));
  EXPECT_TRUE(fs::exists(state / "pki" / "bundles" / "bridge_sun_bob.pem"));
  EXPECT_FALSE(fs::exists(state / "pki" / "issued" / "rec_sun_alice_pv1"));
  EXPECT_FALSE(fs::exists(state / "pki" / "issued" / "broker_sun_alice" / "key.pem"));
  {
    pki::Pki copy = pki::Pki::open(state / "pki", pki::Pki::Access::kReadOnly);
    EXPECT_NO_THROW(copy.find_by_common_name("broker_sun_bob"));  // issued after registration
    // secmgr.yaml loads with the daemon's parser where the pod mounts its files.
    const fs::path passphrase_dir =
        unpack_secret(platform.at("Secret/secmgr-passphrase"), tmp / "passphrase");
    std::string yaml =
        platform.at("ConfigMap/secmgr-config")["data"]["secmgr.yaml"].as<std::string>();
    EXPECT_NE(yaml.find("dir: /var/lib/recmesh/pki"), std::string::npos) << yaml;
    yaml = replace_all(yaml, "/var/lib/recmesh", state.string());
    yaml = replace_all(yaml, "/etc/recmesh/passphrase", passphrase_dir.string());
    const auto settings = secmgr::secmgr_schema().load_text(yaml, "secmgr.yaml");
    ASSERT_TRUE(settings.ok()) << config::to_error(settings.problems).what();
    EXPECT_EQ(settings.settings.database, state / "secmgr.db");
    EXPECT_EQ(settings.settings.api_address, "0.0.0.0");
    EXPECT_EQ(settings.settings.api_port, 8443);
    EXPECT_EQ(settings.settings.device_publish_per_second, kDevicePublishPerSecond);
    secmgr::SecurityManager manager(state / "secmgr.db", std::move(copy), log::Logger("registry"));
    const auto brokers = manager.list_brokers().body["brokers"];
    std::map<std::string, std::pair<std::string, int>> registered;
    for (const auto& broker : brokers) {
      registered[broker["id"].get<std::string>()] = {broker["host"].get<std::string>(),
                                                     broker["port"].get<int>()};
      EXPECT_EQ(broker["connector"], "guard");
    }
    EXPECT_EQ(
        registered.at("ems_broker"),
        std::make_pair(std::string("central-broker.recmesh-platform.svc.cluster.local"), 8883));
    EXPECT_EQ(registered.at("broker_sun_alice"),
              std::make_pair(std::string("local-broker.sun-alice.svc.cluster.local"), 8885));
    EXPECT_EQ(registered.size(), 3U);
    EXPECT_EQ(manager.list_devices("sun", "alice").body["devices"].size(), 3U);  // + gateway
    EXPECT_EQ(manager.list_services().body["services"].size(), 0U);  // no simulator observer
  }

  // Every broker: recmesh-guard loaded from the image, its files in the broker's Secret, its
  // store seeded with a bundle that the Security Manager's certificate verifies and that grants
  // the derived rows of SPEC §6.
  const std::string secmgr_cert =
      decoded(platform.at("Secret/secmgr-state"), "pki.issued.ems_secmgr.cert.pem");
  const auto trust_data = platform.at("ConfigMap/pki-trust")["data"];
  const policy::BundleVerifier verifier({trust_data["ems.cert.pem"].as<std::string>(),
                                         trust_data["ems.crl.pem"].as<std::string>(), secmgr_cert});
  const std::vector<policy::MemberRegistration> registrations{{"sun", "alice", {"pv1", "battery1"}},
                                                              {"sun", "bob", {"meter"}}};
  struct Broker {
    std::string ns;
    std::string name;
    policy::BrokerId id;
    std::string bridge_row;  // whose grant is compared with the derived one
  };
  for (const Broker& b :
       {Broker{"recmesh-platform", "central-broker", policy::BrokerId::central(), "bridge_sun_bob"},
        Broker{"sun-alice", "local-broker", policy::BrokerId::local("sun", "alice"),
               "bridge_sun_alice"},
        Broker{"sun-bob", "local-broker", policy::BrokerId::local("sun", "bob"),
               "bridge_sun_bob"}}) {
    SCOPED_TRACE(b.ns);
    const auto& in_ns = objects.at(b.ns);
    const std::string conf =
        in_ns.at("ConfigMap/broker-config")["data"]["mosquitto.conf"].as<std::string>();
    EXPECT_EQ(conf_value(conf, "plugin"), "/opt/recmesh/guard.so");
    EXPECT_EQ(conf_value(conf, "plugin_opt_broker"), b.id.to_string());
    EXPECT_EQ(conf.find("use_identity_as_username"), std::string::npos);
    EXPECT_EQ(conf.find((tmp / "out").string()), std::string::npos);
    EXPECT_EQ(conf_value(conf, "plugin_opt_policy_file"), "/var/lib/mosquitto/guard-policy.bin");
    EXPECT_EQ(conf_value(conf, "plugin_opt_key_file"), "/etc/recmesh/broker/guard.key");
    const YAML::Node tls = in_ns.at("Secret/broker-tls");
    for (const char* option : {"plugin_opt_ca_bridge", "plugin_opt_ca_ems", "plugin_opt_ems_crl",
                               "plugin_opt_secmgr_cert", "plugin_opt_key_file"}) {
      const fs::path file = conf_value(conf, option);
      EXPECT_EQ(file.parent_path(), "/etc/recmesh/broker") << option;
      EXPECT_TRUE(tls["data"][file.filename().string()]) << option << " " << file;
    }
    EXPECT_EQ(decoded(tls, "guard-secmgr.pem"), secmgr_cert);

    // The pod: the Secret is installed into the broker's own volumes by the init container,
    // which seeds the store where the configuration expects it.
    const YAML::Node deployment = in_ns.at("Deployment/" + b.name);
    const auto pod = deployment["spec"]["template"]["spec"];
    ASSERT_EQ(pod["initContainers"].size(), 1U);
    const auto init_mounts = mounts_of(pod["initContainers"][0]);
    EXPECT_EQ(init_mounts.at("/run/recmesh/broker-tls"),
              std::make_pair(std::string("broker-tls"), true));
    EXPECT_EQ(init_mounts.at("/etc/recmesh/broker").first, "broker-files");
    EXPECT_EQ(init_mounts.at("/var/lib/mosquitto").first, "broker-data");
    const std::string script = pod["initContainers"][0]["command"][2].as<std::string>();
    EXPECT_NE(script.find("-m 0600 guard-policy.bin /var/lib/mosquitto/guard-policy.bin"),
              std::string::npos)
        << script;
    const auto broker_mounts = mounts_of(pod["containers"][0]);
    EXPECT_EQ(broker_mounts.at("/etc/mosquitto/conf").first, "broker-config");
    EXPECT_EQ(broker_mounts.at("/etc/recmesh/broker"),
              std::make_pair(std::string("broker-files"), true));
    EXPECT_EQ(broker_mounts.at("/var/lib/mosquitto"),
              std::make_pair(std::string("broker-data"), false));

    const fs::path files_dir = unpack_secret(tls, tmp / ("files-" + b.ns));
    const policy::PolicyStore store(files_dir / "guard-policy.bin", files_dir / "guard.key");
    const auto stored = store.load();
    ASSERT_TRUE(stored.ok() && stored->has_value()) << b.ns;
    const auto bundle = verifier.verify(**stored, b.id, 0);
    ASSERT_TRUE(bundle.ok()) << bundle.status().message;
    // Another broker's bundle is refused.
    EXPECT_FALSE(verifier.verify(**stored, policy::BrokerId::local("sun", "carol"), 0).ok());
    const auto derived = policy::derived_bundle(b.id, registrations, 1, 0);
    ASSERT_TRUE(derived.ok());
    const policy::Grant* granted = grant_of(*bundle, b.bridge_row);
    const policy::Grant* wanted = grant_of(*derived, b.bridge_row);
    ASSERT_NE(granted, nullptr);
    ASSERT_NE(wanted, nullptr);
    EXPECT_EQ(as_set(granted->publish), as_set(wanted->publish));
    EXPECT_EQ(as_set(granted->subscribe), as_set(wanted->subscribe));
    EXPECT_FALSE(wanted->publish.empty());
    EXPECT_NE(grant_of(*bundle, "ems_secmgr"), nullptr);
  }
  const auto alice_ports = objects.at("sun-alice").at("Service/local-broker")["spec"]["ports"];
  ASSERT_EQ(alice_ports.size(), 3U);
  EXPECT_EQ(alice_ports[2]["name"].as<std::string>(), "management");
  EXPECT_EQ(alice_ports[2]["port"].as<int>(), 8885);

  // No private key, passphrase or guard key in any ConfigMap.
  const std::string passphrase = read_file(tmp / "out" / "ca.passphrase");
  for (const auto& [ns, in_ns] : objects) {
    for (const auto& [key, object] : in_ns) {
      if (object["kind"].as<std::string>() != "ConfigMap") {
        continue;
      }
      for (const auto& item : object["data"]) {
        const std::string text = item.second.as<std::string>();
        EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos) << ns << " " << key;
        EXPECT_EQ(text.find(passphrase), std::string::npos) << ns << " " << key;
      }
    }
  }
}

TEST(KubernetesManifests, RefusesAGuardPluginPathOutsideTheImage) {
  testing::TempDir tmp;
  const Scenario scenario = parse_scenario(
      "recs:\n  - id: sun\n    members:\n      - id: alice\n        devices: {pv: 1}\n", "k.yaml");
  for (const char* path : {"recmesh_guard.so", "lib/recmesh/recmesh_guard.so", ""}) {
    try {
      render_kubernetes(scenario, tmp / "out", "example/recmesh:1", path);
      ADD_FAILURE() << path << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << path;
    }
  }
  EXPECT_FALSE(fs::exists(tmp / "out"));  // refused before anything is written
}

}  // namespace
}  // namespace recmesh::sim
