#include "bridge/message_store.hpp"

namespace recmesh::bridge {
namespace {

constexpr const char* kInsert =
    "INSERT INTO messages(direction, topic, payload, qos, retain) VALUES(?1, ?2, ?3, ?4, ?5) "
    "RETURNING id";
constexpr const char* kDelete = "DELETE FROM messages WHERE id = ?1";

std::int64_t direction_code(protocol::BridgeDirection direction) {
  return direction == protocol::BridgeDirection::kIn ? 1 : 0;
}

}  // namespace

MessageStore::MessageStore(const std::filesystem::path& path, StoreSync sync)
    : db_(path, SqliteDatabase::Mode::kCreate) {
  db_.execute("PRAGMA journal_mode = WAL");
  // kProcess: a committed transaction is in the WAL file through write(2), in the kernel's page
  // cache, which a crash of the process cannot undo; no fsync at commit nor at checkpoint
  // (synchronous=NORMAL would fsync at every checkpoint, on the event loop: milliseconds).
  db_.execute(sync == StoreSync::kPower ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF");
  db_.execute(
      "CREATE TABLE IF NOT EXISTS messages("
      " id INTEGER PRIMARY KEY,"
      " direction INTEGER NOT NULL,"
      " topic TEXT NOT NULL,"
      " payload BLOB NOT NULL,"
      " qos INTEGER NOT NULL,"
      " retain INTEGER NOT NULL)");
}

MessageStore::~MessageStore() {
  try {
    commit();
  } catch (...) {
    // Whatever was staged was never acknowledged to the source: it is sent again.
  }
}

std::vector<StoredMessage> MessageStore::load_all() {
  commit();
  std::vector<StoredMessage> out;
  SqliteStatement select =
      db_.prepare("SELECT id, direction, topic, payload, qos, retain FROM messages ORDER BY id");
  while (select.step()) {
    StoredMessage message;
    message.id = select.column_int(0);
    message.direction = select.column_int(1) == 1 ? protocol::BridgeDirection::kIn
                                                  : protocol::BridgeDirection::kOut;
    message.topic = select.column_text(2);
    message.payload = select.column_text(3);
    message.qos = static_cast<int>(select.column_int(4));
    message.retain = select.column_int(5) != 0;
    out.push_back(std::move(message));
  }
  return out;
}

void MessageStore::begin() {
  if (!open_) {
    db_.execute("BEGIN IMMEDIATE");
    open_ = true;
  }
}

std::int64_t MessageStore::append(StoredMessage& message) {
  begin();
  SqliteStatement& insert = db_.cached(kInsert);
  insert.bind(1, direction_code(message.direction))
      .bind(2, message.topic)
      .bind(3, message.payload)
      .bind(4, static_cast<std::int64_t>(message.qos))
      .bind(5, static_cast<std::int64_t>(message.retain ? 1 : 0));
  insert.step();
  message.id = insert.column_int(0);
  insert.reset();
  appends_staged_ = true;
  return message.id;
}

void MessageStore::remove(std::int64_t id) {
  begin();
  db_.cached(kDelete).bind(1, id).run();
}

void MessageStore::commit() {
  if (!open_) {
    return;
  }
  db_.execute("COMMIT");
  open_ = false;
  appends_staged_ = false;
  ++commits_;
}

}  // namespace recmesh::bridge
