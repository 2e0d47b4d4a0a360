#include "bench_process.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/file_io.hpp"

extern char** environ;

namespace recmesh::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string mosquitto_binary() {
  for (const char* candidate : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"}) {
    std::error_code ignored;
    if (fs::exists(candidate, ignored)) {
      return candidate;
    }
  }
  return "mosquitto";
}

}  // namespace

Process::Process(const std::vector<std::string>& argv, fs::path log) : log_(std::move(log)) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  const int rc = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
}

Process::~Process() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
}

bool Process::exited() {
  int status = 0;
  if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
  }
  return pid_ <= 0;
}

double Process::cpu_seconds() const {
  std::ifstream in(fmt::format("/proc/{}/stat", pid_));
  std::ostringstream read;
  read << in.rdbuf();  // through rdbuf: GCC 12 -O3 warns falsely on istreambuf_iterator
  const std::string text = read.str();
  const auto close = text.rfind(')');
  if (pid_ <= 0 || close == std::string::npos) {
    return 0;
  }
  std::vector<std::string> fields;
  std::string field;
  for (std::size_t i = close + 2; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += text[i];
    }
  }
  // utime and stime are fields 14 and 15 of the file: 12 and 13 after the command name.
  if (fields.size() < 13) {
    return 0;
  }
  return (std::stod(fields[11]) + std::stod(fields[12])) /
         static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string Process::log() const {
  std::error_code ignored;
  return fs::exists(log_, ignored) ? read_file(log_) : std::string();
}

BrokerProcess::BrokerProcess(const fs::path& config, const std::vector<int>& ports)
    : process_({mosquitto_binary(), "-c", config.string()},
               config.parent_path() / "mosquitto.log") {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  for (const int port : ports) {
    while (!accepts_tcp(port)) {
      if (process_.exited()) {
        throw std::runtime_error("mosquitto exited during start-up:\n" + log());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("mosquitto did not open its ports:\n" + log());
      }
      std::this_thread::sleep_for(10ms);
    }
  }
}

ScratchDirectory::ScratchDirectory(std::string_view prefix, Access access) {
  std::string pattern = (fs::temp_directory_path() / fmt::format("{}-XXXXXX", prefix)).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(fmt::format("cannot create a directory like {}", pattern));
  }
  path_ = pattern;
  if (access == Access::kBrokers) {
    fs::permissions(path_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
}

ScratchDirectory::~ScratchDirectory() {
  if (std::getenv("RECMESH_BENCH_KEEP") == nullptr) {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
}

}  // namespace recmesh::bench
