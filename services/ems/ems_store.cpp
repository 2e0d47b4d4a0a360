#include "ems/ems_store.hpp"

#include <algorithm>
#include <array>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh::ems {

bool is_final_state(std::string_view state) {
  return state == "SUCCESS" || state == "PARTIAL" || state == "FAILED" || state == kStateTimedOut;
}

namespace {

// The first column of a row as an integer: a count, a pragma, a meta value.
std::int64_t first_integer(const SqliteStatement& row) {
  return row.column_int(0);
}

// Who can write the database can control the community: a new one is the engine's alone (0600;
// SQLite gives its -wal and -shm files the same mode). Operators are let in by group.
const std::filesystem::path& create_private(const std::filesystem::path& path,
                                            SqliteDatabase::Mode mode) {
  if (mode == SqliteDatabase::Mode::kCreate) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
    }
  }
  return path;
}

// The window bitmap is kept as hex text: SQLite text with NUL bytes reads back unreliably.
std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<std::uint8_t>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

// Bytes of hex text; anything unreadable yields a string that fails SequenceWindow::restore.
std::string from_hex(std::string_view text) {
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    const int hi = nibble(text[i]);
    const int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return {};
    }
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return text.size() % 2 == 0 ? out : std::string();
}

}  // namespace

EmsStore::EmsStore(const std::filesystem::path& path, SqliteDatabase::Mode mode)
    : db_(create_private(path, mode), mode) {
  if (mode == SqliteDatabase::Mode::kReadOnly) {
    return;
  }
  db_.execute("PRAGMA journal_mode=WAL");
  // A committed write survives a crash of the engine; only a power loss may take the last
  // transactions (docs/ems.md, "Durability"), which an fsync per stored message would not be
  // worth: metrics are replaced by the next window, controls time out.
  db_.execute("PRAGMA synchronous=NORMAL");
  db_.execute(
      "CREATE TABLE IF NOT EXISTS members(rec TEXT NOT NULL, member TEXT NOT NULL,"
      " updated_at TEXT NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY(rec, member));"
      "CREATE TABLE IF NOT EXISTS metrics(id INTEGER PRIMARY KEY, rec TEXT NOT NULL,"
      " member TEXT NOT NULL, metric TEXT NOT NULL, received_at TEXT NOT NULL,"
      " payload TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS components(rec TEXT NOT NULL, member TEXT NOT NULL,"
      " component TEXT NOT NULL, status TEXT NOT NULL DEFAULT '', info TEXT NOT NULL DEFAULT '',"
      " updated_at TEXT NOT NULL, PRIMARY KEY(rec, member, component));"
      "CREATE TABLE IF NOT EXISTS diagnostics(id INTEGER PRIMARY KEY, rec TEXT NOT NULL,"
      " member TEXT NOT NULL, component TEXT NOT NULL, received_at TEXT NOT NULL,"
      " payload TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS controls(control_id TEXT PRIMARY KEY, rec TEXT NOT NULL,"
      " member TEXT NOT NULL, type TEXT NOT NULL, sequence INTEGER NOT NULL,"
      " issued_at TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL,"
      " payload TEXT NOT NULL, last_response TEXT NOT NULL DEFAULT '');"
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS requests(control_id TEXT PRIMARY KEY, rec TEXT NOT NULL,"
      " member TEXT NOT NULL, type TEXT NOT NULL, params TEXT NOT NULL, devices TEXT NOT NULL,"
      " device TEXT NOT NULL DEFAULT '', requested_by TEXT NOT NULL,"
      " requested_at_ms INTEGER NOT NULL, take_by_ms INTEGER NOT NULL, state TEXT NOT NULL,"
      " error TEXT NOT NULL DEFAULT '', command_id TEXT NOT NULL DEFAULT '',"
      " report TEXT NOT NULL DEFAULT '');"
      "CREATE INDEX IF NOT EXISTS requests_by_state ON requests(state);"
      "CREATE TABLE IF NOT EXISTS e2e_delivery(rec TEXT NOT NULL, member TEXT NOT NULL,"
      " highest INTEGER NOT NULL, window BLOB NOT NULL, PRIMARY KEY(rec, member));");
}

void EmsStore::put_member_metrics(std::string_view rec, std::string_view member,
                                  std::string_view metric, std::string_view payload,
                                  std::string_view now) {
  SqliteTransaction tx(db_);
  db_.cached("INSERT INTO metrics(rec, member, metric, received_at, payload) VALUES(?,?,?,?,?)")
      .bind(1, rec)
      .bind(2, member)
      .bind(3, metric)
      .bind(4, now)
      .bind(5, payload)
      .run();
  if (metric == "aggregate") {
    db_.cached(
           "INSERT INTO members(rec, member, updated_at, metrics) VALUES(?,?,?,?)"
           " ON CONFLICT(rec, member) DO UPDATE SET updated_at=excluded.updated_at,"
           " metrics=excluded.metrics")
        .bind(1, rec)
        .bind(2, member)
        .bind(3, now)
        .bind(4, payload)
        .run();
  }
  tx.commit();
}

void EmsStore::put_status(std::string_view rec, std::string_view member, std::string_view component,
                          std::optional<std::string_view> status,
                          std::optional<std::string_view> info, std::string_view now) {
  db_.cached(
         "INSERT INTO components(rec, member, component, status, info, updated_at)"
         " VALUES(?1,?2,?3,coalesce(?4,''),coalesce(?5,''),?6)"
         " ON CONFLICT(rec, member, component) DO UPDATE SET"
         " status=coalesce(?4, status), info=coalesce(?5, info), updated_at=?6")
      .bind(1, rec)
      .bind(2, member)
      .bind(3, component)
      .bind_nullable(4, status ? std::optional<std::string>(*status) : std::nullopt)
      .bind_nullable(5, info ? std::optional<std::string>(*info) : std::nullopt)
      .bind(6, now)
      .run();
}

void EmsStore::put_diagnostic(std::string_view rec, std::string_view member,
                              std::string_view component, std::string_view payload,
                              std::string_view now) {
  db_.cached(
         "INSERT INTO diagnostics(rec, member, component, received_at, payload)"
         " VALUES(?,?,?,?,?)")
      .bind(1, rec)
      .bind(2, member)
      .bind(3, component)
      .bind(4, now)
      .bind(5, payload)
      .run();
}

void EmsStore::put_control(const ControlRow& row, std::string_view payload) {
  db_.cached(
         "INSERT INTO controls(control_id, rec, member, type, sequence, issued_at, state,"
         " updated_at, payload) VALUES(?,?,?,?,?,?,?,?,?)")
      .bind(1, row.control_id)
      .bind(2, row.rec)
      .bind(3, row.member)
      .bind(4, row.type)
      .bind(5, row.sequence)
      .bind(6, row.issued_at)
      .bind(7, row.state)
      .bind(8, row.updated_at)
      .bind(9, payload)
      .run();
}

void EmsStore::update_control(std::string_view control_id, std::string_view state,
                              std::string_view response, std::string_view now) {
  db_.cached("UPDATE controls SET state=?2, last_response=?3, updated_at=?4 WHERE control_id=?1")
      .bind(1, control_id)
      .bind(2, state)
      .bind(3, response)
      .bind(4, now)
      .run();
}

namespace {

constexpr const char* kControlColumns =
    "SELECT control_id, rec, member, type, sequence, issued_at, state, updated_at,"
    " last_response FROM controls";

ControlRow read_control(const SqliteStatement& s) {
  return {s.column_text(0), s.column_text(1), s.column_text(2), s.column_text(3), s.column_int(4),
          s.column_text(5), s.column_text(6), s.column_text(7), s.column_text(8)};
}

}  // namespace

std::optional<ControlRow> EmsStore::control(std::string_view control_id) {
  auto s = db_.prepare(std::string(kControlColumns) + " WHERE control_id=?");
  s.bind(1, control_id);
  return s.first_row(read_control);
}

std::vector<ControlRow> EmsStore::controls() {
  auto s = db_.prepare(std::string(kControlColumns) + " ORDER BY sequence");
  return s.rows(read_control);
}

std::vector<ControlRow> EmsStore::open_controls() {
  auto s = db_.prepare(std::string(kControlColumns) +
                       " WHERE state NOT IN ('SUCCESS', 'PARTIAL', 'FAILED', 'TIMED_OUT')"
                       " ORDER BY sequence");
  return s.rows(read_control);
}

std::vector<MemberRow> EmsStore::members() {
  auto s = db_.prepare("SELECT rec, member, updated_at, metrics FROM members ORDER BY rec, member");
  return s.rows([](const SqliteStatement& row) {
    return MemberRow{row.column_text(0), row.column_text(1), row.column_text(2),
                     row.column_text(3)};
  });
}

std::vector<ComponentRow> EmsStore::components() {
  auto s = db_.prepare(
      "SELECT rec, member, component, status, info, updated_at FROM components"
      " ORDER BY rec, member, component");
  return s.rows([](const SqliteStatement& row) {
    return ComponentRow{row.column_text(0), row.column_text(1), row.column_text(2),
                        row.column_text(3), row.column_text(4), row.column_text(5)};
  });
}

std::int64_t EmsStore::count(std::string_view table) {
  static constexpr std::array<std::string_view, 6> kTables{"members",     "metrics",  "components",
                                                           "diagnostics", "controls", "requests"};
  if (std::find(kTables.begin(), kTables.end(), table) == kTables.end()) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("no table {}", table));
  }
  return db_.prepare(fmt::format("SELECT count(*) FROM {}", table))
      .first_row(first_integer)
      .value_or(0);
}

