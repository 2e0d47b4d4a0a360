#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace recmesh {

class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  ~SqliteStatement();

  // Binds by 1-based position; std::nullopt binds NULL.
  SqliteStatement& bind(int index, std::string_view value);
  SqliteStatement& bind(int index, std::int64_t value);
  SqliteStatement& bind_nullable(int index, const std::optional<std::string>& value);
  SqliteStatement& bind_nullable(int index, const std::optional<std::int64_t>& value);

  // Advances to the next row; false when done.
  bool step();
  // Runs a statement that returns no rows, then resets it for reuse.
  void run();
  void reset();

  // Every remaining row, each made into a value by `read`, which is handed the statement
  // standing on that row.
  template <typename Read>
  auto rows(Read read) {
    std::vector<std::invoke_result_t<Read&, const SqliteStatement&>> out;
    while (step()) {
      out.push_back(read(std::as_const(*this)));
    }
    return out;
  }
  // The next row made into a value by `read`, or nothing when there is none. The statement is
  // reset after, so that a cached one does not hold its read transaction open.
  template <typename Read>
  auto first_row(Read read) -> std::optional<std::invoke_result_t<Read&, const SqliteStatement&>> {
    std::optional<std::invoke_result_t<Read&, const SqliteStatement&>> row;
    if (step()) {
      row.emplace(read(std::as_const(*this)));
    }
    reset();
    return row;
  }

  std::string column_text(int index) const;
  std::optional<std::string> column_optional_text(int index) const;
  std::int64_t column_int(int index) const;
  std::optional<std::int64_t> column_optional_int(int index) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// One SQLite connection. Errors throw Error(kInternal) with the statement's SQL and SQLite's text;
// a file that is not a database throws Error(kDataLoss).
class SqliteDatabase {
 public:
  enum class Mode { kReadOnly, kReadWrite, kCreate };

  SqliteDatabase(const std::filesystem::path& path, Mode mode);
  SqliteDatabase(const SqliteDatabase&) = delete;
  SqliteDatabase& operator=(const SqliteDatabase&) = delete;
  ~SqliteDatabase();

  void execute(std::string_view sql);
  SqliteStatement prepare(std::string_view sql);
  // A statement compiled once per connection and reset for reuse: for hot paths. The reference
  // stays valid while the database lives; do not hold two uses of the same SQL at once.
  SqliteStatement& cached(const std::string& sql);
  std::int64_t changes() const;
  // The rowid of the last row this connection inserted.
  std::int64_t last_insert_rowid() const;
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  std::map<std::string, SqliteStatement, std::less<>> cache_;
};

// RAII transaction: BEGIN IMMEDIATE on construction, ROLLBACK unless commit() was called. Inside
// another transaction it is a savepoint, so that a write that is atomic on its own can also be
// made part of a caller's larger one.
class SqliteTransaction {
 public:
  explicit SqliteTransaction(SqliteDatabase& db);
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  ~SqliteTransaction();
  void commit();

 private:
  SqliteDatabase& db_;
  bool open_ = true;
  bool nested_ = false;
};

}  // namespace recmesh
