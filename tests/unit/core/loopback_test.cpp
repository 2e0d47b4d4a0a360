#include "recmesh/core/loopback.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <set>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh {
namespace {

int first_ephemeral_port() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return in >> low && low > 0 ? low : 32768;
}

// A socket listening on 127.0.0.1:port for as long as it lives.
class Listener {
 public:
  explicit Listener(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    const sockaddr_in address = loopback_address(port);
    listening_ = fd_ >= 0 &&
                 ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 &&
                 ::listen(fd_, 4) == 0;
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  bool listening() const { return listening_; }

 private:
  int fd_;
  bool listening_ = false;
};

TEST(LoopbackTest, AddressIsOneTwoSevenZeroZeroOneInNetworkOrder) {
  const sockaddr_in address = loopback_address(20123);
  EXPECT_EQ(address.sin_family, AF_INET);
  EXPECT_EQ(ntohs(address.sin_port), 20123);
  EXPECT_EQ(ntohl(address.sin_addr.s_addr), 0x7f000001U);
}

TEST(LoopbackTest, FreePortsLieBelowTheEphemeralRangeAndAreNeverGivenTwice) {
  std::vector<int> taken;
  for (int i = 0; i < 50; ++i) {
    const int port = free_loopback_port(taken);
    EXPECT_GE(port, 20000);
    EXPECT_LT(port, first_ephemeral_port());
    EXPECT_TRUE(loopback_bindable(port));
  }
  ASSERT_EQ(taken.size(), 50U);
  std::vector<int> sorted = taken;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
}

TEST(LoopbackTest, APortInUseIsNeitherBindableNorFreeAndAcceptsConnections) {
  std::vector<int> taken;
  const int port = free_loopback_port(taken);
  EXPECT_FALSE(loopback_accepts(port));
  {
    const Listener listener(port);
    ASSERT_TRUE(listener.listening());
    EXPECT_FALSE(loopback_bindable(port));
    EXPECT_TRUE(loopback_accepts(port));
    // Taken by the listener, so never handed out while it lives.
    std::vector<int> others;
    for (int i = 0; i < 200; ++i) {
      EXPECT_NE(free_loopback_port(others), port);
    }
  }
}

// Picked and not yet bound, a port is invisible to a bind probe. Picked at random from some
// 12,000 ports, 1,000 picks by each of two callers share some 80 ports unless picks are claimed.
constexpr int kManyPicks = 1000;

TEST(LoopbackTest, CallersWithTheirOwnTakenListsNeverGetTheSamePort) {
  std::vector<int> first;
  std::vector<int> second;
  for (int i = 0; i < kManyPicks; ++i) {
    (void)free_loopback_port(first);
    (void)free_loopback_port(second);
  }
  const std::set<int> mine(first.begin(), first.end());
  for (const int port : second) {
    EXPECT_FALSE(mine.contains(port)) << port;
  }
}

TEST(LoopbackTest, APortAnotherLiveProcessPickedIsNeverPickedHere) {
  int ports_pipe[2];
  int done_pipe[2];
  ASSERT_EQ(::pipe(ports_pipe), 0);
  ASSERT_EQ(::pipe(done_pipe), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Picks, reports, and lives on (holding its picks) until the parent has picked its own.
    ::close(ports_pipe[0]);
    ::close(done_pipe[1]);
    std::vector<int> taken;
    try {
      for (int i = 0; i < kManyPicks; ++i) {
        (void)free_loopback_port(taken);
      }
    } catch (...) {
      ::_exit(2);  // never back into the test runner: the parent sees a short report
    }
    const auto bytes = static_cast<ssize_t>(taken.size() * sizeof(int));
    const bool sent =
        ::write(ports_pipe[1], taken.data(), static_cast<std::size_t>(bytes)) == bytes;
    char done = 0;
    (void)::read(done_pipe[0], &done, 1);
    ::_exit(sent ? 0 : 1);
  }
  ::close(ports_pipe[1]);
  ::close(done_pipe[0]);
  std::vector<int> theirs(kManyPicks);
  std::size_t got = 0;
  const std::size_t want = theirs.size() * sizeof(int);
  while (got < want) {
    const ssize_t n =
        ::read(ports_pipe[0], reinterpret_cast<char*>(theirs.data()) + got, want - got);
    if (n <= 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  std::vector<int> mine;
  if (got == want) {
    for (int i = 0; i < kManyPicks; ++i) {
      (void)free_loopback_port(mine);
    }
  }
  ::close(done_pipe[1]);  // the child ends
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::close(ports_pipe[0]);
  ASSERT_EQ(got, want) << "the child did not report its ports";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::set<int> picked_there(theirs.begin(), theirs.end());
  for (const int port : mine) {
    EXPECT_FALSE(picked_there.contains(port)) << port;
  }
}

// What a child that picks ports with $TMPDIR set to `dir` reports: how it ended.
enum PickerExit { kPicked = 0, kThrew = 2 };

int pick_in_child(const std::filesystem::path& dir) {
  const pid_t child = ::fork();
  if (child == 0) {
    // The claims file is opened anew after a fork, in $TMPDIR as it is then.
    ::setenv("TMPDIR", dir.c_str(), 1);
    std::vector<int> taken;
    try {
      for (int i = 0; i < 20; ++i) {
        (void)free_loopback_port(taken);
      }
    } catch (...) {
      ::_exit(kThrew);
    }
    ::_exit(kPicked);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) {
    return -1;
  }
  return WEXITSTATUS(status);
}

std::filesystem::path claims_file_in(const std::filesystem::path& dir) {
  return dir / ("recmesh-loopback-ports-" + std::to_string(::getuid()));
}

// A file owned by `owner` that this process holds locked whole: through it every claim would
// fail. The lock lasts as long as the returned descriptor is open; -1 with errno on failure.
int file_locked_whole(const std::filesystem::path& path, uid_t owner) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct flock whole {};
  whole.l_type = F_WRLCK;
  whole.l_whence = SEEK_SET;
  if (fd < 0 || ::fchown(fd, owner, static_cast<gid_t>(-1)) != 0 ||
      ::fcntl(fd, F_OFD_SETLK, &whole) != 0) {
    if (fd >= 0) {
      ::close(fd);
    }
    return -1;
  }
  return fd;
}

// Another user of a shared $TMPDIR may plant a link where the claims file goes: it is never
// followed, neither to create the file it names nor to lock one that exists.
TEST(LoopbackTest, AClaimsFileThatIsALinkIsNeverFollowed) {
  const testing::TempDir dir;
  const std::filesystem::path target = dir / "planted";
  std::filesystem::create_symlink(target, claims_file_in(dir.path()));
  EXPECT_EQ(pick_in_child(dir.path()), kPicked);
  EXPECT_FALSE(std::filesystem::exists(target)) << "created through the link";

  // Followed, the link would lead to a file locked whole: every claim refused, no port at all.
  const int held = file_locked_whole(target, ::getuid());
  ASSERT_GE(held, 0);
  EXPECT_EQ(pick_in_child(dir.path()), kPicked);
  ::close(held);
}

// The control of the next test: the user's own file, held whole elsewhere, refuses every port.
TEST(LoopbackTest, AClaimsFileLockedWholeByAnotherProcessRefusesEveryPort) {
  const testing::TempDir dir;
  const int held = file_locked_whole(claims_file_in(dir.path()), ::getuid());
  ASSERT_GE(held, 0);
  EXPECT_EQ(pick_in_child(dir.path()), kThrew);
  ::close(held);
}

// Another user's file where the claims file goes is never used: its owner could refuse every
// port, or learn which ones this user's processes are about to bind.
TEST(LoopbackTest, AClaimsFileOwnedByAnotherUserIsNeverUsed) {
  constexpr uid_t kNobody = 65534;
  if (::getuid() == kNobody) {
    GTEST_SKIP() << "runs as the user the planted file is given to";
  }
  const testing::TempDir dir;
  const int held = file_locked_whole(claims_file_in(dir.path()), kNobody);
  if (held < 0 && errno == EPERM) {
    GTEST_SKIP() << "giving a file to another user takes privileges this run does not have";
  }
  ASSERT_GE(held, 0);
  EXPECT_EQ(pick_in_child(dir.path()), kPicked);
  ::close(held);
}

}  // namespace
}  // namespace recmesh
