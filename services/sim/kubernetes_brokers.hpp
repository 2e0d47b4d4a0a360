#pragma once

#include <filesystem>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "recmesh/pki/pki.hpp"

#include "sim/scenario.hpp"

namespace recmesh::sim {

// The brokers' listeners in a rendered cluster (docs/kubernetes.md).
inline constexpr int kMemberPort = 8883;      // local broker: devices and gateway
inline constexpr int kBridgePort = 8884;      // both brokers: the member's bridge
inline constexpr int kManagementPort = 8885;  // local broker: the Security Manager (EMS CA)
inline constexpr int kEmsPort = 8883;         // central broker: EMS services and the manager

// The DNS names of the brokers' Services (and SANs of their server certificates).
std::string central_broker_host();
std::string local_broker_host(const std::string& ns);

// Where the broker containers find their files; the guard's store is in the data directory.
inline constexpr const char* kBrokerFiles = "/etc/recmesh/broker";
inline constexpr const char* kBrokerData = "/var/lib/mosquitto";
inline constexpr const char* kGuardStore = "guard-policy.bin";

// Renders a broker (as `broker-config` does, under `scratch`) with recmesh-guard loaded from
// `guard_plugin` (a path inside the image) and its store seeded with `policy`, and appends its
// ConfigMap broker-config (mosquitto.conf, paths moved to the mounts), Secret broker-tls (every
// file it names, the seeded store among them), Deployment and Service to `out`.
void central_broker_objects(pki::Pki& pki, const std::filesystem::path& scratch,
                            const std::filesystem::path& guard_plugin, const std::string& policy,
                            const std::string& image, std::vector<YAML::Node>& out);
void local_broker_objects(pki::Pki& pki, const MemberSpec& member, const std::string& ns,
                          const std::filesystem::path& scratch,
                          const std::filesystem::path& guard_plugin, const std::string& policy,
                          const std::string& image, std::vector<YAML::Node>& out);

}  // namespace recmesh::sim
