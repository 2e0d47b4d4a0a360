#include "secmgr/registry.hpp"

#include <algorithm>
#include <fcntl.h>
#include <unistd.h>

namespace recmesh::secmgr {
namespace {

constexpr std::string_view kSchema = R"sql(
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS recs (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
  rec TEXT NOT NULL REFERENCES recs(id),
  id TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (rec, id)
);
CREATE TABLE IF NOT EXISTS identities (
  common_name TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  rec TEXT NOT NULL,
  member TEXT NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS identities_by_member ON identities (rec, member);
CREATE TABLE IF NOT EXISTS brokers (
  id TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  rec TEXT NOT NULL,
  member TEXT NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  connector TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_push_at INTEGER,
  last_push_result TEXT NOT NULL DEFAULT '',
  bundle_sequence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  identity TEXT NOT NULL,
  broker TEXT NOT NULL,
  permission TEXT NOT NULL,
  topic TEXT NOT NULL,
  allow INTEGER NOT NULL,
  note TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  role TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  action TEXT NOT NULL,
  outcome TEXT NOT NULL,
  status INTEGER NOT NULL,
  detail TEXT NOT NULL
);
)sql";

// The registry names every identity of the platform: readable by its owner only. SQLite gives
// its -wal and -shm files the mode of the database file.
const std::filesystem::path& private_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
  }
  return path;
}

RecRecord rec_from(const SqliteStatement& s) {
  return {s.column_text(0), s.column_text(1), s.column_int(2)};
}

MemberRecord member_from(const SqliteStatement& s) {
  return {s.column_text(0), s.column_text(1), s.column_text(2), s.column_int(3)};
}

IdentityRecord identity_from(const SqliteStatement& s) {
  return {s.column_text(0), s.column_text(1), s.column_text(2), s.column_text(3),
          s.column_text(4), s.column_text(5), s.column_int(6)};
}

BrokerRecord broker_from(const SqliteStatement& s) {
  BrokerRecord b;
  b.id = s.column_text(0);
  b.role = s.column_text(1);
  b.rec = s.column_text(2);
  b.member = s.column_text(3);
  b.host = s.column_text(4);
  b.port = static_cast<std::int32_t>(s.column_int(5));
  b.connector = s.column_text(6);
  b.created_at = s.column_int(7);
  b.last_push_at = s.column_optional_int(8);
  b.last_push_result = s.column_text(9);
  return b;
}

RuleRecord rule_from(const SqliteStatement& s) {
  RuleRecord r;
  r.id = s.column_int(0);
  r.identity = s.column_text(1);
  r.broker = s.column_text(2);
  r.permission = s.column_text(3);
  r.topic = s.column_text(4);
  r.allow = s.column_int(5) != 0;
  r.note = s.column_text(6);
  r.created_by = s.column_text(7);
  r.created_at = s.column_int(8);
  return r;
}

AuditEntry audit_from(const SqliteStatement& s) {
  AuditEntry e;
  e.id = s.column_int(0);
  e.at_ms = s.column_int(1);
  e.actor = s.column_text(2);
  e.role = s.column_text(3);
  e.method = s.column_text(4);
  e.path = s.column_text(5);
  e.action = s.column_text(6);
  e.outcome = s.column_text(7);
  e.status = static_cast<int>(s.column_int(8));
  e.detail = s.column_text(9);
  return e;
}

constexpr std::string_view kIdentityColumns =
    "SELECT common_name, kind, rec, member, name, status, created_at FROM identities";
constexpr std::string_view kBrokerColumns =
    "SELECT id, role, rec, member, host, port, connector, created_at, last_push_at, "
    "last_push_result FROM brokers";
constexpr std::string_view kRuleColumns =
    "SELECT id, identity, broker, permission, topic, allow, note, created_by, created_at FROM "
    "rules";

}  // namespace

Registry::Registry(const std::filesystem::path& path)
    : db_(private_file(path), SqliteDatabase::Mode::kCreate) {
  db_.execute(kSchema);
}

