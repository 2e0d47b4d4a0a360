#include "recmesh/broker/mosquitto_config.hpp"

#include <arpa/inet.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/broker/seed_policy.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/policy_bundle.hpp"
#include "recmesh/policy/policy_store.hpp"

namespace recmesh::broker {
namespace {

namespace fs = std::filesystem;
constexpr mode_t kPublicFile = 0644;
constexpr mode_t kPrivateFile = 0600;
constexpr int kMaxPort = 65535;

void require_port(std::string_view flag, int port) {
  if (port < 1 || port > kMaxPort) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} {} is not a TCP port (1..{})", flag, port, kMaxPort));
  }
}

void require_distinct_ports(const std::vector<int>& ports) {
  for (std::size_t i = 0; i < ports.size(); ++i) {
    for (std::size_t j = i + 1; j < ports.size(); ++j) {
      if (ports[i] == ports[j]) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("port {} is given to two listeners", ports[i]));
      }
    }
  }
}

void require_bind_address(const std::string& address) {
  unsigned char buffer[16];
  if (::inet_pton(AF_INET, address.c_str(), buffer) != 1 &&
      ::inet_pton(AF_INET6, address.c_str(), buffer) != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("--bind {} is not an IP address", quote_untrusted(address)));
  }
}

// The valid certificate of `identity`, issued now if it has none.
pki::IssuedCertificate server_identity(pki::Pki& pki, const pki::Identity& identity,
                                       const std::vector<pki::SubjectAltName>& sans,
                                       bool& issued_now) {
  if (const auto current = pki.valid_certificate(identity.common_name())) {
    if (!current->has_key) {
      throw Error(
          ErrorCode::kFailedPrecondition,
          fmt::format("{} was issued from a CSR; its key is not in the PKI", current->common_name));
    }
    pki::IssuedCertificate existing;
    existing.files = pki.files_of(*current);
    existing.record = *current;
    return existing;
  }
  pki::IssueRequest request;
  request.identity = identity;
  request.sans = sans;
  issued_now = true;
  return pki.issue(request);
}

std::string plain_key(const pki::IssuedFiles& files) {
  std::string key = read_file(files.key);
  if (crypto::is_encrypted_private_key_pem(key)) {
    throw Error(ErrorCode::kFailedPrecondition,
                fmt::format("{} is encrypted and Mosquitto cannot read encrypted keys",
                            files.key.string()));
  }
  return key;
}

// The account Mosquitto runs as. Started as root it switches to `user` (default "mosquitto")
// before reading certificates, so the files must belong to that account.
struct BrokerAccount {
  std::string name;  // empty: the current, unprivileged user; nothing to change
  uid_t uid = 0;
  gid_t gid = 0;
};

BrokerAccount broker_account(const std::string& requested) {
  if (::geteuid() != 0) {
    if (!requested.empty()) {
      const passwd* self = ::getpwuid(::geteuid());
      if (self == nullptr || requested != self->pw_name) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--user needs root: only root can hand the files to another account");
      }
    }
    return {};
  }
  const std::string name = requested.empty() ? "mosquitto" : requested;
  const passwd* account = ::getpwnam(name.c_str());
  if (account == nullptr) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("no account {} for the broker (install mosquitto or pass --user)",
                            quote_untrusted(name)));
  }
  return {name, account->pw_uid, account->pw_gid};
}

class ConfigWriter {
 public:
  ConfigWriter(fs::path dir, BrokerAccount account)
      : dir_(std::move(dir)), account_(std::move(account)) {
    hand_over(dir_);
  }

  fs::path copy(const std::string& name, const fs::path& source, mode_t mode = kPublicFile) {
    return write(name, read_file(source), mode);
  }
  fs::path write(const std::string& name, const std::string& content, mode_t mode) {
    write_file_atomic(dir_ / name, content, mode);
    hand_over(dir_ / name);
    return dir_ / name;
  }

  void hand_over(const fs::path& path) const {
    if (!account_.name.empty() && ::chown(path.c_str(), account_.uid, account_.gid) != 0) {
      throw Error(ErrorCode::kInternal,
                  fmt::format("cannot give {} to {}", path.string(), account_.name));
    }
  }

  void listener(const ListenerSummary& summary, const std::string& comment, const fs::path& cafile,
                const fs::path& crlfile) {
    // With recmesh-guard the plugin names the connection (CA domain and CN); without it the CN.
    text_ += fmt::format(
        "\n# {}\n"
        "listener {} {}\n"
        "allow_anonymous false\n"
        "require_certificate true\n"
        "{}"
        "tls_version tlsv1.3\n"
        "cafile {}\n"
        "crlfile {}\n"
        "certfile {}\n"
        "keyfile {}\n",
        comment, summary.port, summary.bind_address,
        guarded_ ? "" : "use_identity_as_username true\n", cafile.string(), crlfile.string(),
        (dir_ / "server.crt").string(), (dir_ / "server.key").string());
    listeners_.push_back(summary);
  }

