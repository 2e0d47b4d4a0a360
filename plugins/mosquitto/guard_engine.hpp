#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/policy_matcher.hpp"
#include "recmesh/policy/policy_store.hpp"
#include "recmesh/policy/quota_meter.hpp"

namespace recmesh::guard {

// What the engine asks of the broker; the shim implements it on Mosquitto's plugin API.
class BrokerHooks {
 public:
  virtual ~BrokerHooks() = default;
  virtual void kick(const std::string& client_id) = 0;
  // `client_id` empty: to every subscriber; otherwise to that client only.
  virtual void publish(const std::string& client_id, std::string_view topic,
                       std::string_view payload, int qos) = 0;
  virtual void log(bool error, const std::string& line) = 0;
};

// Settings from the `plugin_opt_*` lines (docs/recmesh-guard.md).
struct GuardOptions {
  policy::BrokerId broker;
  // The CAs whose certificates identify clients here, with their domains.
  std::vector<std::pair<policy::CaDomain, std::filesystem::path>> client_cas;
  std::filesystem::path ems_ca;       // issuer of the Security Manager's certificate
  std::filesystem::path ems_crl;      // its CRL
  std::filesystem::path secmgr_cert;  // the Security Manager's certificate
  std::filesystem::path policy_file;  // encrypted store of the bundle in force
  std::filesystem::path key_file;     // its AES-256 key (64 hex digits, 0600)
  std::uint32_t events_per_second = 20;

  // Throws Error(kInvalidArgument) naming the option for unknown keys and missing values.
  static GuardOptions parse(const std::vector<std::pair<std::string, std::string>>& options);
};

// A decision the shim turns into a MOSQ_ERR_* code.
enum class Verdict { kAllow, kDeny, kRefuseConnect };

// The access policy of one broker: identities at connect, ACLs on every operation, quotas,
// policy updates from the Security Manager, revocation kicks and security events.
// Single-threaded, as Mosquitto 2.0 calls its plugins; `client` pointers only key state.
class GuardEngine {
 public:
  // Throws Error at start-up for unreadable options, certificates or key file.
  GuardEngine(GuardOptions options, BrokerHooks& hooks);
  ~GuardEngine();

  struct Connect {
    const void* client = nullptr;
    X509* certificate = nullptr;  // borrowed; nullptr when the client sent none
    int keepalive_s = 0;
    std::string client_id;
    std::string address;
  };
  // On kAllow, `username` is the identity key the connection must carry from now on.
  Verdict on_connect(const Connect& connect, std::string& username);

  enum class Access { kRead, kWrite, kSubscribe, kOther };
  // `username`: what the broker holds for the connection (the identity key this engine set at
  // connect), used only for deliveries to a persistent session whose client is offline.
  Verdict on_acl(const void* client, Access access, std::string_view topic,
                 std::size_t payload_bytes, bool retain, int subscriptions_held,
                 std::string_view username = {});
  // A message on kGuardControlTopic (the ACL admitted its publisher already).
  void on_control(const void* client, std::string_view payload);
  void on_disconnect(const void* client);
  void on_tick();

  std::uint64_t sequence() const { return matcher_.sequence(); }

 private:
  struct ClientState;
  void install(const policy::PolicyBundle& bundle);
  void respond(const std::string& client_id, bool accepted, std::uint64_t sequence,
               const std::string& reason);
  void event(std::string_view type, const ClientState* client, std::string_view reason,
             std::string_view extra_key = {}, std::string_view extra_value = {});
  std::int64_t now_ns() const;
  std::optional<policy::CaDomain> domain_of(X509* certificate) const;

  GuardOptions options_;
  BrokerHooks& hooks_;
  std::vector<std::pair<policy::CaDomain, crypto::X509Ptr>> cas_;
  policy::BundleVerifier verifier_;
  policy::PolicyStore store_;
  policy::Grant secmgr_;
  std::string secmgr_key_;
  policy::PolicyMatcher matcher_;
  std::string events_topic_;
  std::unordered_map<const void*, std::unique_ptr<ClientState>> clients_;
  std::vector<const void*> gone_;     // disconnected; state kept until the Will was checked
  std::vector<std::string> to_kick_;  // quota disconnects, done at the next tick
  double event_tokens_ = 0;
  std::int64_t event_refill_ns_ = 0;
  std::uint64_t events_suppressed_ = 0;
};

}  // namespace recmesh::guard