void Registry::add_rec(const std::string& id, std::int64_t now) {
  db_.prepare("INSERT INTO recs (id, status, created_at) VALUES (?1, ?2, ?3)")
      .bind(1, id)
      .bind(2, kActive)
      .bind(3, now)
      .run();
}

std::optional<RecRecord> Registry::rec(const std::string& id) {
  auto s = db_.prepare("SELECT id, status, created_at FROM recs WHERE id = ?1");
  s.bind(1, id);
  return s.first_row(rec_from);
}

std::vector<RecRecord> Registry::recs() {
  auto s = db_.prepare("SELECT id, status, created_at FROM recs ORDER BY id");
  return s.rows(rec_from);
}

void Registry::set_rec_status(const std::string& id, std::string_view status) {
  db_.prepare("UPDATE recs SET status = ?2 WHERE id = ?1").bind(1, id).bind(2, status).run();
}

void Registry::add_member(const std::string& rec, const std::string& id, std::int64_t now) {
  db_.prepare("INSERT INTO members (rec, id, status, created_at) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, rec)
      .bind(2, id)
      .bind(3, kActive)
      .bind(4, now)
      .run();
}

std::optional<MemberRecord> Registry::member(const std::string& rec, const std::string& id) {
  auto s =
      db_.prepare("SELECT rec, id, status, created_at FROM members WHERE rec = ?1 AND id = ?2");
  s.bind(1, rec).bind(2, id);
  return s.first_row(member_from);
}

std::vector<MemberRecord> Registry::members(const std::string& rec) {
  auto s = db_.prepare(
      "SELECT rec, id, status, created_at FROM members WHERE (?1 = '' OR rec = ?1) ORDER BY rec, "
      "id");
  s.bind(1, rec);
  return s.rows(member_from);
}

void Registry::set_member_status(const std::string& rec, const std::string& id,
                                 std::string_view status) {
  db_.prepare("UPDATE members SET status = ?3 WHERE rec = ?1 AND id = ?2")
      .bind(1, rec)
      .bind(2, id)
      .bind(3, status)
      .run();
}

void Registry::add_identity(const IdentityRecord& identity) {
  db_.prepare(
         "INSERT INTO identities (common_name, kind, rec, member, name, status, created_at) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
      .bind(1, identity.common_name)
      .bind(2, identity.kind)
      .bind(3, identity.rec)
      .bind(4, identity.member)
      .bind(5, identity.name)
      .bind(6, identity.status)
      .bind(7, identity.created_at)
      .run();
}

std::optional<IdentityRecord> Registry::identity(const std::string& common_name) {
  auto s = db_.prepare(std::string(kIdentityColumns) + " WHERE common_name = ?1");
  s.bind(1, common_name);
  return s.first_row(identity_from);
}

std::vector<IdentityRecord> Registry::identities(const std::string& rec, const std::string& member,
                                                 const std::string& kind) {
  auto s = db_.prepare(std::string(kIdentityColumns) +
                       " WHERE (?1 = '' OR rec = ?1) AND (?2 = '' OR member = ?2) AND (?3 = '' OR "
                       "kind = ?3) ORDER BY rec, member, common_name");
  s.bind(1, rec).bind(2, member).bind(3, kind);
  return s.rows(identity_from);
}

void Registry::set_identity_status(const std::string& common_name, std::string_view status) {
  db_.prepare("UPDATE identities SET status = ?2 WHERE common_name = ?1")
      .bind(1, common_name)
      .bind(2, status)
      .run();
}

void Registry::revoke_identities_of(const std::string& rec, const std::string& member) {
  db_.prepare("UPDATE identities SET status = ?3 WHERE rec = ?1 AND (?2 = '' OR member = ?2)")
      .bind(1, rec)
      .bind(2, member)
      .bind(3, kRevoked)
      .run();
}

void Registry::add_broker(const BrokerRecord& broker) {
  db_.prepare(
         "INSERT INTO brokers (id, role, rec, member, host, port, connector, created_at) VALUES "
         "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
      .bind(1, broker.id)
      .bind(2, broker.role)
      .bind(3, broker.rec)
      .bind(4, broker.member)
      .bind(5, broker.host)
      .bind(6, std::int64_t{broker.port})
      .bind(7, broker.connector)
      .bind(8, broker.created_at)
      .run();
}

std::optional<BrokerRecord> Registry::broker(const std::string& id) {
  auto s = db_.prepare(std::string(kBrokerColumns) + " WHERE id = ?1");
  s.bind(1, id);
  return s.first_row(broker_from);
}

std::vector<BrokerRecord> Registry::brokers() {
  auto s = db_.prepare(std::string(kBrokerColumns) + " ORDER BY id");
  return s.rows(broker_from);
}

void Registry::record_push(const std::string& id, std::int64_t at, const std::string& result) {
  db_.prepare("UPDATE brokers SET last_push_at = ?2, last_push_result = ?3 WHERE id = ?1")
      .bind(1, id)
      .bind(2, at)
      .bind(3, result)
      .run();
}

std::uint64_t Registry::next_sequence(const std::string& id, std::uint64_t floor) {
  auto s = db_.prepare("SELECT bundle_sequence FROM brokers WHERE id = ?1");
  s.bind(1, id);
  const auto sequence = [](const SqliteStatement& row) {
    return static_cast<std::uint64_t>(row.column_int(0));
  };
  const std::uint64_t last = s.first_row(sequence).value_or(0);
  const std::uint64_t next = std::max(last + 1, floor);
  db_.prepare("UPDATE brokers SET bundle_sequence = ?2 WHERE id = ?1")
      .bind(1, id)
      .bind(2, static_cast<std::int64_t>(next))
      .run();
  return next;
}

std::int64_t Registry::add_rule(const RuleRecord& rule) {
  db_.prepare(
         "INSERT INTO rules (identity, broker, permission, topic, allow, note, created_by, "
         "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
      .bind(1, rule.identity)
      .bind(2, rule.broker)
      .bind(3, rule.permission)
      .bind(4, rule.topic)
      .bind(5, std::int64_t{rule.allow ? 1 : 0})
      .bind(6, rule.note)
      .bind(7, rule.created_by)
      .bind(8, rule.created_at)
      .run();
  return db_.last_insert_rowid();
}

std::optional<RuleRecord> Registry::rule(std::int64_t id) {
  auto s = db_.prepare(std::string(kRuleColumns) + " WHERE id = ?1");
  s.bind(1, id);
  return s.first_row(rule_from);
}

std::vector<RuleRecord> Registry::rules(const std::string& identity) {
  auto s = db_.prepare(std::string(kRuleColumns) + " WHERE (?1 = '' OR identity = ?1) ORDER BY id");
  s.bind(1, identity);
  return s.rows(rule_from);
}

bool Registry::remove_rule(std::int64_t id) {
  db_.prepare("DELETE FROM rules WHERE id = ?1").bind(1, id).run();
  return db_.changes() > 0;
}

std::int64_t Registry::append_audit(const AuditEntry& entry) {
  db_.prepare(
         "INSERT INTO audit (at_ms, actor, role, method, path, action, outcome, status, detail) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
      .bind(1, entry.at_ms)
      .bind(2, entry.actor)
      .bind(3, entry.role)
      .bind(4, entry.method)
      .bind(5, entry.path)
      .bind(6, entry.action)
      .bind(7, entry.outcome)
      .bind(8, std::int64_t{entry.status})
      .bind(9, entry.detail)
      .run();
  return db_.last_insert_rowid();
}

std::vector<AuditEntry> Registry::audit(const AuditQuery& query) {
  auto s = db_.prepare(
      "SELECT id, at_ms, actor, role, method, path, action, outcome, status, detail FROM audit "
      "WHERE id > ?1 AND (?2 = '' OR outcome = ?2) AND (?3 = '' OR actor = ?3) ORDER BY id "
      "LIMIT ?4");
  s.bind(1, query.after_id).bind(2, query.outcome).bind(3, query.actor).bind(4, query.limit);
  return s.rows(audit_from);
}

}  // namespace recmesh::secmgr
