#include "sim/process_supervisor.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"

namespace recmesh::sim {
namespace {

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// posix_spawn with the child in a process group of its own, default signal handling and an
// empty mask (the simulator blocks SIGTERM/SIGINT for its signalfd), output appended to `log`.
pid_t spawn(const ProcessSpec& spec) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, spec.log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0640);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  sigset_t empty;
  sigset_t defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (const int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) {
    sigaddset(&defaults, s);
  }
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(
      &attr,
      static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (const auto& arg : spec.argv) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw Error(ErrorCode::kInternal, fmt::format("cannot start {} ({}): {}", spec.name,
                                                  spec.argv[0], std::strerror(rc)));
  }
  return pid;
}

}  // namespace

std::string log_tail(const std::filesystem::path& file, std::size_t lines) {
  std::ifstream in(file);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line.substr(0, 300));
    if (last.size() > lines) {
      last.pop_front();
    }
  }
  std::string out;
  for (const auto& l : last) {
    out += l;
    out += '\n';
  }
  return out;
}

ProcessSupervisor::ProcessSupervisor(mqtt::EventLoop& loop, SupervisionPolicy policy,
                                     ExitHandler on_exit)
    : loop_(loop), policy_(policy), on_exit_(std::move(on_exit)), created_(loop.now()) {}

ProcessSupervisor::~ProcessSupervisor() {
  for (auto& entry : entries_) {
    if (entry.pid > 0) {
      ::kill(-entry.pid, SIGKILL);
      int status = 0;
      ::waitpid(entry.pid, &status, 0);
      entry.pid = -1;
    }
    if (entry.pidfd >= 0) {
      loop_.unwatch(entry.pidfd);
      ::close(entry.pidfd);
      entry.pidfd = -1;
    }
    if (entry.restart_timer != 0) {
      loop_.cancel_timer(entry.restart_timer);
    }
  }
  if (kill_timer_ != 0) {
    loop_.cancel_timer(kill_timer_);
  }
}

std::size_t ProcessSupervisor::add(ProcessSpec spec) {
  Entry entry;
  entry.spec = std::move(spec);
  entries_.push_back(std::move(entry));
  return entries_.size() - 1;
}

std::optional<std::size_t> ProcessSupervisor::find(const std::string& name) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].spec.name == name) {
      return i;
    }
  }
  return std::nullopt;
}

std::vector<pid_t> ProcessSupervisor::every_pid() const {
  return every_pid_;
}

double ProcessSupervisor::elapsed_s() const {
  return std::chrono::duration<double>(loop_.now() - created_).count();
}

void ProcessSupervisor::start(std::size_t index) {
  Entry& entry = entries_.at(index);
  if (entry.pid > 0) {
    return;
  }
  if (entry.restart_timer != 0) {
    loop_.cancel_timer(entry.restart_timer);
    entry.restart_timer = 0;
  }
  entry.keep_down = false;
  entry.expect_exit = false;
  entry.pid = spawn(entry.spec);
  every_pid_.push_back(entry.pid);
  entry.history.push_back(entry.pid);
  entry.pidfd = pidfd_open(entry.pid);
  if (entry.pidfd < 0) {
    ::kill(-entry.pid, SIGKILL);
    int status = 0;
    ::waitpid(entry.pid, &status, 0);
    entry.pid = -1;
    throw Error(ErrorCode::kInternal, fmt::format("pidfd_open: {}", std::strerror(errno)));
  }
  auto watched =
      loop_.watch(entry.pidfd, true, false, [this, index](mqtt::FdEvents) { on_exited(index); });
  if (!watched) {
    throw Error(ErrorCode::kInternal, watched.status().message);
  }
  spdlog::debug("sim: started {} (pid {})", entry.spec.name, entry.pid);
}

void ProcessSupervisor::signal(std::size_t index, int signal, bool keep_down) {
  Entry& entry = entries_.at(index);
  entry.keep_down = entry.keep_down || keep_down;
  if (entry.pid > 0) {
    entry.expect_exit = true;
    ::kill(-entry.pid, signal);
  } else if (keep_down && entry.restart_timer != 0) {
    loop_.cancel_timer(entry.restart_timer);
    entry.restart_timer = 0;
  }
}

