#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"

namespace recmesh::testing {

// Started by root, Mosquitto drops to the `mosquitto` account before it reads its configuration
// and certificates, so that account must be able to pass through `dir` (otherwise 0700). Does
// nothing for other users.
void let_mosquitto_through(const std::filesystem::path& dir);

// Path of the Debian `mosquitto` binary (/usr/sbin is not always on a user's PATH).
std::string mosquitto_binary();

// A real broker: `mosquitto -c <config>` as a child process, its output appended to
// mosquitto.log beside the config. The constructor returns once every port accepts TCP and
// throws, with the log, if the broker exits or a port stays closed; the destructor stops the
// broker by PID.
class MosquittoBroker {
 public:
  MosquittoBroker(const std::filesystem::path& config, std::vector<int> ports,
                  std::chrono::milliseconds startup_timeout = std::chrono::seconds(10));
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;
  ~MosquittoBroker();

  const std::filesystem::path& log_path() const { return log_; }
  // What this run of the broker has logged so far (earlier runs in the same directory excluded).
  std::string log() const;
  // Polls the log until it contains `needle`; false after `timeout`.
  bool wait_for_log(std::string_view needle, std::chrono::milliseconds timeout);

  pid_t pid() const { return process_->pid(); }
  bool running() { return process_->running(); }
  void stop() { process_->stop(); }

 private:
  std::filesystem::path log_;
  std::uintmax_t log_start_ = 0;  // size of the log before this run
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace recmesh::testing
