#include "recmesh/core/sqlite_database.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh {
namespace {

using Row = std::pair<std::string, std::int64_t>;

Row row_from(const SqliteStatement& s) {
  return {s.column_text(0), s.column_int(1)};
}

class SqliteDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.execute("CREATE TABLE t (name TEXT PRIMARY KEY, n INTEGER NOT NULL)");
    for (const auto& [name, n] : std::vector<Row>{{"a", 1}, {"b", 2}, {"c", 3}}) {
      db_.cached("INSERT INTO t (name, n) VALUES (?1, ?2)").bind(1, name).bind(2, n).run();
    }
  }

  testing::TempDir dir_;
  SqliteDatabase db_{dir_ / "t.db", SqliteDatabase::Mode::kCreate};
};

TEST_F(SqliteDatabaseTest, RowsReadsEveryRowInOrder) {
  auto s = db_.prepare("SELECT name, n FROM t WHERE n >= ?1 ORDER BY n");
  s.bind(1, std::int64_t{2});
  EXPECT_EQ(s.rows(row_from), (std::vector<Row>{{"b", 2}, {"c", 3}}));
  auto none = db_.prepare("SELECT name, n FROM t WHERE n > 9");
  EXPECT_TRUE(none.rows(row_from).empty());
}

TEST_F(SqliteDatabaseTest, FirstRowIsTheFirstOrNothing) {
  auto s = db_.prepare("SELECT name, n FROM t ORDER BY n DESC");
  EXPECT_EQ(s.first_row(row_from), Row("c", 3));
  auto none = db_.prepare("SELECT name, n FROM t WHERE name = 'z'");
  EXPECT_EQ(none.first_row(row_from), std::nullopt);
}

TEST_F(SqliteDatabaseTest, ACachedFirstRowIsResetForItsNextUse) {
  const std::string sql = "SELECT name, n FROM t WHERE name = ?1";
  EXPECT_EQ(db_.cached(sql).bind(1, "a").first_row(row_from), Row("a", 1));
  // A write from another connection succeeds: no read transaction was left open.
  SqliteDatabase other(dir_ / "t.db", SqliteDatabase::Mode::kReadWrite);
  other.execute("PRAGMA busy_timeout = 0");
  other.execute("INSERT INTO t (name, n) VALUES ('d', 4)");
  EXPECT_EQ(db_.cached(sql).bind(1, "d").first_row(row_from), Row("d", 4));
}

TEST_F(SqliteDatabaseTest, LastInsertRowidIsTheRowJustInserted) {
  db_.execute("CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT)");
  db_.prepare("INSERT INTO log (text) VALUES ('x')").run();
  db_.prepare("INSERT INTO log (text) VALUES ('y')").run();
  EXPECT_EQ(db_.last_insert_rowid(), 2);
}

}  // namespace
}  // namespace recmesh
