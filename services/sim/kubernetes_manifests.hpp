#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "sim/scenario.hpp"

namespace recmesh::sim {

// The namespace of the platform (central broker, EMS engine) and of a member (thesis §4.3:
// one namespace per member, "<rec>-<member>").
inline constexpr const char* kPlatformNamespace = "recmesh-platform";
std::string member_namespace(const MemberSpec& member);

// Where an installed tree puts recmesh-guard (`cmake --install`, default prefix).
inline constexpr const char* kImageGuardPlugin = "/usr/local/lib/recmesh/recmesh_guard.so";

// `recmesh sim render-k8s`: Kubernetes manifests for the scenario's community, with a fresh
// PKI under out_dir/pki (CA passphrase in out_dir/ca.passphrase, 0600). Writes
// out_dir/00-platform.yaml and one <rec>-<member>.yaml per member: Namespaces, ConfigMaps with
// the broker, gateway, device, EMS and Security Manager configurations, Secrets with
// certificates, keys, CRLs, the brokers' seeded policy and the manager's state, Deployments and
// Services. Every broker loads recmesh-guard from `guard_plugin` (an absolute path in `image`;
// Error(kInvalidArgument) otherwise). Returns the manifest files written (docs/kubernetes.md).
std::vector<std::filesystem::path> render_kubernetes(
    const Scenario& scenario, const std::filesystem::path& out_dir, const std::string& image,
    const std::filesystem::path& guard_plugin = kImageGuardPlugin);

}  // namespace recmesh::sim
