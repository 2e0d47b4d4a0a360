#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "recmesh/pki/pki.hpp"

#include "sim/community_registration.hpp"
#include "sim/scenario.hpp"

namespace recmesh::sim {

// The platform's Security Manager in a rendered cluster (docs/kubernetes.md, "The Security
// Manager"): its API Service, and the DNS name its certificate carries.
inline constexpr int kSecmgrApiPort = 8443;
std::string secmgr_host();

// The cluster's Security Manager, prepared at render time.
struct ClusterSecurityManager {
  std::map<std::string, std::string> bundles;  // each broker's signed policy, by broker ID
  std::filesystem::path database;              // its registry, holding the community
};

// Registers the scenario's community, as `sim run` does (register_community and
// register_brokers, without the simulator's own identities), with a Security Manager served in
// this process on 127.0.0.1 over a new registry `database` and `pki`, the brokers at their cluster
// addresses; returns the brokers' bundles, signed as the cluster's manager signs them and with
// sequences below any it will push. Issues the manager's certificates (ems_secmgr, ems_secmgr-api)
// when missing.
ClusterSecurityManager register_for_cluster(pki::Pki& pki, const Scenario& scenario,
                                            const std::vector<BrokerRegistration>& brokers,
                                            const std::filesystem::path& database);

// The Security Manager's objects in the platform namespace: ConfigMap secmgr-config
// (secmgr.yaml), Secret secmgr-state (a copy of the PKI without the leaf keys of others, and
// the registry), Secret secmgr-passphrase, PersistentVolumeClaim secmgr-data, Deployment and
// Service secmgr.
void secmgr_objects(const pki::Pki& pki, const std::filesystem::path& passphrase_file,
                    const ClusterSecurityManager& manager, const std::string& image,
                    std::vector<YAML::Node>& out);

}  // namespace recmesh::sim
