#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"

namespace recmesh::pki {

// File changes that land together with a database transaction.
//
// stage() writes each new file beside its destination and records the pending rename in the
// database's `pending_files` table inside the open transaction. After COMMIT, publish() renames
// them into place; if the process dies in between, recover() finishes the renames on the next
// open. Without a commit, the destructor removes the temporaries and any directory it created,
// so a failed command leaves the tree as it was.
class StagedFiles {
 public:
  StagedFiles(SqliteDatabase& db, std::filesystem::path root);
  StagedFiles(const StagedFiles&) = delete;
  StagedFiles& operator=(const StagedFiles&) = delete;
  ~StagedFiles();

  // `path` is relative to the root.
  void stage(const std::filesystem::path& path, std::string_view content, mode_t mode);
  void stage_removal(const std::filesystem::path& path);
  // Call before COMMIT: makes staged bytes durable with one syncfs.
  void flush();
  // Call after COMMIT.
  void publish();

  static void create_schema(SqliteDatabase& db);
  static void recover(SqliteDatabase& db, const std::filesystem::path& root);

 private:
  void discard() noexcept;
  void make_parent_directories(const std::filesystem::path& absolute);

  SqliteDatabase& db_;
  std::filesystem::path root_;
  std::vector<std::pair<std::string, std::string>> renames_;  // temp, final (relative)
  std::vector<std::string> removals_;
  std::vector<std::filesystem::path> created_directories_;
  std::set<std::filesystem::path> known_directories_;  // exist already, or created here
  bool published_ = false;
};

}  // namespace recmesh::pki
