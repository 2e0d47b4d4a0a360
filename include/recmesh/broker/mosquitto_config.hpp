#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "recmesh/pki/pki.hpp"

namespace recmesh::broker {

// A TLS listener as rendered into mosquitto.conf.
struct ListenerSummary {
  std::string role;  // member, bridge, management, ems
  int port = 0;
  std::string bind_address;
  std::string trusts;  // CA whose clients it accepts
};

// Mosquitto's own bridge to the central broker, authenticated with the member's Bridge-CA
// certificate. A stand-in until the recmesh bridging module replaces it.
struct BuiltinBridge {
  std::string host;
  int port = 0;
};

// Loading recmesh-guard (docs/recmesh-guard.md): identity by issuing CA, ACLs and revocations
// pushed by the Security Manager, quotas, security events.
struct GuardPluginOptions {
  std::filesystem::path plugin;  // recmesh_guard.so
  std::uint32_t events_per_second = 20;
  // A policy bundle signed by the Security Manager (`recmesh sec broker bundle`), written into
  // the guard's encrypted store so that the broker starts with its policy instead of denying
  // everything until the first push. Verified like a pushed one; ignored (kept as is) when the
  // store already holds a bundle with the same or a higher sequence.
  std::optional<std::string> seed_bundle = std::nullopt;
  // false: the configuration is for another machine (`sim render-k8s`), where `plugin` is an
  // absolute path inside its image; it need not exist here.
  bool plugin_is_local = true;
};

// Where `recmesh` expects the plugin: <dir of the executable>/../lib/recmesh/recmesh_guard.so,
// which is where both the build tree and an installed tree put it.
std::filesystem::path default_guard_plugin_path();

struct LocalBrokerOptions {
  std::string rec;
  std::string member;
  int member_port = 0;
  int bridge_port = 0;
  std::optional<int> management_port;
  std::string bind_address = "127.0.0.1";
  std::vector<pki::SubjectAltName> sans;  // extra SANs if the server certificate is issued now
  std::optional<BuiltinBridge> bridge_to;
  std::string user;  // account the broker runs as when started by root (default mosquitto)
  std::optional<GuardPluginOptions> guard;
};

struct CentralBrokerOptions {
  int ems_port = 0;
  int bridge_port = 0;
  std::string bind_address = "127.0.0.1";
  std::vector<pki::SubjectAltName> sans;
  std::string user;
  std::optional<GuardPluginOptions> guard;
};

struct RenderedBroker {
  std::filesystem::path config;  // DIR/mosquitto.conf
  std::string server_common_name;
  bool issued_server_certificate = false;
  std::vector<ListenerSummary> listeners;
  std::optional<std::filesystem::path> guard_plugin;
  bool issued_secmgr_certificate = false;  // the guard needs the Security Manager's certificate
  // The sequence of the policy in the guard's store after rendering (a seeded or kept one).
  std::optional<std::uint64_t> stored_policy_sequence = std::nullopt;
  bool seeded_policy = false;  // the seed bundle was written (it was newer than the store)
};

// Writes DIR/mosquitto.conf and every file it references (server chain and key, per-listener
// CA bundles and CRLs). Each listener trusts one CA only: its bundle holds that CA's chain and
// its CRL file holds that CA's CRL alone, so OpenSSL's CRL check refuses a client certificate
// of any other issuer. Issues the broker's server certificate when it has none. Idempotent:
// re-running refreshes CRLs and keeps the certificate.
RenderedBroker render_local_broker(pki::Pki& pki, const LocalBrokerOptions& options,
                                   const std::filesystem::path& out_dir);
RenderedBroker render_central_broker(pki::Pki& pki, const CentralBrokerOptions& options,
                                     const std::filesystem::path& out_dir);

}  // namespace recmesh::broker
