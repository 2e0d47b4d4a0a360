#include "recmesh/core/sqlite_database.hpp"

#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

#include "recmesh/core/error.hpp"

namespace recmesh {
namespace {

[[noreturn]] void throw_sqlite(sqlite3* db, std::string_view what) {
  const int code = db != nullptr ? sqlite3_errcode(db) : SQLITE_ERROR;
  const char* message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  const ErrorCode kind = (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) ? ErrorCode::kDataLoss
                         : code == SQLITE_BUSY                             ? ErrorCode::kUnavailable
                                                                           : ErrorCode::kInternal;
  throw Error(kind, fmt::format("{}: {}", what, message));
}

constexpr int kBusyTimeoutMs = 10000;

}  // namespace

SqliteDatabase::SqliteDatabase(const std::filesystem::path& path, Mode mode) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX;
  switch (mode) {
    case Mode::kReadOnly:
      flags |= SQLITE_OPEN_READONLY;
      break;
    case Mode::kReadWrite:
      flags |= SQLITE_OPEN_READWRITE;
      break;
    case Mode::kCreate:
      flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
      break;
  }
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCode::kNotFound, fmt::format("cannot open {}: {}", path.string(), message));
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db_, 0);
  // Touch the schema so a file that is not a database fails here, with its name.
  char* error = nullptr;
  if (sqlite3_exec(db_, "PRAGMA schema_version", nullptr, nullptr, &error) != SQLITE_OK) {
    sqlite3_free(error);
    const bool corrupt =
        sqlite3_errcode(db_) == SQLITE_NOTADB || sqlite3_errcode(db_) == SQLITE_CORRUPT;
    std::string message = sqlite3_errmsg(db_);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(corrupt ? ErrorCode::kDataLoss : ErrorCode::kInternal,
                fmt::format("cannot read {}: {}", path.string(), message));
  }
  execute("PRAGMA foreign_keys = ON");
}

SqliteDatabase::~SqliteDatabase() {
  cache_.clear();  // statements are finalized before the connection closes
  sqlite3_close(db_);
}

SqliteStatement& SqliteDatabase::cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    it = cache_.emplace(sql, prepare(sql)).first;
  } else {
    it->second.reset();
  }
  return it->second;
}

void SqliteDatabase::execute(std::string_view sql) {
  const std::string text(sql);
  char* error = nullptr;
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    sqlite3_free(error);
    throw_sqlite(db_, fmt::format("SQL failed ({})", text.substr(0, 60)));
  }
}

SqliteStatement SqliteDatabase::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    throw_sqlite(db_, fmt::format("cannot prepare ({})", sql.substr(0, 60)));
  }
  return {db_, stmt};
}

std::int64_t SqliteDatabase::changes() const {
  return sqlite3_changes64(db_);
}

std::int64_t SqliteDatabase::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}

SqliteStatement::~SqliteStatement() {
  sqlite3_finalize(stmt_);
}

SqliteStatement& SqliteStatement::bind(int index, std::string_view value) {
  if (sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    throw_sqlite(db_, "bind");
  }
  return *this;
}

SqliteStatement& SqliteStatement::bind(int index, std::int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) {
    throw_sqlite(db_, "bind");
  }
  return *this;
}

SqliteStatement& SqliteStatement::bind_nullable(int index,
                                                const std::optional<std::string>& value) {
  if (value) {
    return bind(index, std::string_view(*value));
  }
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) {
    throw_sqlite(db_, "bind");
  }
  return *this;
}

SqliteStatement& SqliteStatement::bind_nullable(int index,
                                                const std::optional<std::int64_t>& value) {
  if (value) {
    return bind(index, *value);
  }
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) {
    throw_sqlite(db_, "bind");
  }
  return *this;
}

bool SqliteStatement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  throw_sqlite(db_, fmt::format("statement failed ({})",
                                std::string_view(sqlite3_sql(stmt_)).substr(0, 60)));
}

void SqliteStatement::run() {
  while (step()) {
  }
  reset();
}

void SqliteStatement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string SqliteStatement::column_text(int index) const {
  const auto* text = sqlite3_column_text(stmt_, index);
  if (text == nullptr) {
    return {};
  }
  return {reinterpret_cast<const char*>(text),
          static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index))};
}

std::optional<std::string> SqliteStatement::column_optional_text(int index) const {
  if (sqlite3_column_type(stmt_, index) == SQLITE_NULL) {
    return std::nullopt;
  }
  return column_text(index);
}

std::int64_t SqliteStatement::column_int(int index) const {
  return sqlite3_column_int64(stmt_, index);
}

std::optional<std::int64_t> SqliteStatement::column_optional_int(int index) const {
  if (sqlite3_column_type(stmt_, index) == SQLITE_NULL) {
    return std::nullopt;
  }
  return column_int(index);
}

SqliteTransaction::SqliteTransaction(SqliteDatabase& db)
    : db_(db), nested_(sqlite3_get_autocommit(db.handle()) == 0) {
  db_.execute(nested_ ? "SAVEPOINT recmesh_nested" : "BEGIN IMMEDIATE");
}

SqliteTransaction::~SqliteTransaction() {
  if (open_) {
    try {
      db_.execute(nested_ ? "ROLLBACK TO recmesh_nested; RELEASE recmesh_nested" : "ROLLBACK");
    } catch (const Error&) {
      // Nothing more can be done; SQLite rolls back on close as well.
    }
  }
}

void SqliteTransaction::commit() {
  db_.execute(nested_ ? "RELEASE recmesh_nested" : "COMMIT");
  open_ = false;
}

}  // namespace recmesh
