#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recmesh/core/clock.hpp"
#include "recmesh/log/logger.hpp"
#include "recmesh/pki/pki.hpp"

#include "secmgr/registry.hpp"
#include "secmgr/roles.hpp"

namespace recmesh::secmgr {

// Who asks: the verified common name of an EMS-CA client and its role.
struct Actor {
  std::string common_name;
  Role role = Role::kViewer;
};

// What an operation did: the HTTP status and body, and one line for the audit log.
struct Outcome {
  int status = 200;
  nlohmann::json body;
  std::string detail;
};

// What changed in the policy, for the connectors: the brokers whose rules changed and the
// identities whose certificates were revoked (their connections must be closed).
struct PolicyChange {
  std::vector<std::string> brokers;  // broker IDs; empty with all_brokers
  bool all_brokers = false;
  std::vector<std::string> revoked;  // common names
  std::string reason;                // for logs and push results
};

// Many registrations at once (POST /v1/registrations/batch): each entry is checked as its single
// registration checks it, in this order, so that a member may name a REC of the same batch, a
// device or a local broker a member of it.
struct RegistrationBatch {
  struct Member {
    std::string rec;
    std::string id;
  };
  struct Device {
    std::string rec;
    std::string member;
    std::string id;  // `gateway`: the smart gateway
  };
  struct Broker {
    std::string id;
    std::string host;
    std::int64_t port = 0;
    std::string connector = "guard";
  };
  std::vector<std::string> recs;
  std::vector<Member> members;
  std::vector<Device> devices;
  std::vector<std::string> services;
  std::vector<Broker> brokers;

  std::size_t size() const {
    return recs.size() + members.size() + devices.size() + services.size() + brokers.size();
  }
};

// The most entries one batch may hold: a batch is one transaction under the manager's lock.
inline constexpr std::size_t kMaxBatchEntries = 5000;

// Told of every change after it is committed; pushes it to the brokers.
class PolicyPusher {
 public:
  virtual ~PolicyPusher() = default;
  // Runs with the manager's lock released; returns per-broker results ("ok" or why not).
  virtual std::vector<std::pair<std::string, std::string>> push(const PolicyChange& change) = 0;
  // The policy of a guard broker signed as a push would sign it, with the next sequence, for
  // `broker-config --policy` to seed a broker's store before it starts; nothing when this
  // pusher cannot sign.
  virtual std::optional<std::string> signed_bundle(const std::string& /*broker*/) {
    return std::nullopt;
  }
};

// The Security Manager's operations, independent of HTTP: the registry, the PKI and the
// pushes. Thread-safe: one lock serialises every operation.
class SecurityManager {
 public:
  SecurityManager(const std::filesystem::path& database, pki::Pki pki, log::Logger logger,
                  const Clock& clock = SystemClock::instance());

  void set_pusher(PolicyPusher* pusher);

  Outcome whoami(const Actor& actor) const;

  Outcome add_rec(const std::string& id);
  Outcome list_recs();
  Outcome show_rec(const std::string& id);
  Outcome revoke_rec(const std::string& id, const std::string& reason);

  Outcome add_member(const std::string& rec, const std::string& id);
  Outcome list_members(const std::string& rec);
  Outcome show_member(const std::string& rec, const std::string& id);
  Outcome revoke_member(const std::string& rec, const std::string& id, const std::string& reason);

  Outcome add_device(const std::string& rec, const std::string& member, const std::string& id);
  Outcome list_devices(const std::string& rec, const std::string& member);
  Outcome add_service(const std::string& id);
  Outcome list_services();

  Outcome add_broker(const std::string& id, const std::string& host, std::int64_t port,
                     const std::string& connector);
  // All of `batch` in one transaction or nothing of it, then one push (docs/secmgr.md,
  // "Registering many at once"). Refused whole, with the first entry's problem, as its single
  // registration would refuse it; an entry listed twice is refused too.
  Outcome register_batch(const RegistrationBatch& batch);
  Outcome list_brokers();
  Outcome show_broker(const std::string& id);

  Outcome list_identities(const std::string& rec, const std::string& member,
                          const std::string& kind);
  Outcome show_identity(const std::string& common_name);
  Outcome issue(const std::string& common_name, const std::string& csr_pem,
                std::optional<int> days);
  Outcome renew(const std::string& common_name, const std::string& csr_pem,
                std::optional<int> days);
  Outcome revoke_identity(const std::string& common_name, const std::string& reason);

  Outcome add_rule(const Actor& actor, RuleRecord rule);
  Outcome list_rules(const std::string& identity);
  Outcome remove_rule(std::int64_t id);
  Outcome push(const std::string& broker);
  // The signed policy bundle of a guard broker (PolicyPusher::signed_bundle).
  Outcome broker_bundle(const std::string& broker);

  Outcome audit(const AuditQuery& query);
  void append_audit(const AuditEntry& entry);

  // For authentication: whether the PKI knows `serial` as a valid certificate named `cn`.
  bool is_valid_certificate(const std::string& serial, const std::string& common_name);

  // Everything the policy of the brokers is computed from, in one consistent read.
  PolicySnapshot policy_snapshot();
  std::uint64_t next_bundle_sequence(const std::string& broker);
  void record_push(const std::string& broker, const std::string& result);

  const std::filesystem::path& pki_directory() const { return pki_dir_; }
  std::int64_t now_unix() const { return now(); }

 private:
  std::int64_t now() const { return to_unix_seconds(clock_.now()); }
  MemberRecord require_member(const std::string& rec, const std::string& member);
  IdentityRecord require_identity(const std::string& common_name);
  Outcome sign(const std::string& common_name, const std::string& csr_pem, std::optional<int> days,
               bool renewal);
  Outcome pushed(Outcome outcome, const PolicyChange& change);
  // What a registration created, for the answer and the push.
  struct Registered {
    std::vector<IdentityRecord> identities;  // bridges, gateways, devices, services
    std::vector<BrokerRecord> brokers;
    PolicyChange change;
  };
  // The one path of every registration, single or batch.
  Registered register_all(const RegistrationBatch& batch);

  mutable std::mutex mutex_;
  Registry registry_;  // guarded by mutex_
  pki::Pki pki_;       // guarded by mutex_
  std::filesystem::path pki_dir_;
  log::Logger log_;
  const Clock& clock_;
  std::mutex push_mutex_;           // one push at a time, in change order
  PolicyPusher* pusher_ = nullptr;  // set before serving
};

nlohmann::json to_json(const IdentityRecord& identity);
nlohmann::json to_json(const BrokerRecord& broker);
nlohmann::json to_json(const RuleRecord& rule);
nlohmann::json to_json(const AuditEntry& entry);

}  // namespace recmesh::secmgr
