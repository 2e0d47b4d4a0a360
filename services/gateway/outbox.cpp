#include "gateway/outbox.hpp"

#include <chrono>

#include "recmesh/core/error.hpp"

namespace recmesh::gateway {

Outbox::Outbox(const std::filesystem::path& path, std::size_t capacity)
    : db_(path, SqliteDatabase::Mode::kCreate), capacity_(capacity) {
  if (capacity_ == 0) {
    throw Error(ErrorCode::kInvalidArgument, "outbox capacity must be at least 1");
  }
  db_.execute("PRAGMA journal_mode=WAL");
  // A committed row survives a crash of the process; only a power loss may take the last
  // transactions with it (docs/gateway.md, "Durability").
  db_.execute("PRAGMA synchronous=NORMAL");
  db_.execute(
      "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
      " topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL DEFAULT 0)");
  bool has_retain = false;
  auto columns = db_.prepare("PRAGMA table_info(outbox)");
  while (columns.step()) {
    has_retain = has_retain || columns.column_text(1) == "retain";
  }
  if (!has_retain) {  // an outbox written before status info went through it
    db_.execute("ALTER TABLE outbox ADD COLUMN retain INTEGER NOT NULL DEFAULT 0");
  }
  // IDs continue above everything an earlier database of this gateway gave out, whose numbers
  // the engine may remember: the first ID is the clock in microseconds.
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  db_.prepare(
         "INSERT INTO sqlite_sequence(name, seq) SELECT 'outbox', ? WHERE NOT EXISTS"
         " (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox')")
      .bind(1, static_cast<std::int64_t>(now_us))
      .run();
  auto count = db_.prepare("SELECT count(*) FROM outbox");
  count.step();
  size_ = static_cast<std::size_t>(count.column_int(0));
}

std::size_t Outbox::push(std::string_view topic, std::string_view payload, bool retain) {
  SqliteTransaction tx(db_);
  std::size_t dropped = 0;
  if (size_ >= capacity_) {
    const auto excess = static_cast<std::int64_t>(size_ - capacity_ + 1);
    db_.cached("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)")
        .bind(1, excess)
        .run();
    dropped = static_cast<std::size_t>(db_.changes());
  }
  db_.cached("INSERT INTO outbox(topic, payload, retain) VALUES(?, ?, ?)")
      .bind(1, topic)
      .bind(2, payload)
      .bind(3, std::int64_t{retain ? 1 : 0})
      .run();
  tx.commit();
  size_ = size_ - dropped + 1;
  return dropped;
}

std::vector<Outbox::Entry> Outbox::after(std::int64_t after, std::size_t limit) {
  auto& st =
      db_.cached("SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?");
  st.bind(1, after).bind(2, static_cast<std::int64_t>(limit));
  std::vector<Entry> out;
  while (st.step()) {
    out.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_int(3) != 0});
  }
  st.reset();
  return out;
}

void Outbox::remove(std::int64_t id) {
  db_.cached("DELETE FROM outbox WHERE id = ?").bind(1, id).run();
  if (db_.changes() > 0 && size_ > 0) {
    --size_;
  }
}

std::size_t Outbox::confirm(const e2e::Acknowledgement& ack) {
  const auto highest = static_cast<std::int64_t>(ack.highest);
  const std::int64_t below = ack.highest > ack.window ? highest - ack.window : 0;
  SqliteTransaction tx(db_);
  // Below the engine's window every message counts as delivered (docs/protocol/e2e.md §6.1).
  db_.cached("DELETE FROM outbox WHERE id <= ?").bind(1, below).run();
  std::size_t removed = static_cast<std::size_t>(db_.changes());
  auto in_window = db_.prepare("SELECT id FROM outbox WHERE id > ? AND id <= ?");
  in_window.bind(1, below).bind(2, highest);
  const auto ids = in_window.rows([](const SqliteStatement& row) { return row.column_int(0); });
  for (const std::int64_t id : ids) {
    if (ack.confirms(static_cast<std::uint64_t>(id))) {
      db_.cached("DELETE FROM outbox WHERE id = ?").bind(1, id).run();
      removed += static_cast<std::size_t>(db_.changes());
    }
  }
  tx.commit();
  size_ = removed > size_ ? 0 : size_ - removed;
  return removed;
}

std::uint64_t Outbox::last_id() {
  auto s = db_.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'");
  return s.step() ? static_cast<std::uint64_t>(s.column_int(0)) : 0;
}

}  // namespace recmesh::gateway
