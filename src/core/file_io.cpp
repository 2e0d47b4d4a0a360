#include "recmesh/core/file_io.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"

namespace recmesh {
namespace {

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string errno_text() {
  return std::strerror(errno);
}

std::string temporary_name(const std::filesystem::path& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}.tmp-{:016x}", path.string(), rng());
}

}  // namespace

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("cannot read {}: {}", path.string(), errno_text()));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return std::move(buffer).str();
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  const std::string temp = temporary_name(path);
  FileDescriptor fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd.get() < 0) {
    throw Error(ErrorCode::kInternal, fmt::format("cannot create {}: {}", temp, errno_text()));
  }
  // The umask may have narrowed `mode`; set it exactly.
  bool ok = ::fchmod(fd.get(), mode) == 0;
  std::size_t written = 0;
  while (ok && written < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    ok = n > 0;
    if (ok) {
      written += static_cast<std::size_t>(n);
    }
  }
  ok = ok && ::fsync(fd.get()) == 0;
  const int saved_errno = errno;
  ::close(fd.release());
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
    errno = ok ? errno : saved_errno;
    std::string cause = errno_text();
    ::unlink(temp.c_str());
    throw Error(ErrorCode::kInternal, fmt::format("cannot write {}: {}", path.string(), cause));
  }
}

void create_directories(const std::filesystem::path& dir, mode_t mode) {
  if (dir.empty() || std::filesystem::is_directory(dir)) {
    return;
  }
  create_directories(dir.parent_path(), mode);
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    throw Error(ErrorCode::kInternal,
                fmt::format("cannot create directory {}: {}", dir.string(), errno_text()));
  }
}

void sync_filesystem(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0 || ::syncfs(fd.get()) != 0) {
    throw Error(ErrorCode::kInternal,
                fmt::format("cannot flush filesystem of {}: {}", path.string(), errno_text()));
  }
}

}  // namespace recmesh
