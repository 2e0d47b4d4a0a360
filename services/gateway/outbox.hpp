#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/e2e/delivery.hpp"

namespace recmesh::gateway {

// The gateway's messages for the platform (member metrics, control responses, logs, status
// info) between their creation and the EMS engine's ack that it stored them — or the local
// broker's PUBACK when end-to-end protection is off (docs/gateway.md, "Outbox"). Durable in
// SQLite so that neither a broken link nor a crash of the gateway or of the engine loses them;
// read back in the order written. A row's ID is the message's end-to-end ID: it only grows, also
// across a lost database (the first ID is taken from the clock). Bounded: a push into a full
// outbox drops the oldest message and counts it.
class Outbox {
 public:
  struct Entry {
    std::int64_t id = 0;  // increasing in the order of push()
    std::string topic;
    std::string payload;
    bool retain = false;
  };

  // Opens (creating when missing) the outbox table in the SQLite file at `path`, which may be
  // the command log's file. Throws Error for an unusable file.
  Outbox(const std::filesystem::path& path, std::size_t capacity);

  // Appends a message; returns how many older ones were dropped to make room (0 or more).
  std::size_t push(std::string_view topic, std::string_view payload, bool retain = false);
  // Up to `limit` messages with an id above `after`, oldest first.
  std::vector<Entry> after(std::int64_t after, std::size_t limit);
  // The broker has the message: forget it. Unknown ids are ignored (dropped meanwhile).
  void remove(std::int64_t id);
  // Forgets every message the engine's ack confirms; returns how many.
  std::size_t confirm(const e2e::Acknowledgement& ack);
  // The highest ID ever given to a message (0 before the first).
  std::uint64_t last_id();
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }

 private:
  SqliteDatabase db_;
  std::size_t capacity_;
  std::size_t size_ = 0;
};

}  // namespace recmesh::gateway
