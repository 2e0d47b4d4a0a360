#include "process_community.hpp"

#include <chrono>
#include <csignal>
#include <fstream>

#include <fmt/format.h>

#include "recmesh/core/file_io.hpp"

#include "recmesh_cli.hpp"

namespace recmesh::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr std::array<const char*, 3> kDaemonNames = {"ems", "gateway", "device"};

}  // namespace

ProcessCommunity::ProcessCommunity(fs::path dir, ProcessCommunitySettings settings)
    : dir_(std::move(dir)), community_(dir_) {
  community_.service("engine");
  community_.gateway();
  community_.issue_devices("m1", {"pv1", "bat1", "ev1"});
  const int central_port = community_.start_central().ems_port;
  const int local_port = community_.start_local("m1", true).member_port;
  write_configs(settings, central_port, local_port);
  for (const Daemon daemon : {Daemon::kEms, Daemon::kGateway, Daemon::kDevice}) {
    start(daemon);
  }
}

ProcessCommunity::~ProcessCommunity() {
  for (const Daemon daemon : {Daemon::kDevice, Daemon::kGateway, Daemon::kEms}) {
    stop(daemon);
  }
}

void ProcessCommunity::write_configs(const ProcessCommunitySettings& settings, int central_port,
                                     int local_port) {
  const std::string pki = community_.pki_dir().string();
  const std::string e2e =
      settings.handshake_timeout_s
          ? fmt::format("e2e:\n  handshake_timeout_s: {}\n", *settings.handshake_timeout_s)
          : std::string();
  std::ofstream(config(Daemon::kEms))
      << "broker:\n  port: " << central_port << "\npki_dir: " << pki
      << "\ndatabase: " << ems_database().string()
      << "\npolicy_period_ms: 0\ncontrol_timeout_ms: " << settings.control_timeout_ms << "\n"
      << e2e;
  std::ofstream(config(Daemon::kGateway))
      << "broker:\n  port: " << local_port << "\npki_dir: " << pki
      << "\nrec: r1\nmember: m1\ndatabase: " << gateway_database().string()
      << "\nmetrics_interval_ms: " << settings.gateway_metrics_interval_ms
      << "\ndevice_timeout_ms: 5000\n"
      << e2e << "devices:\n  - {id: pv1, kind: generator}\n  - {id: bat1, kind: accumulator}\n"
      << "  - {id: ev1, kind: load}\n";
  std::ofstream(config(Daemon::kDevice))
      << "broker:\n  port: " << local_port << "\npki_dir: " << pki
      << "\nrec: r1\nmember: m1\nmetrics_interval_ms: 200\ncrash_fraction: 0\n"
      << "devices:\n  - {id: pv1, kind: generator}\n  - {id: bat1, kind: accumulator}\n"
      << "  - {id: ev1, kind: load, initially_on: false}\n";
}

fs::path ProcessCommunity::config(Daemon daemon) const {
  return dir_ / fmt::format("{}.yaml", kDaemonNames[index(daemon)]);
}

void ProcessCommunity::start(Daemon daemon) {
  const char* name = kDaemonNames[index(daemon)];
  const int run = ++runs_[index(daemon)];
  processes_[index(daemon)] = std::make_unique<ChildProcess>(
      std::vector<std::string>{recmesh_binary(), name, "--config", config(daemon).string()},
      dir_ / fmt::format("{}-{}.log", name, run));
}

void ProcessCommunity::stop(Daemon daemon) {
  processes_[index(daemon)].reset();
}

bool ProcessCommunity::kill(Daemon daemon) {
  auto& process = processes_[index(daemon)];
  const bool killed = process && process->signal_and_wait(SIGKILL, 10s) == -1;
  process.reset();
  return killed;
}

CommandResult ProcessCommunity::ctl(std::vector<std::string> args) const {
  args.insert(args.begin(), {"ctl", "--config", config(Daemon::kEms).string(), "--json"});
  return run_recmesh(args);
}

std::string ProcessCommunity::logs(std::size_t tail_bytes) const {
  std::string out;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().extension() == ".log") {
      const std::string text = read_file(entry.path());
      out += "--- " + entry.path().filename().string() + "\n" +
             text.substr(text.size() > tail_bytes ? text.size() - tail_bytes : 0);
    }
  }
  return out;
}

}  // namespace recmesh::testing
