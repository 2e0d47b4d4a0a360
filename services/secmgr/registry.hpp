#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"

namespace recmesh::secmgr {

inline constexpr std::string_view kActive = "active";
inline constexpr std::string_view kRevoked = "revoked";

struct RecRecord {
  std::string id;
  std::string status;           // active or revoked
  std::int64_t created_at = 0;  // Unix seconds
};

struct MemberRecord {
  std::string rec;
  std::string id;
  std::string status;
  std::int64_t created_at = 0;
};

// A registered MQTT client identity: device, gateway, bridge or EMS service.
struct IdentityRecord {
  std::string common_name;
  std::string kind;  // device, gateway, bridge, service
  std::string rec;   // empty for services
  std::string member;
  std::string name;  // device ID, "gateway", service name; empty for bridges
  std::string status;
  std::int64_t created_at = 0;
};

// A broker the manager pushes policy to: the central broker(s) and each member's local broker.
struct BrokerRecord {
  std::string id;    // the broker's server common name: broker_<r>_<m> or ems_<name>
  std::string role;  // local or central
  std::string rec;   // local brokers: the member they serve
  std::string member;
  std::string host;
  std::int32_t port = 0;  // the management (local) or EMS (central) listener
  std::string connector;  // guard, dynsec, rabbitmq or none
  std::int64_t created_at = 0;
  std::optional<std::int64_t> last_push_at;
  std::string last_push_result;  // "ok" or why the last push failed; empty before any
};

// A rule added through the API on top of the derived ones.
struct RuleRecord {
  std::int64_t id = 0;
  std::string identity;    // common name it applies to
  std::string broker;      // broker ID, or "*" for every broker that serves the identity
  std::string permission;  // read (subscribe + receive) or write (publish)
  std::string topic;       // topic filter
  bool allow = true;       // false: a deny that overrides derived allows
  std::string note;
  std::string created_by;
  std::int64_t created_at = 0;
};

struct AuditEntry {
  std::int64_t id = 0;
  std::int64_t at_ms = 0;  // Unix milliseconds
  std::string actor;       // client common name, or "(unauthenticated)"
  std::string role;        // the actor's role, or "" when it has none
  std::string method;
  std::string path;
  std::string action;   // operation, e.g. "device.add"
  std::string outcome;  // ok, refused or failed
  int status = 0;       // HTTP status returned
  std::string detail;   // what changed, or why it was refused
};

// A certificate the PKI no longer accepts: superseded by a renewal or revoked.
struct RevokedCertificate {
  std::string issuer;  // authority ID: ems, bridge, member_<r>_<m>
  std::string serial;
};

// What the policy of every broker is computed from, read in one go under the manager's lock.
struct PolicySnapshot {
  std::vector<MemberRecord> members;
  std::vector<IdentityRecord> identities;
  std::vector<BrokerRecord> brokers;
  std::vector<RuleRecord> rules;
  std::vector<RevokedCertificate> revoked_certificates;
};

struct AuditQuery {
  std::int64_t after_id = 0;  // entries with a larger id
  std::int64_t limit = 100;
  std::string outcome;  // empty: any
  std::string actor;    // empty: any
};

// The manager's SQLite database: RECs, members, identities, brokers, custom rules and the
// audit log. Not thread-safe; the SecurityManager serialises access.
class Registry {
 public:
  explicit Registry(const std::filesystem::path& path);

  SqliteDatabase& database() { return db_; }

  void add_rec(const std::string& id, std::int64_t now);
  std::optional<RecRecord> rec(const std::string& id);
  std::vector<RecRecord> recs();
  void set_rec_status(const std::string& id, std::string_view status);

  void add_member(const std::string& rec, const std::string& id, std::int64_t now);
  std::optional<MemberRecord> member(const std::string& rec, const std::string& id);
  std::vector<MemberRecord> members(const std::string& rec);
  void set_member_status(const std::string& rec, const std::string& id, std::string_view status);

  void add_identity(const IdentityRecord& identity);
  std::optional<IdentityRecord> identity(const std::string& common_name);
  // Filters are ignored when empty.
  std::vector<IdentityRecord> identities(const std::string& rec = {},
                                         const std::string& member = {},
                                         const std::string& kind = {});
  void set_identity_status(const std::string& common_name, std::string_view status);
  // Every identity of a member (or of a REC when member is empty) becomes revoked.
  void revoke_identities_of(const std::string& rec, const std::string& member);

  void add_broker(const BrokerRecord& broker);
  std::optional<BrokerRecord> broker(const std::string& id);
  std::vector<BrokerRecord> brokers();
  void record_push(const std::string& id, std::int64_t at, const std::string& result);
  // The next policy sequence of a broker: above every earlier one and at least `floor`.
  std::uint64_t next_sequence(const std::string& id, std::uint64_t floor);

  std::int64_t add_rule(const RuleRecord& rule);
  std::optional<RuleRecord> rule(std::int64_t id);
  std::vector<RuleRecord> rules(const std::string& identity = {});
  bool remove_rule(std::int64_t id);

  std::int64_t append_audit(const AuditEntry& entry);
  std::vector<AuditEntry> audit(const AuditQuery& query);

 private:
  SqliteDatabase db_;
};

}  // namespace recmesh::secmgr
