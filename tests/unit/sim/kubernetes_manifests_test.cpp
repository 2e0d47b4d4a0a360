#include "sim/kubernetes_manifests.hpp"

#include <map>
#include <set>
#include <string>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include "recmesh/crypto/base64url.hpp"

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
  for (const char* name : {"Deployment/local-broker", "Service/local-broker", "Deployment/gateway",
                           "Deployment/devices", "Secret/devices-tls", "Secret/gateway-tls"}) {
    EXPECT_TRUE(alice.contains(name)) << name;
  }
  const std::string conf =
      alice.at("ConfigMap/broker-config")["data"]["mosquitto.conf"].as<std::string>();
  EXPECT_NE(conf.find("address central-broker.recmesh-platform.svc.cluster.local:8884"),
            std::string::npos)
      << conf;
  EXPECT_NE(conf.find("listener 8883 0.0.0.0"), std::string::npos);
  EXPECT_EQ(conf.find((tmp / "out").string()), std::string::npos);  // no host paths left
  const auto device_files = alice.at("Secret/devices-tls")["data"];
  for (const char* file : {"pv1.crt", "pv1.key", "battery1.crt", "meter.key", "member-ca.pem"}) {
    EXPECT_TRUE(device_files[file]) << file;
  }

  // The rendered daemon configurations load with the daemons' own parsers.
  EXPECT_NO_THROW(gateway::parse_gateway_config(
      alice.at("ConfigMap/gateway-config")["data"]["gateway.yaml"].as<std::string>(), "gw"));
  const auto devices = device::parse_device_config(
      alice.at("ConfigMap/devices-config")["data"]["devices.yaml"].as<std::string>(), "dev");
  EXPECT_EQ(devices.devices.size(), 3U);
  EXPECT_EQ(devices.broker_host, "local-broker.sun-alice.svc.cluster.local");
  EXPECT_NO_THROW(ems::parse_ems_config(
      platform.at("ConfigMap/ems-config")["data"]["ems.yaml"].as<std::string>(), "ems"));
}

}  // namespace
}  // namespace recmesh::sim