void ProcessSupervisor::restart(std::size_t index) {
  Entry& entry = entries_.at(index);
  if (entry.pid <= 0) {
    start(index);
    return;
  }
  entry.start_after_exit = true;
  signal(index, SIGTERM, true);
}

void ProcessSupervisor::on_exited(std::size_t index) {
  Entry& entry = entries_.at(index);
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(entry.pidfd), &info, WEXITED | WNOHANG) != 0 ||
      info.si_pid == 0) {
    return;  // not yet (spurious wake-up)
  }
  loop_.unwatch(entry.pidfd);
  ::close(entry.pidfd);
  entry.pidfd = -1;
  ProcessExit exit;
  exit.name = entry.spec.name;
  exit.pid = entry.pid;
  if (info.si_code == CLD_EXITED) {
    exit.exit_code = info.si_status;
  } else {
    exit.signal = info.si_status;
  }
  // The group may still hold a grandchild: nothing escapes.
  ::kill(-entry.pid, SIGKILL);
  entry.pid = -1;
  exit.expected = entry.expect_exit;
  exit.at_s = elapsed_s();
  const bool stopping = std::find(stopping_.begin(), stopping_.end(), index) != stopping_.end();
  const bool failed = exit.exit_code != 0;
  bool gave_up = false;
  if (!stopping && entry.start_after_exit) {
    entry.start_after_exit = false;
    exit.restarted = true;
    start(index);
  } else if (!stopping && !entry.keep_down) {
    const bool wanted = policy_.restart == RestartPolicy::kAlways ||
                        (policy_.restart == RestartPolicy::kOnFailure && (failed || exit.expected));
    if (wanted && entry.restarts < policy_.max_restarts) {
      ++entry.restarts;
      exit.restarted = true;
      entry.restart_timer = loop_.add_timer(policy_.restart_delay, [this, index] {
        entries_.at(index).restart_timer = 0;
        try {
          start(index);
        } catch (const Error& e) {
          spdlog::error("sim: {}", e.what());
        }
      });
    } else {
      gave_up = !exit.expected;
    }
  }
  if (!exit.expected || gave_up) {
    exit.log_tail = log_tail(entry.spec.log);
  }
  exits_.push_back(exit);
  if (!stopping && on_exit_) {
    on_exit_(exit, gave_up);
  }
  finish_stop_if_done();
}

void ProcessSupervisor::stop(std::vector<std::size_t> indices, std::function<void()> done) {
  if (indices.empty()) {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      indices.push_back(i);
    }
  }
  stopping_ = indices;
  stop_done_ = std::move(done);
  for (const std::size_t i : indices) {
    Entry& entry = entries_.at(i);
    if (entry.restart_timer != 0) {
      loop_.cancel_timer(entry.restart_timer);
      entry.restart_timer = 0;
    }
    entry.start_after_exit = false;
    if (entry.pid > 0) {
      entry.expect_exit = true;
      ::kill(-entry.pid, SIGTERM);
    }
  }
  if (kill_timer_ != 0) {
    loop_.cancel_timer(kill_timer_);
  }
  kill_timer_ = loop_.add_timer(policy_.stop_grace, [this] {
    kill_timer_ = 0;
    for (const std::size_t i : stopping_) {
      if (entries_.at(i).pid > 0) {
        spdlog::warn("sim: {} did not stop within the grace period; killing it",
                     entries_.at(i).spec.name);
        ::kill(-entries_.at(i).pid, SIGKILL);
      }
    }
  });
  loop_.post([this] { finish_stop_if_done(); });
}

void ProcessSupervisor::finish_stop_if_done() {
  if (!stop_done_) {
    return;
  }
  for (const std::size_t i : stopping_) {
    if (entries_.at(i).pid > 0) {
      return;
    }
  }
  if (kill_timer_ != 0) {
    loop_.cancel_timer(kill_timer_);
    kill_timer_ = 0;
  }
  stopping_.clear();
  auto done = std::move(stop_done_);
  stop_done_ = nullptr;
  done();
}

}  // namespace recmesh::sim
