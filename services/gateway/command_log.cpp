#include "gateway/command_log.hpp"

#include <chrono>

#include "recmesh/protocol/timestamp.hpp"

namespace recmesh::gateway {

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS controls (
  control_id  TEXT PRIMARY KEY,
  issued_by   TEXT NOT NULL,
  sequence    INTEGER NOT NULL,
  type        TEXT NOT NULL,
  intent      TEXT NOT NULL,
  payload     TEXT NOT NULL,
  state       TEXT NOT NULL,
  response    TEXT,
  received_at TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_commands (
  command_id TEXT PRIMARY KEY,
  control_id TEXT NOT NULL,
  device_id  TEXT NOT NULL,
  type       TEXT NOT NULL,
  attempt    INTEGER NOT NULL,
  sequence   INTEGER NOT NULL,
  payload    TEXT NOT NULL,
  state      TEXT NOT NULL,
  exit_code  INTEGER,
  details    TEXT,
  sent_at    TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS device_commands_by_control ON device_commands (control_id);
CREATE TABLE IF NOT EXISTS issuers (
  issued_by     TEXT PRIMARY KEY,
  last_sequence INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS device_logs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id   TEXT NOT NULL,
  level       TEXT NOT NULL,
  timestamp   TEXT NOT NULL,
  payload     TEXT NOT NULL,
  forwarded   INTEGER NOT NULL DEFAULT 0,
  received_at TEXT NOT NULL
);
)sql";

}  // namespace

std::string now_text() {
  return protocol::format_timestamp(
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
}

CommandLog::CommandLog(const std::filesystem::path& path)
    : db_(path, SqliteDatabase::Mode::kCreate) {
  db_.execute("PRAGMA journal_mode=WAL");
  // WAL with synchronous=NORMAL: a committed write survives a crash of the gateway (SPEC §8);
  // only a power loss may take the last transactions (docs/gateway.md, "Durability").
  db_.execute("PRAGMA synchronous=NORMAL");
  db_.execute(kSchema);
}

std::optional<StoredControl> CommandLog::find_control(std::string_view control_id) {
  auto& st = db_.cached(
      "SELECT control_id, intent, payload, state, response FROM controls WHERE control_id = ?");
  st.bind(1, control_id);
  std::optional<StoredControl> out;
  if (st.step()) {
    out = StoredControl{st.column_text(0), st.column_text(1), st.column_text(2), st.column_text(3),
                        st.column_optional_text(4)};
  }
  st.reset();
  return out;
}

void CommandLog::insert_control(std::string_view control_id, std::string_view issued_by,
                                std::uint64_t sequence, std::string_view type,
                                std::string_view intent, std::string_view payload,
                                std::string_view state) {
  const std::string now = now_text();
  db_.cached(
         "INSERT INTO controls (control_id, issued_by, sequence, type, intent, payload, state, "
         "received_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .bind(1, control_id)
      .bind(2, issued_by)
      .bind(3, static_cast<std::int64_t>(sequence))
      .bind(4, type)
      .bind(5, intent)
      .bind(6, payload)
      .bind(7, state)
      .bind(8, now)
      .bind(9, now)
      .run();
}

void CommandLog::update_control(std::string_view control_id, std::string_view state,
                                const std::optional<std::string>& response) {
  db_.cached(
         "UPDATE controls SET state = ?, response = COALESCE(?, response), updated_at = ? "
         "WHERE control_id = ?")
      .bind(1, state)
      .bind_nullable(2, response)
      .bind(3, now_text())
      .bind(4, control_id)
      .run();
}

std::vector<StoredControl> CommandLog::unfinished_controls() {
  auto st = db_.prepare(
      "SELECT control_id, intent, payload, state, response FROM controls "
      "WHERE state IN ('RECEIVED', 'EXECUTING') ORDER BY received_at");
  std::vector<StoredControl> out;
  while (st.step()) {
    out.push_back(StoredControl{st.column_text(0), st.column_text(1), st.column_text(2),
                                st.column_text(3), st.column_optional_text(4)});
  }
  return out;
}

std::optional<std::uint64_t> CommandLog::last_sequence(std::string_view issuer) {
  auto& st = db_.cached("SELECT last_sequence FROM issuers WHERE issued_by = ?");
  st.bind(1, issuer);
  std::optional<std::uint64_t> out;
  if (st.step()) {
    out = static_cast<std::uint64_t>(st.column_int(0));
  }
  st.reset();
  return out;
}

void CommandLog::set_last_sequence(std::string_view issuer, std::uint64_t sequence) {
  db_.cached(
         "INSERT INTO issuers (issued_by, last_sequence) VALUES (?, ?) "
         "ON CONFLICT (issued_by) DO UPDATE SET last_sequence = excluded.last_sequence")
      .bind(1, issuer)
      .bind(2, static_cast<std::int64_t>(sequence))
      .run();
}

std::uint64_t CommandLog::next_command_sequence() {
  db_.cached(
         "INSERT INTO counters (name, value) VALUES ('command_sequence', 1) "
         "ON CONFLICT (name) DO UPDATE SET value = value + 1")
      .run();
  auto& st = db_.cached("SELECT value FROM counters WHERE name = 'command_sequence'");
  std::uint64_t out = 0;
  if (st.step()) {
    out = static_cast<std::uint64_t>(st.column_int(0));
  }
  st.reset();
  return out;
}

void CommandLog::insert_command(std::string_view command_id, std::string_view control_id,
                                std::string_view device_id, std::string_view type,
                                std::uint32_t attempt, std::uint64_t sequence,
                                std::string_view payload) {
  const std::string now = now_text();
  db_.cached(
         "INSERT INTO device_commands (command_id, control_id, device_id, type, attempt, "
         "sequence, payload, state, sent_at, updated_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, 'SENT', ?, ?)")
      .bind(1, command_id)
      .bind(2, control_id)
      .bind(3, device_id)
      .bind(4, type)
      .bind(5, static_cast<std::int64_t>(attempt))
      .bind(6, static_cast<std::int64_t>(sequence))
      .bind(7, payload)
      .bind(8, now)
      .bind(9, now)
      .run();
}

void CommandLog::update_command(std::string_view command_id, std::string_view state,
                                std::optional<std::int64_t> exit_code,
                                const std::optional<std::string>& details) {
  db_.cached(
         "UPDATE device_commands SET state = ?, exit_code = COALESCE(?, exit_code), "
         "details = COALESCE(?, details), updated_at = ? WHERE command_id = ?")
      .bind(1, state)
      .bind_nullable(2, exit_code)
      .bind_nullable(3, details)
      .bind(4, now_text())
      .bind(5, command_id)
      .run();
}

void CommandLog::fail_open_commands(std::string_view control_id, std::string_view reason) {
  db_.cached(
         "UPDATE device_commands SET state = 'FAILED', details = ?, updated_at = ? "
         "WHERE control_id = ? AND state NOT IN ('COMPLETED', 'FAILED')")
      .bind(1, reason)
      .bind(2, now_text())
      .bind(3, control_id)
      .run();
}

std::vector<CommandLog::CommandRow> CommandLog::commands_of(std::string_view control_id) {
  auto st = db_.prepare(
      "SELECT command_id, device_id, state FROM device_commands WHERE control_id = ? "
      "ORDER BY sent_at, command_id");
  st.bind(1, control_id);
  std::vector<CommandRow> out;
  while (st.step()) {
    out.push_back(CommandRow{st.column_text(0), st.column_text(1), st.column_text(2)});
  }
  return out;
}

std::int64_t CommandLog::insert_log(std::string_view device_id, std::string_view level,
                                    std::string_view timestamp, std::string_view payload) {
  db_.cached(
         "INSERT INTO device_logs (device_id, level, timestamp, payload, received_at) "
         "VALUES (?, ?, ?, ?, ?)")
      .bind(1, device_id)
      .bind(2, level)
      .bind(3, timestamp)
      .bind(4, payload)
      .bind(5, now_text())
      .run();
  auto& st = db_.cached("SELECT last_insert_rowid()");
  std::int64_t id = 0;
  if (st.step()) {
    id = st.column_int(0);
  }
  st.reset();
  return id;
}

void CommandLog::mark_log_forwarded(std::int64_t id) {
  db_.cached("UPDATE device_logs SET forwarded = 1 WHERE id = ?").bind(1, id).run();
}

std::int64_t CommandLog::count_logs(std::string_view level) {
  auto& st = db_.cached("SELECT COUNT(*) FROM device_logs WHERE level = ?");
  st.bind(1, level);
  std::int64_t n = 0;
  if (st.step()) {
    n = st.column_int(0);
  }
  st.reset();
  return n;
}

}  // namespace recmesh::gateway
