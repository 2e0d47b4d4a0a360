#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace recmesh::testing {

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string out;
  std::string err;
};

// Runs a program to completion (bounded by `timeout`), capturing stdout and stderr.
// `env` entries are added to (or override) the current environment.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A long-running program whose output goes to `log`; ended by PID (SIGTERM, then SIGKILL) on
// stop() or destruction.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running();
  void stop();
  // Sends `signal` without waiting.
  void signal(int signal);
  // Sends `signal` and waits up to `limit` for the exit: the exit code, -1 when a signal ended
  // the process, nothing when it was still running (it is then killed).
  std::optional<int> signal_and_wait(int signal, std::chrono::milliseconds limit);

 private:
  pid_t pid_ = -1;
};

}  // namespace recmesh::testing
