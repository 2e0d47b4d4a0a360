// `recmesh demo` and `recmesh sim run` as processes: the whole community comes up with real
// brokers, gateways, devices and the EMS engine, and nothing it started outlives it.
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/loopback.hpp"

#include "child_process.hpp"
#include "recmesh_cli.hpp"
#include "sim/community_observer.hpp"
#include "temp_dir.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

Json read_json(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return nullptr;
  }
  return Json::parse(read_file(file), nullptr, false);
}

bool process_gone(int pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

// Nothing accepts on 127.0.0.1:port and we can bind it ourselves.
bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = loopback_address(port);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return free;
}

// Every PID the simulator recorded is gone and every port it used is free.
void expect_nothing_left(const Json& state) {
  ASSERT_TRUE(state.is_object());
  std::set<int> ports;
  std::size_t pids = 0;
  for (const auto& process : state["processes"]) {
    for (const auto& pid : process["pids"]) {
      ++pids;
      EXPECT_TRUE(process_gone(pid.get<int>())) << process["name"] << " pid " << pid;
    }
    for (const auto& port : process["ports"]) {
      ports.insert(port.get<int>());
    }
  }
  for (const auto& proxy : state["proxies"]) {
    ports.insert(proxy["port"].get<int>());
  }
  for (const auto& port : state["ports"]) {
    ports.insert(port.get<int>());
  }
  EXPECT_GT(pids, 0U);
  EXPECT_GT(ports.size(), 0U);
  for (const int port : ports) {
    EXPECT_TRUE(port_free(port)) << "port " << port << " still in use";
  }
  EXPECT_FALSE(state["running"].get<bool>());
}

