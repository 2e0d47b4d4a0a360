#include "sim/kubernetes_manifests.hpp"

#include <map>
#include <set>
#include <string>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include "recmesh/config/problem.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/base64url.hpp"
#include "recmesh/e2e/handshake.hpp"

#include "bridge/bridge_settings.hpp"
#include "device/device_config.hpp"
#include "ems/ems_config.hpp"
#include "gateway/gateway_config.hpp"
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
  struct stat st {};
  ASSERT_EQ(::stat(files[1].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);  // Secrets hold keys
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
        const std::string wanted =
            volume["secret"] ? "Secret/" + volume["secret"]["secretName"].as<std::string>()
                             : "ConfigMap/" + volume["configMap"]["name"].as<std::string>();
        EXPECT_TRUE(in_ns.contains(wanted)) << ns << " " << key << " mounts missing " << wanted;
      }
    }
    for (const auto& [key, object] : in_ns) {
      if (object["kind"].as<std::string>() != "Secret") {
        continue;
      }
      for (const auto& item : object["data"]) {
        const auto decoded = crypto::base64_decode(item.second.as<std::string>());
        ASSERT_TRUE(decoded.has_value()) << key << " " << item.first.as<std::string>();
        EXPECT_NE(decoded->find("-----BEGIN "), std::string::npos)
            << key << " " << item.first.as<std::string>();
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
  for (auto at = bridge_yaml.find("/etc/recmesh/tls"); at != std::string::npos;
       at = bridge_yaml.find("/etc/recmesh/tls")) {
    bridge_yaml.replace(at, std::string("/etc/recmesh/tls").size(), bridge_tls.string());
  }
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

}  // namespace
}  // namespace recmesh::sim
