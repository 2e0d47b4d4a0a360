#include "bench_community.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"

extern char** environ;

namespace recmesh::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPassphrase = "bench-community-passphrase";

std::string mosquitto_binary() {
  for (const char* candidate : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"}) {
    std::error_code ignored;
    if (fs::exists(candidate, ignored)) {
      return candidate;
    }
  }
  return "mosquitto";
}

bool port_accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("no free port");
  }
  const int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const auto rank =
      static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

double median(std::vector<double> values) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

BrokerProcess::BrokerProcess(const fs::path& config, const std::vector<int>& ports)
    : log_(config.parent_path() / "mosquitto.log") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const std::string binary = mosquitto_binary();
  const std::string config_text = config.string();
  std::vector<char*> argv{const_cast<char*>(binary.c_str()), const_cast<char*>("-c"),
                          const_cast<char*>(config_text.c_str()), nullptr};
  const int rc = ::posix_spawnp(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot start " + binary);
  }
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  for (const int port : ports) {
    while (!port_accepts(port)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("mosquitto exited during start-up:\n" + log());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("mosquitto did not open its ports:\n" + log());
      }
      std::this_thread::sleep_for(10ms);
    }
  }
}

BrokerProcess::~BrokerProcess() {
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

std::string BrokerProcess::log() const {
  std::error_code ignored;
  return fs::exists(log_, ignored) ? read_file(log_) : std::string();
}

BenchCommunity::BenchCommunity(fs::path dir, int members,
                               const std::vector<std::string>& device_ids)
    : dir_(std::move(dir)) {
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  if (::geteuid() == 0) {
    // Mosquitto drops to its own account, which must pass through the scratch directory.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  pki::Pki pki = pki::Pki::create(pki_dir(), Secret(kPassphrase));
  pki.add_rec("r1");
  std::vector<pki::IssueRequest> requests;
  const auto add = [&](pki::IdentityKind kind, const std::string& member, const std::string& name) {
    pki::IssueRequest request;
    const bool service = kind == pki::IdentityKind::kService;
    request.identity = pki::Identity::make(kind, service ? "" : "r1", service ? "" : member, name);
    requests.push_back(std::move(request));
  };
  add(pki::IdentityKind::kService, "", "engine");
  for (int i = 0; i < members; ++i) {
    members_.push_back(member_name(i));
    pki.add_member("r1", members_.back());
    add(pki::IdentityKind::kGateway, members_.back(), "");
    for (const auto& device : device_ids) {
      add(pki::IdentityKind::kDevice, members_.back(), device);
    }
  }
  pki.issue_many(requests);
}

BenchCommunity::~BenchCommunity() {
  locals_.clear();
  central_.reset();
  std::error_code ignored;
  if (std::getenv("RECMESH_BENCH_KEEP") == nullptr) {
    fs::remove_all(dir_, ignored);
  }
}

void BenchCommunity::start_central() {
  pki::Pki pki = pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(kPassphrase));
  broker::CentralBrokerOptions options;
  options.ems_port = central_ems_port_ = free_port();
  options.bridge_port = central_bridge_port_ = free_port();
  const auto rendered = broker::render_central_broker(pki, options, dir_ / "central");
  central_ = std::make_unique<BrokerProcess>(
      rendered.config, std::vector<int>{options.ems_port, options.bridge_port});
}

void BenchCommunity::start_locals(bool bridged, const std::string& extra_config) {
  pki::Pki pki = pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(kPassphrase));
  for (const auto& member : members_) {
    broker::LocalBrokerOptions options;
    options.rec = "r1";
    options.member = member;
    options.member_port = free_port();
    options.bridge_port = free_port();
    if (bridged) {
      options.bridge_to = broker::BuiltinBridge{"127.0.0.1", central_bridge_port_};
    }
    const auto rendered = broker::render_local_broker(pki, options, dir_ / ("local-" + member));
    if (!extra_config.empty()) {
      std::ofstream(rendered.config, std::ios::app) << "\n" << extra_config << "\n";
    }
    MemberBrokers brokers;
    brokers.member = member;
    brokers.member_port = options.member_port;
    brokers.bridge_port = options.bridge_port;
    brokers.process = std::make_unique<BrokerProcess>(
        rendered.config, std::vector<int>{options.member_port, options.bridge_port});
    locals_.push_back(std::move(brokers));
  }
  if (!bridged) {
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (const auto& member : members_) {
    const std::string needle = " as bridge_r1_" + member + " ";
    while (central_->log().find(needle) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("bridge of " + member + " never reached the central broker");
      }
      std::this_thread::sleep_for(50ms);
    }
  }
}

fs::path BenchCommunity::chain(const std::string& common_name) const {
  return pki_dir() / "issued" / common_name / "chain.pem";
}

fs::path BenchCommunity::key(const std::string& common_name) const {
  return pki_dir() / "issued" / common_name / "key.pem";
}

fs::path BenchCommunity::member_cafile(const std::string& member) const {
  return pki_dir() / "ca" / ("member_r1_" + member) / "chain.pem";
}

fs::path BenchCommunity::ems_cafile() const {
  return pki_dir() / "ca" / "ems" / "chain.pem";
}

}  // namespace recmesh::bench