namespace {

constexpr const char* kRequestColumns =
    "SELECT control_id, rec, member, type, params, devices, device, requested_by,"
    " requested_at_ms, take_by_ms, state, error, command_id, report FROM requests";

RequestRow read_request(const SqliteStatement& s) {
  return {s.column_text(0),  s.column_text(1), s.column_text(2),  s.column_text(3),
          s.column_text(4),  s.column_text(5), s.column_text(6),  s.column_text(7),
          s.column_int(8),   s.column_int(9),  s.column_text(10), s.column_text(11),
          s.column_text(12), s.column_text(13)};
}

}  // namespace

void EmsStore::put_request(const RequestRow& row) {
  db_.prepare(
         "INSERT INTO requests(control_id, rec, member, type, params, devices, device,"
         " requested_by, requested_at_ms, take_by_ms, state) VALUES(?,?,?,?,?,?,?,?,?,?,?)")
      .bind(1, row.control_id)
      .bind(2, row.rec)
      .bind(3, row.member)
      .bind(4, row.type)
      .bind(5, row.params)
      .bind(6, row.devices)
      .bind(7, row.device)
      .bind(8, row.requested_by)
      .bind(9, row.requested_at_ms)
      .bind(10, row.take_by_ms)
      .bind(11, row.state)
      .run();
}

