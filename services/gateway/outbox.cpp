#include "gateway/outbox.hpp"

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
      " topic TEXT NOT NULL, payload BLOB NOT NULL)");
  auto count = db_.prepare("SELECT count(*) FROM outbox");
  count.step();
  size_ = static_cast<std::size_t>(count.column_int(0));
}

std::size_t Outbox::push(std::string_view topic, std::string_view payload) {
  SqliteTransaction tx(db_);
  std::size_t dropped = 0;
  if (size_ >= capacity_) {
    const auto excess = static_cast<std::int64_t>(size_ - capacity_ + 1);
    db_.cached("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)")
        .bind(1, excess)
        .run();
    dropped = static_cast<std::size_t>(db_.changes());
  }
  db_.cached("INSERT INTO outbox(topic, payload) VALUES(?, ?)")
      .bind(1, topic)
      .bind(2, payload)
      .run();
  tx.commit();
  size_ = size_ - dropped + 1;
  return dropped;
}

std::vector<Outbox::Entry> Outbox::after(std::int64_t after, std::size_t limit) {
  auto& st = db_.cached("SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?");
  st.bind(1, after).bind(2, static_cast<std::int64_t>(limit));
  std::vector<Entry> out;
  while (st.step()) {
    out.push_back({st.column_int(0), st.column_text(1), st.column_text(2)});
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

}  // namespace recmesh::gateway
