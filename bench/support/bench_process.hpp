#pragma once

// The processes a benchmark starts and the scratch directory it runs in: a child process ended
// by PID, and a Mosquitto broker that is up once its ports accept. Shared by
// every benchmark that runs brokers or `recmesh` daemons.

#include <filesystem>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "free_port.hpp"

namespace recmesh::bench {

// Free 127.0.0.1 ports and listeners, as in the integration tests (tests/support/free_port.hpp).
using testing::accepts_tcp;
using testing::free_tcp_port;

// A child process (`argv[0]` searched in PATH) with stdin from /dev/null and stdout and stderr
// appended to `log`. On destruction: SIGTERM by PID, reaped, SIGKILL after 5 s.
class Process {
 public:
  Process(const std::vector<std::string>& argv, std::filesystem::path log);
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // True once the process has exited (it is reaped then, and not signalled again).
  bool exited();
  // CPU time (user + system) the process used so far, from /proc; 0 once it has exited.
  double cpu_seconds() const;
  std::string log() const;

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
};

// `mosquitto -c config`, with its output in config's directory/mosquitto.log, up once every
// port accepts TCP (throws std::runtime_error with the log otherwise).
class BrokerProcess {
 public:
  BrokerProcess(const std::filesystem::path& config, const std::vector<int>& ports);

  pid_t pid() const { return process_.pid(); }
  double cpu_seconds() const { return process_.cpu_seconds(); }
  std::string log() const { return process_.log(); }

 private:
  Process process_;
};

// A fresh directory <temp>/<prefix>-XXXXXX, removed with everything in it on destruction unless
// RECMESH_BENCH_KEEP is set (to read the logs of a run).
class ScratchDirectory {
 public:
  enum class Access {
    kOwner,
    kBrokers,  // Mosquitto drops to its own account when started as root: it must pass through
  };
  explicit ScratchDirectory(std::string_view prefix, Access access = Access::kOwner);
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory();

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace recmesh::bench