std::vector<RequestRow> EmsStore::queued_requests() {
  auto s = db_.prepare(std::string(kRequestColumns) +
                       " WHERE state='QUEUED' ORDER BY requested_at_ms, control_id");
  return s.rows(read_request);
}

bool EmsStore::take_request(std::string_view control_id, std::int64_t now_ms) {
  db_.cached(
         "UPDATE requests SET state='TAKEN' WHERE control_id=? AND state='QUEUED'"
         " AND take_by_ms>=?")
      .bind(1, control_id)
      .bind(2, now_ms)
      .run();
  return db_.changes() == 1;
}

bool EmsStore::expire_request(std::string_view control_id) {
  db_.cached("UPDATE requests SET state='EXPIRED' WHERE control_id=? AND state='QUEUED'")
      .bind(1, control_id)
      .run();
  return db_.changes() == 1;
}

void EmsStore::refuse_request(std::string_view control_id, std::string_view error) {
  db_.cached("UPDATE requests SET state='REFUSED', error=? WHERE control_id=?")
      .bind(1, error)
      .bind(2, control_id)
      .run();
}

void EmsStore::set_request_command(std::string_view control_id, std::string_view command_id) {
  db_.cached("UPDATE requests SET command_id=? WHERE control_id=?")
      .bind(1, command_id)
      .bind(2, control_id)
      .run();
}

