// The Kubernetes objects of `sim render-k8s`, as yaml-cpp nodes (docs/kubernetes.md).
#include "sim/kubernetes_objects.hpp"

#include <set>

#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/base64url.hpp"

namespace recmesh::sim::k8s {
namespace {

namespace fs = std::filesystem;

constexpr int kSecretMode = 0400;

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

YAML::Node container_node(const std::string& image, const Container& spec) {
  YAML::Node container;
  container["name"] = spec.name;
  container["image"] = image;
  for (const auto& arg : spec.command) {
    container["command"].push_back(arg);
  }
  for (const int port : spec.ports) {
    YAML::Node p;
    p["containerPort"] = port;
    container["ports"].push_back(p);
  }
  container["securityContext"]["allowPrivilegeEscalation"] = false;
  container["securityContext"]["readOnlyRootFilesystem"] = false;
  for (const auto& mount : spec.mounts) {
    YAML::Node m;
    m["name"] = mount.volume;
    m["mountPath"] = mount.path;
    m["readOnly"] = mount.read_only;
    container["volumeMounts"].push_back(m);
  }
  return container;
}

YAML::Node volume_node(const Mount& mount) {
  YAML::Node v;
  v["name"] = mount.volume;
  const char* source = nullptr;
  switch (mount.kind) {
    case VolumeKind::kSecret:
      source = "secret";
      v[source]["secretName"] = mount.volume;
      v[source]["defaultMode"] = kSecretMode;
      break;
    case VolumeKind::kConfigMap:
      source = "configMap";
      v[source]["name"] = mount.volume;
      break;
    case VolumeKind::kEmptyDir:
      v["emptyDir"] = YAML::Node(YAML::NodeType::Map);
      return v;
    case VolumeKind::kClaim:
      v["persistentVolumeClaim"]["claimName"] = mount.volume;
      return v;
  }
  for (const auto& [key, path] : mount.items) {
    YAML::Node item;
    item["key"] = key;
    item["path"] = path;
    v[source]["items"].push_back(item);
  }
  return v;
}

}  // namespace

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
  std::map<std::string, std::string> contents;
  for (const auto& [key, path] : files) {
    contents.emplace(key, read_file(path));
  }
  return secret_of_contents(name, ns, contents);
}

YAML::Node secret_of_contents(const std::string& name, const std::string& ns,
                              const std::map<std::string, std::string>& contents) {
  YAML::Node n;
  n["apiVersion"] = "v1";
  n["kind"] = "Secret";
  n["type"] = "Opaque";
  n["metadata"] = metadata(name, ns, name);
  for (const auto& [key, content] : contents) {
    n["data"][key] = crypto::base64_encode(content);
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

YAML::Node persistent_volume_claim(const std::string& name, const std::string& ns,
                                   const std::string& size) {
  YAML::Node n;
  n["apiVersion"] = "v1";
  n["kind"] = "PersistentVolumeClaim";
  n["metadata"] = metadata(name, ns, name);
  n["spec"]["accessModes"].push_back("ReadWriteOnce");
  n["spec"]["resources"]["requests"]["storage"] = size;
  return n;
}

YAML::Node deployment(const std::string& name, const std::string& ns, const std::string& image,
                      const Container& main, const std::vector<Container>& init, bool recreate) {
  YAML::Node n;
  n["apiVersion"] = "apps/v1";
  n["kind"] = "Deployment";
  n["metadata"] = metadata(name, ns, name);
  n["spec"]["replicas"] = 1;
  if (recreate) {
    n["spec"]["strategy"]["type"] = "Recreate";
  }
  n["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = name;
  YAML::Node pod;
  pod["metadata"]["labels"]["app.kubernetes.io/name"] = name;
  pod["metadata"]["labels"]["app.kubernetes.io/part-of"] = "recmesh";
  std::set<std::string> volumes;
  const auto add_volumes = [&](const Container& container) {
    for (const auto& mount : container.mounts) {
      if (volumes.insert(mount.volume).second) {
        pod["spec"]["volumes"].push_back(volume_node(mount));
      }
    }
  };
  for (const auto& container : init) {
    pod["spec"]["initContainers"].push_back(container_node(image, container));
    add_volumes(container);
  }
  pod["spec"]["containers"].push_back(container_node(image, main));
  add_volumes(main);
  n["spec"]["template"] = pod;
  return n;
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

}  // namespace recmesh::sim::k8s