  // `guarded`: recmesh-guard is loaded. Mosquitto 2.0 runs a plugin's tick and control events
  // only with global security settings, and one plugin instance then serves every listener.
  void header(const std::string& server_cn, bool guarded) {
    guarded_ = guarded;
    create_directories(dir_ / "data", 0700);
    hand_over(dir_ / "data");
    text_ = fmt::format(
        "# Mosquitto 2 configuration for {}, written by `recmesh broker-config`.\n"
        "# Re-run that command to refresh the CRLs; edits here are overwritten.\n"
        "{}"
        "per_listener_settings {}\n"
        "set_tcp_nodelay true\n"
        "persistence true\n"
        "persistence_location {}/\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        "connection_messages true\n"
        "log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
        server_cn, account_.name.empty() ? "" : fmt::format("user {}\n", account_.name),
        guarded ? "false" : "true", (dir_ / "data").string());
  }

  void append(const std::string& text) { text_ += text; }

  RenderedBroker finish(std::string server_cn, bool issued) {
    RenderedBroker out;
    out.config = write("mosquitto.conf", text_, kPublicFile);
    out.server_common_name = std::move(server_cn);
    out.issued_server_certificate = issued;
    out.listeners = listeners_;
    return out;
  }

  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  BrokerAccount account_;
  std::string text_;
  std::vector<ListenerSummary> listeners_;
  bool guarded_ = false;
};

// What a broker holds for one subscriber: the bridging module on a local broker, the EMS
// engine on the central one (docs/bridge.md, "Tuning"). Mosquitto 2.0 applies these to every
// client of the broker.
constexpr const char* kQueueSettings =
    "\n# Outgoing QoS 1 window and backlog per client (global in Mosquitto 2.0). The bridging\n"
    "# module acknowledges a batch once its store committed it: a wide window keeps the stream\n"
    "# flowing, and a deep queue absorbs a burst instead of dropping what the broker already\n"
    "# acknowledged to its publisher.\n"
    "max_inflight_messages 1000\n"
    "max_queued_messages 1000000\n"
    "max_queued_bytes 134217728\n";

// CA chain and CRL of one authority, copied as <role>-ca.pem and <role>-crl.pem.
std::pair<fs::path, fs::path> trust_files(ConfigWriter& writer, pki::Pki& pki,
                                          const std::string& role, const std::string& ca_id) {
  return {writer.copy(role + "-ca.pem", pki.authority_chain_path(ca_id)),
          writer.copy(role + "-crl.pem", pki.authority_crl_path(ca_id))};
}

void install_server_identity(ConfigWriter& writer, const pki::IssuedCertificate& server) {
  writer.copy("server.crt", server.files.chain);
  writer.write("server.key", plain_key(server.files), kPrivateFile);
}

std::string bridge_section(ConfigWriter& writer, pki::Pki& pki, const LocalBrokerOptions& options,
                           bool& issued_now) {
  const pki::Identity identity =
      pki::Identity::make(pki::IdentityKind::kBridge, options.rec, options.member, "");
  const pki::IssuedCertificate bridge = server_identity(pki, identity, {}, issued_now);
  const fs::path cert = writer.copy("bridge-client.crt", bridge.files.chain);
  const fs::path key = writer.write("bridge-client.key", plain_key(bridge.files), kPrivateFile);
  const fs::path ca = writer.copy("bridge-client-ca.pem", pki.authority_chain_path("ems"));
  const std::string remote = fmt::format("/{}/{}/", options.rec, options.member);
  // SPEC §4.5: local topic = local prefix + pattern, central topic = remote prefix + pattern.
  std::string text = fmt::format(
      "\n# Built-in bridge to the central broker as {} (SPEC §4.5 mapping)\n"
      "connection {}\n"
      "address {}:{}\n"
      "remote_clientid {}\n"
      "cleansession false\n"
      "notifications false\n"
      "bridge_protocol_version mqttv311\n"
      "bridge_tls_version tlsv1.3\n"
      "bridge_insecure false\n"
      "bridge_cafile {}\n"
      "bridge_certfile {}\n"
      "bridge_keyfile {}\n",
      identity.common_name(), identity.common_name(), options.bridge_to->host,
      options.bridge_to->port, identity.common_name(), ca.string(), cert.string(), key.string());
  const std::vector<std::pair<std::string, std::string>> out_topics = {
      {"device/+/status", "/"},           {"device/+/status/info", "/"},
      {"device/+/diagnostic", "/"},       {"smart-gateway/status", "/"},
      {"smart-gateway/status/info", "/"}, {"smart-gateway/diagnostic", "/"},
      {"metrics/#", "/platform/"},        {"control/response", "/platform/"},
      {"logs/+", "/platform/"},           {"keys/response", "/platform/"},
      {"security/events", "/"},           {"bridge/status", "/"},
  };
  for (const auto& [pattern, local_prefix] : out_topics) {
    text += fmt::format("topic {} out 1 {} {}\n", pattern, local_prefix, remote);
  }
  text += fmt::format("topic control in 1 /platform/ {}\n", remote);
  text += fmt::format("topic keys in 1 /platform/ {}\n", remote);
  return text;
}

