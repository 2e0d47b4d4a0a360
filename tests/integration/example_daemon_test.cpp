// The shared daemon runtime as an operator meets it: a daemon process with its flags, its
// configuration file, JSON logs, the metrics endpoint, SIGHUP and SIGTERM.
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "free_port.hpp"
#include "http_probe.hpp"
#include "temp_dir.hpp"

namespace recmesh::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kUsage = 2;
constexpr int kFailed = 3;

class ExampleDaemonTest : public ::testing::Test {
 protected:
  ExampleDaemonTest() {
    for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
      std::ofstream(dir_ / name) << "PEM\n";
    }
  }

  std::string write_config(const std::string& extra) const {
    std::ofstream(dir_ / "example.yaml")
        << "broker:\n  cafile: ca.pem\n  certfile: cert.pem\n  keyfile: key.pem\n"
        << extra;
    return (dir_ / "example.yaml").string();
  }

  static CommandResult run(const std::vector<std::string>& args) {
    std::vector<std::string> argv{RECMESH_EXAMPLE_DAEMON};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, {}, 30s);
  }

  std::vector<json> json_log() const {
    std::ifstream in(dir_ / "daemon.log");
    std::vector<json> lines;
    for (std::string line; std::getline(in, line);) {
      lines.push_back(json::parse(line));  // every line is one JSON object
    }
    return lines;
  }

  // Waits until a log line has `msg`.
  bool wait_for_log(const std::string& msg) const {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(dir_ / "daemon.log");
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find("\"msg\":\"" + msg + "\"") != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  TempDir dir_;
};

TEST_F(ExampleDaemonTest, HelpShowsTheStandardFlags) {
  const CommandResult result = run({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* flag :
       {"--config FILE", "--check-config", "--log-level LEVEL", "--log-format FORMAT"}) {
    EXPECT_NE(result.out.find(flag), std::string::npos) << result.out;
  }
  EXPECT_EQ(run({"--log-level", "loud"}).exit_code, kUsage);
}

TEST_F(ExampleDaemonTest, CheckConfigPrintsAUsableEffectiveConfiguration) {
  const std::string config = write_config("site: rec-9\n");
  const CommandResult result = run({"--config", config, "--check-config"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("site: \"rec-9\"\n"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("  interval: 5s  # default\n"), std::string::npos) << result.out;
  std::ofstream(dir_ / "printed.yaml") << result.out;
  const CommandResult again = run({"--config", (dir_ / "printed.yaml").string(), "--check-config"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(ExampleDaemonTest, CheckConfigReportsEveryProblemAndExitsTwo) {
  const std::string config =
      write_config("publish:\n  interval: 5\n  retian: true\nmetrics:\n  port: 99999\n");
  const CommandResult result = run({"--config", config, "--check-config"});
  EXPECT_EQ(result.exit_code, kUsage);
  EXPECT_TRUE(result.out.empty());
  const std::string& err = result.err;
  EXPECT_NE(err.find("has 3 problems:"), std::string::npos) << err;
  EXPECT_NE(err.find(config + ":6:13: publish.interval: expected a duration such as 250ms, 5s, "
                              "2m or 1h, got \"5\" (the unit is missing) (allowed: 100ms..1h)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(config + ":7:3: publish.retian: unknown key; did you mean publish.retain?"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(config + ":9:9: metrics.port: 99999 is out of range (allowed: 0..65535)"),
            std::string::npos)
      << err;
  // The daemon refuses to start with the same file, with the same report.
  EXPECT_EQ(run({"--config", config}).err, err);
}

TEST_F(ExampleDaemonTest, RunsServesMetricsReloadsAndStopsOnSigterm) {
  const int port = free_tcp_port();
  const auto config = [&](const std::string& interval) {
    return write_config("publish:\n  interval: " + interval +
                        "\nlogging:\n  format: json\nmetrics:\n  enabled: true\n  port: " +
                        std::to_string(port) + "\n");
  };
  const std::string path = config("100ms");
  ChildProcess daemon({RECMESH_EXAMPLE_DAEMON, "--config", path}, dir_ / "daemon.log");
  ASSERT_TRUE(wait_for_listener(port));
  ASSERT_TRUE(wait_for_log("ticking"));

  const HttpReply reply = http_get(port, "/metrics");
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.body.find("recmesh_build_info{daemon=\"recmesh-example\",version=\"0.1.0\"} 1"),
            std::string::npos)
      << reply.body;
  EXPECT_NE(reply.body.find("# TYPE recmesh_example_ticks_total counter\n"), std::string::npos);

  config("1s");
  daemon.signal(SIGHUP);
  ASSERT_TRUE(wait_for_log("configuration reloaded"));
  EXPECT_NE(
      http_get(port, "/metrics").body.find("recmesh_config_reloads_total{result=\"applied\"} 1\n"),
      std::string::npos);

  EXPECT_EQ(daemon.signal_and_wait(SIGTERM, 10s), 0);
  const std::vector<json> log = json_log();
  ASSERT_GE(log.size(), 4U);
  for (const json& line : log) {
    for (const char* key : {"ts", "level", "component", "msg"}) {
      EXPECT_TRUE(line.contains(key)) << line.dump();
    }
  }
  EXPECT_EQ(log.front()["msg"], "serving metrics");
  EXPECT_EQ(log.back()["msg"], "stopped");
  EXPECT_EQ(log.back()["exit_code"], 0);
  const auto stopping = std::find_if(log.begin(), log.end(),
                                     [](const json& line) { return line["msg"] == "stopping"; });
  ASSERT_NE(stopping, log.end());
  EXPECT_EQ((*stopping)["signal"], "SIGTERM");
}

TEST_F(ExampleDaemonTest, ABodyThatIgnoresStopIsEndedAfterTheGracePeriod) {
  const std::string path = write_config("logging:\n  format: json\n");
  ChildProcess daemon({RECMESH_EXAMPLE_DAEMON, "--config", path, "--hang-on-stop"},
                      dir_ / "daemon.log");
  ASSERT_TRUE(wait_for_log("ticking"));
  EXPECT_EQ(daemon.signal_and_wait(SIGINT, 10s), kFailed);
  const std::vector<json> log = json_log();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back()["msg"], "did not stop within the grace period; exiting now");
  EXPECT_EQ(log.back()["level"], "critical");
}

}  // namespace
}  // namespace recmesh::testing
