#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "recmesh/mqtt/event_loop.hpp"

#include "sim/scenario.hpp"

namespace recmesh::sim {

// One process the simulator runs: what a launcher produced.
struct ProcessSpec {
  std::string name;  // "central-broker", "sun/m01/gateway", ...
  ComponentKind kind = ComponentKind::kCentralBroker;
  std::string member;             // "rec/member" for member components
  std::vector<std::string> argv;  // argv[0] is an absolute path
  std::filesystem::path log;      // stdout and stderr, appended across restarts
  std::vector<int> ports;         // listeners that must accept TCP before it counts as up
  std::string ready_log;          // if set, its log must contain this before it counts as up
};

struct ProcessExit {
  std::string name;
  pid_t pid = -1;
  int exit_code = -1;  // -1 when a signal ended it
  int signal = 0;
  bool expected = false;  // asked for (stop, kill fault, shutdown)
  bool restarted = false;
  double at_s = 0;       // seconds since the supervisor was made
  std::string log_tail;  // the last lines of its log
};

struct SupervisionPolicy {
  RestartPolicy restart = RestartPolicy::kOnFailure;
  int max_restarts = 5;
  std::chrono::milliseconds restart_delay{1000};
  std::chrono::milliseconds stop_grace{10000};  // SIGTERM, then SIGKILL of the process group
};

// Runs child processes on an EventLoop: each in its own process group, with the signal mask
// and dispositions reset, its exit read from a pidfd; restarts per policy and reports every
// exit. Nothing it started outlives stop_all(): every group gets SIGTERM, then SIGKILL.
class ProcessSupervisor {
 public:
  using ExitHandler = std::function<void(const ProcessExit& exit, bool gave_up)>;

  ProcessSupervisor(mqtt::EventLoop& loop, SupervisionPolicy policy, ExitHandler on_exit);
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;
  ~ProcessSupervisor();  // SIGKILLs and reaps whatever still runs

  std::size_t add(ProcessSpec spec);
  // Throws Error(kInternal) when the program cannot be started.
  void start(std::size_t index);
  // Sends `signal` to the process group; with keep_down it is not restarted until start().
  void signal(std::size_t index, int signal, bool keep_down);
  // SIGTERM, then start again as soon as it has exited.
  void restart(std::size_t index);
  // SIGTERM to each group in `indices` (all when empty), SIGKILL after the grace; `done` runs
  // on the loop once every one of them has been reaped.
  void stop(std::vector<std::size_t> indices, std::function<void()> done);

  const ProcessSpec& spec(std::size_t index) const { return entries_.at(index).spec; }
  std::size_t size() const { return entries_.size(); }
  bool running(std::size_t index) const { return entries_.at(index).pid > 0; }
  pid_t pid(std::size_t index) const { return entries_.at(index).pid; }
  int restarts(std::size_t index) const { return entries_.at(index).restarts; }
  std::vector<pid_t> every_pid() const;  // every PID ever started, for the state file
  const std::vector<pid_t>& pids(std::size_t index) const { return entries_.at(index).history; }
  const std::vector<ProcessExit>& exits() const { return exits_; }
  std::optional<std::size_t> find(const std::string& name) const;

 private:
  struct Entry {
    ProcessSpec spec;
    pid_t pid = -1;
    int pidfd = -1;
    std::vector<pid_t> history;  // every PID it ran as
    int restarts = 0;
    bool keep_down = false;
    bool expect_exit = false;
    bool start_after_exit = false;
    mqtt::EventLoop::TimerId restart_timer = 0;
  };

  void on_exited(std::size_t index);
  void finish_stop_if_done();
  double elapsed_s() const;

  mqtt::EventLoop& loop_;
  SupervisionPolicy policy_;
  ExitHandler on_exit_;
  std::vector<Entry> entries_;
  std::vector<pid_t> every_pid_;
  std::vector<ProcessExit> exits_;
  std::vector<std::size_t> stopping_;
  std::function<void()> stop_done_;
  mqtt::EventLoop::TimerId kill_timer_ = 0;
  mqtt::MonotonicClock::TimePoint created_;
};

// The last `lines` lines of a log file (for crash reports).
std::string log_tail(const std::filesystem::path& file, std::size_t lines = 5);

}  // namespace recmesh::sim