RenderedBroker with_guard(RenderedBroker rendered, const RenderedBroker& guard) {
  rendered.guard_plugin = guard.guard_plugin;
  rendered.issued_secmgr_certificate = guard.issued_secmgr_certificate;
  rendered.stored_policy_sequence = guard.stored_policy_sequence;
  rendered.seeded_policy = guard.seeded_policy;
  return rendered;
}

// Writes `seed` into the guard's store unless the store holds a newer bundle. The seed is
// verified as the plugin verifies a pushed bundle (signer, CA, CRL, broker), so a forged or
// misaddressed one fails the rendering instead of leaving the broker without its policy.
void seed_policy(ConfigWriter& writer, const policy::BundleTrust& trust,
                 const policy::BrokerId& broker, const fs::path& store_file,
                 const fs::path& key_file, const std::optional<std::string>& seed,
                 RenderedBroker& rendered) {
  const policy::BundleVerifier verifier(trust);
  const policy::PolicyStore store(store_file, key_file);
  std::uint64_t current = 0;
  if (auto stored = store.load(); stored && stored->has_value()) {
    if (auto bundle = verifier.verify(**stored, broker, 0)) {
      current = bundle->sequence;
      rendered.stored_policy_sequence = current;
    }
  }
  if (!seed) {
    return;
  }
  auto bundle = verifier.verify(*seed, broker, 0);
  if (!bundle) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the policy bundle for {} is refused: {}", broker.to_string(),
                            bundle.status().message));
  }
  if (bundle->sequence <= current) {
    return;  // the broker already has this policy or a newer one
  }
  store.save(*seed);
  writer.hand_over(store_file);
  rendered.stored_policy_sequence = bundle->sequence;
  rendered.seeded_policy = true;
}

// The Security Manager's certificate (issued now when there is none): recmesh-guard takes
// policy bundles signed with its key. Its key stays with the PKI for the Security Manager.
std::string secmgr_certificate(pki::Pki& pki, bool& issued_now) {
  return read_file(secmgr_files(pki, &issued_now).cert);
}

// recmesh-guard's `plugin` lines and the files they name. `client_cas` pairs an option
// (ca_member, ca_bridge, ca_ems) with the authority whose certificate identifies clients.
void add_guard(ConfigWriter& writer, pki::Pki& pki, const GuardPluginOptions& guard,
               const policy::BrokerId& broker,
               const std::vector<std::pair<std::string, std::string>>& client_cas,
               RenderedBroker& rendered) {
  if (guard.plugin_is_local && !fs::is_regular_file(guard.plugin)) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("recmesh-guard plugin {} not found (build the recmesh_guard target, "
                            "or pass --guard-plugin)",
                            guard.plugin.string()));
  }
  std::string text = fmt::format(
      "\n# recmesh-guard: identity by issuing CA, ACLs and revocations pushed by the Security\n"
      "# Manager on $CONTROL/recmesh-guard/v1, quotas, security events (docs/recmesh-guard.md)\n"
      "plugin {}\n"
      "plugin_opt_broker {}\n",
      fs::absolute(guard.plugin).string(), broker.to_string());
  for (const auto& [option, authority] : client_cas) {
    const fs::path file =
        writer.copy(fmt::format("guard-{}.pem", option), pki.authority_cert_path(authority));
    text += fmt::format("plugin_opt_{} {}\n", option, file.string());
  }
  const fs::path crl = writer.copy("guard-ems-crl.pem", pki.authority_crl_path("ems"));
  const std::string secmgr_pem = secmgr_certificate(pki, rendered.issued_secmgr_certificate);
  const fs::path secmgr = writer.write("guard-secmgr.pem", secmgr_pem, kPublicFile);
  // The key of the stored policy survives re-rendering, or the stored policy would be lost.
  const fs::path key = writer.dir() / "guard.key";
  if (!fs::exists(key)) {
    writer.write("guard.key", policy::PolicyStore::generate_key(), kPrivateFile);
  }
  const fs::path store = writer.dir() / "data" / "guard-policy.bin";
  seed_policy(writer, {read_file(pki.authority_cert_path("ems")), read_file(crl), secmgr_pem},
              broker, store, key, guard.seed_bundle, rendered);
  text += fmt::format(
      "plugin_opt_ems_crl {}\n"
      "plugin_opt_secmgr_cert {}\n"
      "plugin_opt_policy_file {}\n"
      "plugin_opt_key_file {}\n"
      "plugin_opt_events_per_second {}\n",
      crl.string(), secmgr.string(), store.string(), key.string(), guard.events_per_second);
  writer.append(text);
  rendered.guard_plugin = fs::absolute(guard.plugin);
}

}  // namespace