class SimProcessTest : public ::testing::Test {
 protected:
  SimProcessTest() {
    // Mosquitto, started as root, reads its files as `mosquitto`: the tree must be traversable.
    fs::permissions(tmp_.path(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
  }
  testing::TempDir tmp_;
};

TEST_F(SimProcessTest, DemoBringsEveryMemberOnlineAndStopsCleanlyOnSigterm) {
  const fs::path dir = tmp_ / "demo";
  testing::ChildProcess sim({testing::recmesh_binary(), "demo", "--dir", dir.string(), "--no-view"},
                            tmp_ / "sim.log");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  EmsView view;
  bool ready = false;
  while (std::chrono::steady_clock::now() < deadline && sim.running()) {
    view = read_ems_view(dir / "ems" / "ems.db");
    if (view.online_members.size() == 10 && view.metrics_received >= 10 &&
        view.controls_completed >= 1) {
      ready = true;
      break;
    }
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(ready) << "after 60 s: " << view.online_members.size() << " members online, "
                     << view.metrics_received << " aggregates, " << view.controls_completed
                     << " controls completed";
  EXPECT_EQ(view.devices_online, 50U);

  const auto code = sim.signal_and_wait(SIGTERM, 60s);
  ASSERT_TRUE(code.has_value()) << "the simulator did not stop within 60 s";
  EXPECT_EQ(*code, 0);
  expect_nothing_left(read_json(dir / "state.json"));

  const Json report = read_json(dir / "report.json");
  ASSERT_TRUE(report.is_object());
  for (const char* key :
       {"members", "members_online", "devices", "devices_online", "metrics_published",
        "metrics_received_by_ems", "controls_issued", "controls_completed", "controls_failed",
        "security_events", "lost_qos1"}) {
    EXPECT_TRUE(report.contains(key)) << key;
  }
  EXPECT_EQ(report["members"], 10);
  EXPECT_EQ(report["members_online"], 10);
  EXPECT_EQ(report["devices"], 50);
  EXPECT_GE(report["controls_completed"].get<int>(), 1);
  EXPECT_GE(report["metrics_received_by_ems"].get<int>(), 10);
  // Gateways stopped cleanly, so what they published is known and was all stored by the EMS.
  EXPECT_GE(report["metrics_published"].get<int>(), 10);
  EXPECT_EQ(report["lost_qos1"], 0);
  EXPECT_TRUE(report["crashes"].empty()) << report["crashes"].dump(1);
  EXPECT_NE(report["stop_reason"].get<std::string>().find("signal"), std::string::npos);
  const std::string html = read_file(dir / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // no external assets
}

TEST_F(SimProcessTest, AFailingChildEndsEverythingAndTheReportIsWritten) {
  const fs::path scenario = tmp_ / "fragile.yaml";
  std::ofstream(scenario) << "name: fragile\n"
                             "supervision: {restart: never}\n"
                             "rates: {metrics_interval_ms: 1000, aggregate_interval_ms: 2000}\n"
                             "recs:\n"
                             "  - id: sun\n"
                             "    generate: {count: 2, devices: {pv: 1, passive_load: 1}}\n";
  const fs::path dir = tmp_ / "run";
  const fs::path report_file = tmp_ / "out" / "fragile.json";
  fs::create_directories(report_file.parent_path());
  testing::ChildProcess sim({testing::recmesh_binary(), "sim", "run", scenario.string(), "--dir",
                             dir.string(), "--report", report_file.string()},
                            tmp_ / "sim.log");
  // Wait until the gateway of m02 runs, then kill it behind the simulator's back.
  int gateway = 0;
  for (int i = 0; i < 120 && gateway == 0; ++i) {
    std::this_thread::sleep_for(250ms);
    const Json state = read_json(dir / "state.json");
    if (!state.is_object()) {
      continue;
    }
    for (const auto& process : state["processes"]) {
      if (process["name"] == "sun/m02/gateway" && process["pid"].get<int>() > 0) {
        gateway = process["pid"].get<int>();
      }
    }
  }
  ASSERT_GT(gateway, 0) << "the gateway never started; the simulator said:\n"
                        << (fs::exists(tmp_ / "sim.log") ? read_file(tmp_ / "sim.log") : "");
  std::this_thread::sleep_for(2s);
  ASSERT_EQ(::kill(gateway, SIGKILL), 0);
  const auto code = sim.signal_and_wait(0, 60s);  // signal 0: only wait
  ASSERT_TRUE(code.has_value()) << "the simulator did not end after a child failed";
  EXPECT_EQ(*code, 3);
  expect_nothing_left(read_json(dir / "state.json"));
  const Json report = read_json(report_file);
  ASSERT_TRUE(report.is_object());
  EXPECT_NE(report["stop_reason"].get<std::string>().find("failure: sun/m02/gateway"),
            std::string::npos)
      << report["stop_reason"];
  ASSERT_EQ(report["crashes"].size(), 1U);
  EXPECT_EQ(report["crashes"][0]["signal"], SIGKILL);
  EXPECT_TRUE(fs::exists(tmp_ / "out" / "fragile.html"));
}

TEST_F(SimProcessTest, RefusesADirectoryItDidNotMake) {
  const fs::path dir = tmp_ / "precious";
  fs::create_directories(dir);
  std::ofstream(dir / "thesis.tex") << "do not delete";
  const auto result = testing::run_recmesh({"demo", "--dir", dir.string(), "--duration", "1"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("is not a simulation directory"), std::string::npos) << result.err;
  EXPECT_TRUE(fs::exists(dir / "thesis.tex"));
}

TEST_F(SimProcessTest, CheckValidatesAScenarioWithoutRunningIt) {
  const fs::path scenario = tmp_ / "bad.yaml";
  std::ofstream(scenario) << "recs:\n  - id: sun\n    generate: {count: 2, devices: {pv: 1}}\n"
                             "timeline:\n  - {at_s: 1, action: kill, component: ems, delay: 3}\n";
  const auto result = testing::run_recmesh({"sim", "run", scenario.string(), "--check"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("bad.yaml:5: timeline[0].delay: unknown key"), std::string::npos)
      << result.err;
}

}  // namespace
}  // namespace recmesh::sim
