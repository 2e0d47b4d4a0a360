#include "mosquitto_broker.hpp"

#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include "free_port.hpp"

namespace recmesh::testing {
namespace {

namespace fs = std::filesystem;

constexpr auto kPollInterval = std::chrono::milliseconds(20);

std::string read_from(const fs::path& path, std::uintmax_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {};
  }
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

}  // namespace

void let_mosquitto_through(const fs::path& dir) {
  if (::geteuid() == 0) {
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
}

std::string mosquitto_binary() {
  for (const char* candidate : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"}) {
    std::error_code ignored;
    if (fs::exists(candidate, ignored)) {
      return candidate;
    }
  }
  return "mosquitto";  // execvp searches PATH
}

MosquittoBroker::MosquittoBroker(const fs::path& config, std::vector<int> ports,
                                 std::chrono::milliseconds startup_timeout)
    : log_(config.parent_path() / "mosquitto.log") {
  std::error_code no_log_yet;
  const auto size = fs::file_size(log_, no_log_yet);
  log_start_ = no_log_yet ? 0 : size;
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{mosquitto_binary(), "-c", config.string()}, log_);

  const auto deadline = std::chrono::steady_clock::now() + startup_timeout;
  while (!ports.empty()) {
    if (!process_->running()) {
      throw std::runtime_error("mosquitto -c " + config.string() +
                               " exited during start-up; its log:\n" + log());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::ostringstream closed;
      for (const int port : ports) {
        closed << ' ' << port;
      }
      process_->stop();
      throw std::runtime_error("mosquitto -c " + config.string() + " did not open port(s)" +
                               closed.str() + " within " + std::to_string(startup_timeout.count()) +
                               " ms; its log:\n" + log());
    }
    // A short probe per port, so a broker that dies is noticed within one round.
    std::erase_if(ports, [](int port) { return wait_for_listener(port, 50); });
  }
}

MosquittoBroker::~MosquittoBroker() = default;

std::string MosquittoBroker::log() const {
  return read_from(log_, log_start_);
}

bool MosquittoBroker::wait_for_log(std::string_view needle, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (log().find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline || !process_->running()) {
      return log().find(needle) != std::string::npos;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return true;
}

}  // namespace recmesh::testing
