#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/protocol/bridge_mapping.hpp"

namespace recmesh::bridge {

// How hard a commit pushes the store to disk.
enum class StoreSync {
  kProcess,  // WAL, synchronous=OFF: a committed message survives a crash of the process
  kPower,    // WAL, synchronous=FULL: it also survives a crash of the machine (fsync per commit)
};

// One message the bridge has accepted and not yet seen acknowledged by the far broker.
struct StoredMessage {
  std::int64_t id = 0;  // increasing in arrival order
  protocol::BridgeDirection direction = protocol::BridgeDirection::kOut;
  std::string topic;  // already mapped to the destination's name
  std::string payload;
  int qos = 1;
  bool retain = false;

  std::size_t size() const { return topic.size() + payload.size(); }
};

// The bridge's store-and-forward buffer: an SQLite database in WAL mode. Appends and removals
// are staged in one open transaction and made durable together by commit() (group commit), so
// a burst of messages read from one socket costs one commit.
class MessageStore {
 public:
  // Opens or creates the file. Throws Error(kDataLoss) for a file that is not a database.
  MessageStore(const std::filesystem::path& path, StoreSync sync);
  MessageStore(const MessageStore&) = delete;
  MessageStore& operator=(const MessageStore&) = delete;
  ~MessageStore();

  // Every message still held, in id order (used once, at start).
  std::vector<StoredMessage> load_all();
  // Stages `message`; fills and returns its id. Durable after the next commit().
  std::int64_t append(StoredMessage& message);
  // Stages the removal of a message the far broker acknowledged.
  void remove(std::int64_t id);
  // Makes everything staged durable; does nothing when nothing is staged.
  void commit();
  bool has_staged() const { return open_; }
  // Whether an append is staged (removals alone need not be durable at once).
  bool has_staged_appends() const { return appends_staged_; }
  std::uint64_t commits() const { return commits_; }

 private:
  void begin();

  SqliteDatabase db_;
  bool open_ = false;
  bool appends_staged_ = false;
  std::uint64_t commits_ = 0;
};

}  // namespace recmesh::bridge
