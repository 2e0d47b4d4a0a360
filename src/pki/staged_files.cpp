#include "staged_files.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

namespace recmesh::pki {
namespace {

constexpr mode_t kDirectoryMode = 0700;
// Up to this many files, fsync each (cost independent of other writers on the machine); above,
// one syncfs of the whole filesystem is cheaper than thousands of fsyncs.
constexpr std::size_t kFsyncEachLimit = 16;

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  const std::string cause = ok ? std::string() : std::strerror(errno);
  if (fd >= 0) {
    ::close(fd);
  }
  if (!ok) {
    throw Error(ErrorCode::kInternal, fmt::format("cannot flush {}: {}", path.string(), cause));
  }
}

void write_new_file(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    throw Error(ErrorCode::kInternal,
                fmt::format("cannot create {}: {}", path.string(), std::strerror(errno)));
  }
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t written = 0;
  while (ok && written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    ok = n > 0;
    written += ok ? static_cast<std::size_t>(n) : 0;
  }
  const std::string cause = ok ? std::string() : std::strerror(errno);
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw Error(ErrorCode::kInternal, fmt::format("cannot write {}: {}", path.string(), cause));
  }
}

}  // namespace

StagedFiles::StagedFiles(SqliteDatabase& db, std::filesystem::path root)
    : db_(db), root_(std::move(root)) {}

StagedFiles::~StagedFiles() {
  if (!published_) {
    discard();
  }
}

void StagedFiles::create_schema(SqliteDatabase& db) {
  db.execute(
      "CREATE TABLE IF NOT EXISTS pending_files (temp TEXT PRIMARY KEY, final TEXT NOT NULL)");
}

void StagedFiles::make_parent_directories(const std::filesystem::path& absolute) {
  std::vector<std::filesystem::path> missing;
  for (auto dir = absolute.parent_path(); !dir.empty() && !known_directories_.contains(dir);
       dir = dir.parent_path()) {
    if (std::filesystem::exists(dir)) {
      known_directories_.insert(dir);
      break;
    }
    missing.push_back(dir);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), kDirectoryMode) != 0 && errno != EEXIST) {
      throw Error(ErrorCode::kInternal, fmt::format("cannot create directory {}: {}", it->string(),
                                                    std::strerror(errno)));
    }
    created_directories_.push_back(*it);
    known_directories_.insert(*it);
  }
}

void StagedFiles::stage(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::filesystem::path final_path = root_ / path;
  make_parent_directories(final_path);
  const std::string temp = fmt::format("{}.staged-{:016x}", path.string(), rng());
  write_new_file(root_ / temp, content, mode);
  renames_.emplace_back(temp, path.string());
  db_.cached("INSERT INTO pending_files (temp, final) VALUES (?, ?)")
      .bind(1, temp)
      .bind(2, path.string())
      .run();
}

void StagedFiles::stage_removal(const std::filesystem::path& path) {
  removals_.push_back(path.string());
}

void StagedFiles::flush() {
  if (renames_.size() > kFsyncEachLimit) {
    sync_filesystem(root_);
    return;
  }
  for (const auto& [temp, final_path] : renames_) {
    fsync_path(root_ / temp);
  }
}

void StagedFiles::publish() {
  published_ = true;
  for (const auto& [temp, final_path] : renames_) {
    if (::rename((root_ / temp).c_str(), (root_ / final_path).c_str()) != 0) {
      // Left for recover(): the row stays until the rename happens.
      throw Error(ErrorCode::kInternal,
                  fmt::format("cannot move {} into place: {}", final_path, std::strerror(errno)));
    }
  }
  for (const auto& path : removals_) {
    ::unlink((root_ / path).c_str());
  }
  if (renames_.empty()) {
    return;
  }
  db_.execute("DELETE FROM pending_files");
  if (renames_.size() > kFsyncEachLimit) {
    sync_filesystem(root_);
    return;
  }
  std::set<std::filesystem::path> directories;
  for (const auto& [temp, final_path] : renames_) {
    directories.insert((root_ / final_path).parent_path());
  }
  for (const auto& dir : directories) {
    fsync_path(dir);
  }
}

void StagedFiles::discard() noexcept {
  for (const auto& [temp, final_path] : renames_) {
    ::unlink((root_ / temp).c_str());
  }
  for (auto it = created_directories_.rbegin(); it != created_directories_.rend(); ++it) {
    ::rmdir(it->c_str());
  }
}

void StagedFiles::recover(SqliteDatabase& db, const std::filesystem::path& root) {
  auto pending = db.prepare("SELECT temp, final FROM pending_files");
  bool any = false;
  while (pending.step()) {
    any = true;
    const std::filesystem::path temp = root / pending.column_text(0);
    if (std::filesystem::exists(temp)) {
      std::filesystem::rename(temp, root / pending.column_text(1));
    }
  }
  if (any) {
    db.execute("DELETE FROM pending_files");
    sync_filesystem(root);
  }
}

}  // namespace recmesh::pki