fs::path default_guard_plugin_path() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path base = ec ? fs::current_path() : self.parent_path();
  return (base / ".." / "lib" / "recmesh" / "recmesh_guard.so").lexically_normal();
}

RenderedBroker render_local_broker(pki::Pki& pki, const LocalBrokerOptions& options,
                                   const fs::path& out_dir) {
  require_port("--member-port", options.member_port);
  require_port("--bridge-port", options.bridge_port);
  std::vector<int> ports{options.member_port, options.bridge_port};
  if (options.management_port) {
    require_port("--mgmt-port", *options.management_port);
    ports.push_back(*options.management_port);
  }
  require_distinct_ports(ports);
  require_bind_address(options.bind_address);
  if (options.bridge_to) {
    require_port("--bridge-to port", options.bridge_to->port);
  }
  const pki::Identity identity =
      pki::Identity::make(pki::IdentityKind::kLocalBroker, options.rec, options.member, "");
  bool issued = false;
  const pki::IssuedCertificate server = server_identity(pki, identity, options.sans, issued);

  create_directories(out_dir, 0700);
  ConfigWriter writer(fs::absolute(out_dir), broker_account(options.user));
  writer.header(identity.common_name(), options.guard.has_value());
  install_server_identity(writer, server);
  const std::string member_ca =
      pki::authority_id(pki::AuthorityKind::kMember, options.rec, options.member);
  auto [member_bundle, member_crl] = trust_files(writer, pki, "member", member_ca);
  writer.listener({"member", options.member_port, options.bind_address, member_ca},
                  fmt::format("Devices and smart gateway of member {}/{} (member CA)", options.rec,
                              options.member),
                  member_bundle, member_crl);
  auto [bridge_bundle, bridge_crl] = trust_files(writer, pki, "bridge", "bridge");
  writer.listener({"bridge", options.bridge_port, options.bind_address, "bridge"},
                  "Bridging modules (Bridge CA)", bridge_bundle, bridge_crl);
  if (options.management_port) {
    auto [mgmt_bundle, mgmt_crl] = trust_files(writer, pki, "management", "ems");
    writer.listener({"management", *options.management_port, options.bind_address, "ems"},
                    "Management: the Security Manager only (EMS CA)", mgmt_bundle, mgmt_crl);
  }
  writer.append(kQueueSettings);
  if (options.bridge_to) {
    writer.append(bridge_section(writer, pki, options, issued));
  }
  RenderedBroker guarded;
  if (options.guard) {
    add_guard(writer, pki, *options.guard, policy::BrokerId::local(options.rec, options.member),
              {{"ca_member", member_ca}, {"ca_bridge", "bridge"}, {"ca_ems", "ems"}}, guarded);
  }
  return with_guard(writer.finish(identity.common_name(), issued), guarded);
}

RenderedBroker render_central_broker(pki::Pki& pki, const CentralBrokerOptions& options,
                                     const fs::path& out_dir) {
  require_port("--ems-port", options.ems_port);
  require_port("--bridge-port", options.bridge_port);
  require_distinct_ports({options.ems_port, options.bridge_port});
  require_bind_address(options.bind_address);
  const pki::Identity identity = pki::Identity::make(pki::IdentityKind::kCentralBroker, "", "", "");
  bool issued = false;
  const pki::IssuedCertificate server = server_identity(pki, identity, options.sans, issued);

  create_directories(out_dir, 0700);
  ConfigWriter writer(fs::absolute(out_dir), broker_account(options.user));
  writer.header(identity.common_name(), options.guard.has_value());
  install_server_identity(writer, server);
  auto [ems_bundle, ems_crl] = trust_files(writer, pki, "ems", "ems");
  writer.listener({"ems", options.ems_port, options.bind_address, "ems"},
                  "EMS platform services (EMS CA)", ems_bundle, ems_crl);
  auto [bridge_bundle, bridge_crl] = trust_files(writer, pki, "bridge", "bridge");
  writer.listener({"bridge", options.bridge_port, options.bind_address, "bridge"},
                  "Bridge backbone (Bridge CA)", bridge_bundle, bridge_crl);
  writer.append(kQueueSettings);
  RenderedBroker guarded;
  if (options.guard) {
    add_guard(writer, pki, *options.guard, policy::BrokerId::central(),
              {{"ca_bridge", "bridge"}, {"ca_ems", "ems"}}, guarded);
  }
  return with_guard(writer.finish(identity.common_name(), issued), guarded);
}

}  // namespace recmesh::broker