void EmsStore::set_request_report(std::string_view control_id, std::string_view report) {
  db_.cached("UPDATE requests SET report=? WHERE control_id=?")
      .bind(1, report)
      .bind(2, control_id)
      .run();
}

std::optional<RequestRow> EmsStore::request(std::string_view control_id) {
  auto s = db_.prepare(std::string(kRequestColumns) + " WHERE control_id=?");
  s.bind(1, control_id);
  return s.first_row(read_request);
}

std::vector<RequestRow> EmsStore::awaiting_reports(std::string_view rec, std::string_view member,
                                                   std::string_view device) {
  auto s = db_.prepare(std::string(kRequestColumns) +
                       " WHERE state='TAKEN' AND type='diagnostic' AND report='' AND rec=?"
                       " AND member=? AND device=?");
  s.bind(1, rec).bind(2, member).bind(3, device);
  return s.rows(read_request);
}

std::int64_t EmsStore::data_version() {
  // Prepared for this call and finalized at once: it holds no read lock.
  return db_.prepare("PRAGMA data_version").first_row(first_integer).value_or(0);
}

void EmsStore::put_delivery(std::string_view rec, std::string_view member,
                            const Delivery& delivery) {
  db_.cached(
         "INSERT INTO e2e_delivery(rec, member, highest, window) VALUES(?,?,?,?)"
         " ON CONFLICT(rec, member) DO UPDATE SET highest=excluded.highest,"
         " window=excluded.window")
      .bind(1, rec)
      .bind(2, member)
      .bind(3, static_cast<std::int64_t>(delivery.highest))
      .bind(4, to_hex(delivery.bitmap))
      .run();
}

std::optional<EmsStore::Delivery> EmsStore::delivery(std::string_view rec,
                                                     std::string_view member) {
  auto s = db_.prepare("SELECT highest, window FROM e2e_delivery WHERE rec=? AND member=?");
  s.bind(1, rec).bind(2, member);
  return s.first_row([](const SqliteStatement& row) {
    return Delivery{static_cast<std::uint64_t>(row.column_int(0)), from_hex(row.column_text(1))};
  });
}

std::vector<EmsStore::Unconfirmed> EmsStore::unconfirmed_controls(std::string_view rec,
                                                                  std::string_view member) {
  auto s = db_.prepare(
      "SELECT control_id, payload FROM controls WHERE state=? AND rec=? AND member=?"
      " ORDER BY sequence");
  s.bind(1, kStateIssued).bind(2, rec).bind(3, member);
  return s.rows([](const SqliteStatement& row) {
    return Unconfirmed{row.column_text(0), row.column_text(1)};
  });
}

std::vector<std::pair<std::string, std::string>> EmsStore::members_with_unconfirmed_controls() {
  auto s = db_.prepare("SELECT DISTINCT rec, member FROM controls WHERE state=?");
  s.bind(1, kStateIssued);
  return s.rows([](const SqliteStatement& row) {
    return std::pair{row.column_text(0), row.column_text(1)};
  });
}

std::uint64_t EmsStore::next_sequence(std::uint64_t now_ms) {
  SqliteTransaction tx(db_);
  const auto last =
      db_.prepare("SELECT value FROM meta WHERE key='sequence'").first_row(first_integer);
  const std::uint64_t next = std::max(static_cast<std::uint64_t>(last.value_or(0)) + 1, now_ms);
  db_.prepare(
         "INSERT INTO meta(key, value) VALUES('sequence', ?) ON CONFLICT(key) DO UPDATE"
         " SET value=excluded.value")
      .bind(1, static_cast<std::int64_t>(next))
      .run();
  tx.commit();
  return next;
}

}  // namespace recmesh::ems
