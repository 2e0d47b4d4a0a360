#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include <yaml-cpp/yaml.h>

namespace recmesh::sim::k8s {

// The Kubernetes objects `sim render-k8s` writes (docs/kubernetes.md). Every object carries
// app.kubernetes.io/part-of: recmesh and app.kubernetes.io/component; Deployments select on
// app.kubernetes.io/name.

YAML::Node namespace_of(const std::string& ns);
YAML::Node config_map(const std::string& name, const std::string& ns,
                      const std::map<std::string, std::string>& files);
// A Secret of the files' contents (base64), by key.
YAML::Node secret(const std::string& name, const std::string& ns,
                  const std::map<std::string, std::filesystem::path>& files);
// A Secret of these contents (base64), by key.
YAML::Node secret_of_contents(const std::string& name, const std::string& ns,
                              const std::map<std::string, std::string>& contents);
YAML::Node service(const std::string& name, const std::string& ns,
                   const std::vector<std::pair<std::string, int>>& ports);
// A ReadWriteOnce claim of `size` (e.g. "1Gi") on the cluster's default storage class.
YAML::Node persistent_volume_claim(const std::string& name, const std::string& ns,
                                   const std::string& size);

enum class VolumeKind { kConfigMap, kSecret, kEmptyDir, kClaim };

// A volume mounted into a container. A ConfigMap, Secret or claim volume is named after its
// object; Secrets are mounted with mode 0400.
struct Mount {
  Mount(std::string volume_name, VolumeKind volume_kind, std::string mount_path,
        std::map<std::string, std::string> key_paths = {})
      : volume(std::move(volume_name)),
        kind(volume_kind),
        path(std::move(mount_path)),
        items(std::move(key_paths)) {}
  // Mounted read-write (emptyDir and claim volumes that a container fills or keeps).
  Mount writable() && {
    read_only = false;
    return std::move(*this);
  }

  std::string volume;
  VolumeKind kind;
  std::string path;
  std::map<std::string, std::string> items;  // key -> relative path; empty: every key as a file
  bool read_only = true;
};

struct Container {
  std::string name;
  std::vector<std::string> command;
  std::vector<Mount> mounts;
  std::vector<int> ports;
};

// One replica of `main`, after `init` (run to completion, in order) in the same pod. The pod's
// volumes are those the containers mount (the first mount of a volume gives its items).
// `recreate`: the old pod is stopped before the new one starts (a ReadWriteOnce claim).
YAML::Node deployment(const std::string& name, const std::string& ns, const std::string& image,
                      const Container& main, const std::vector<Container>& init = {},
                      bool recreate = false);

// `objects` as one multi-document YAML file, mode 0600 (Secrets hold private keys).
void write_manifest(const std::filesystem::path& file, const std::vector<YAML::Node>& objects);

}  // namespace recmesh::sim::k8s
