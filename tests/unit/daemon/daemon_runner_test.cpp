#include "recmesh/daemon/daemon_runner.hpp"

#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "example_settings.hpp"
#include "http_probe.hpp"
#include "temp_dir.hpp"

namespace recmesh::testing {
namespace {

using namespace std::chrono_literals;
using daemon::DaemonContext;

class DaemonRunnerTest : public ::testing::Test {
 protected:
  DaemonRunnerTest() {
    for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
      std::ofstream(dir_ / name) << "PEM\n";
    }
    options_.out = &out_;
    options_.err = &err_;
    options_.log_sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
  }

  std::string write_config(const std::string& extra) {
    std::ofstream(dir_ / "example.yaml")
        << "broker:\n  cafile: ca.pem\n  certfile: cert.pem\n  keyfile: key.pem\n"
        << extra;
    return (dir_ / "example.yaml").string();
  }

  daemon::DaemonRunner<ExampleSettings> runner() {
    return daemon::DaemonRunner<ExampleSettings>("example", example_schema(), options_);
  }

  TempDir dir_;
  std::ostringstream out_;
  std::ostringstream err_;
  std::ostringstream log_;
  daemon::RunnerOptions options_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Fails the test if the body runs.
const auto kNoBody = [](const ExampleSettings&, DaemonContext&) {
  ADD_FAILURE() << "the body ran";
  return 0;
};

TEST_F(DaemonRunnerTest, FlagsAreAddedToTheCommand) {
  auto r = runner();
  CLI::App app("example");
  r.add_flags(app);
  const std::string help = app.help();
  for (const char* flag :
       {"--config FILE", "--check-config", "--log-level LEVEL", "--log-format FORMAT"}) {
    EXPECT_TRUE(contains(help, flag)) << help;
  }
  app.parse(std::vector<std::string>{"json", "--log-format", "warn", "--log-level", "x.yaml",
                                     "--config", "--check-config"});  // parsed from the back
  EXPECT_EQ(r.flags().config_file, "x.yaml");
  EXPECT_TRUE(r.flags().check_config);
  EXPECT_EQ(r.flags().log_level, "warn");
  EXPECT_EQ(r.flags().log_format, "json");
  CLI::App strict("example");
  auto other = runner();
  other.add_flags(strict);
  EXPECT_THROW(strict.parse(std::vector<std::string>{"loud", "--log-level"}), CLI::ParseError);
}

TEST_F(DaemonRunnerTest, CheckConfigPrintsTheEffectiveConfigurationAndExitsZero) {
  auto r = runner();
  r.flags().config_file = write_config("publish:\n  interval: 2s\n");
  r.flags().check_config = true;
  EXPECT_EQ(r.run(kNoBody), daemon::kExitOk);
  const std::string out = out_.str();
  EXPECT_TRUE(
      out.starts_with("# example: effective configuration from " + r.flags().config_file + "\n"))
      << out;
  EXPECT_TRUE(contains(out, "publish:\n  interval: 2s\n  retain: false  # default\n")) << out;
  EXPECT_TRUE(contains(out, "  cafile: \"" + (dir_ / "ca.pem").string() + "\"\n")) << out;
  EXPECT_TRUE(err_.str().empty()) << err_.str();
  // What it prints is itself a usable configuration file.
  std::ofstream(dir_ / "printed.yaml") << out;
  EXPECT_TRUE(example_schema().load_file(dir_ / "printed.yaml").ok());
}

TEST_F(DaemonRunnerTest, CheckConfigListsEveryProblemAndExitsTwo) {
  auto r = runner();
  r.flags().config_file = write_config("priority: 11\nsite: \"\"\nlogging:\n  levle: info\n");
  r.flags().check_config = true;
  EXPECT_EQ(r.run(kNoBody), daemon::kExitUsage);
  const std::string err = err_.str();
  const std::string file = r.flags().config_file;
  EXPECT_TRUE(err.starts_with("example: error: configuration " + file + " has 3 problems:\n"))
      << err;
  EXPECT_TRUE(contains(err, "  " + file + ":5:11: priority: 11 is out of range (allowed: -10..10)"))
      << err;
  EXPECT_TRUE(contains(err, "  " + file + ":6:7: site: must not be empty")) << err;
  EXPECT_TRUE(contains(err, "  " + file +
                                ":8:3: logging.levle: unknown key; did you mean "
                                "logging.level?"))
      << err;
  EXPECT_TRUE(out_.str().empty());
}

TEST_F(DaemonRunnerTest, ConfigurationProblemsStopTheDaemonBeforeItStarts) {
  auto r = runner();
  r.flags().config_file = (dir_ / "missing.yaml").string();
  EXPECT_EQ(r.run(kNoBody), daemon::kExitUsage);
  EXPECT_TRUE(contains(err_.str(), "missing.yaml: cannot open the configuration file"))
      << err_.str();
  auto defaults_only = runner();  // no --config: the broker files are required
  EXPECT_EQ(defaults_only.run(kNoBody), daemon::kExitUsage);
  EXPECT_TRUE(contains(err_.str(), "(defaults): broker.cafile: is required but not set"))
      << err_.str();
}

TEST_F(DaemonRunnerTest, LogFlagsOverrideTheFile) {
  auto r = runner();
  r.flags().config_file = write_config("logging:\n  level: error\n");
  r.flags().check_config = true;
  r.flags().log_level = "debug";
  r.flags().log_format = "json";
  EXPECT_EQ(r.run(kNoBody), daemon::kExitOk);
  EXPECT_TRUE(contains(out_.str(), "logging:\n  level: debug\n  format: json\n")) << out_.str();
}

TEST_F(DaemonRunnerTest, SigtermStopsTheBodyOnceAndExitsZero) {
  auto r = runner();
  r.flags().config_file = write_config("logging:\n  format: json\n");
  int stops = 0;
  EXPECT_EQ(r.run([&](const ExampleSettings& settings, DaemonContext& context) {
    EXPECT_EQ(settings.site, "rec-1");
    context.on_stop([&] { ++stops; });
    EXPECT_EQ(std::raise(SIGTERM), 0);
    EXPECT_TRUE(context.wait_for_stop(10s));
    EXPECT_EQ(std::raise(SIGTERM), 0);
    return daemon::kExitOk;
  }),
            daemon::kExitOk);
  EXPECT_EQ(stops, 1);
  const std::string log = log_.str();
  EXPECT_TRUE(contains(log, "\"component\":\"daemon\",\"msg\":\"started\"")) << log;
  EXPECT_TRUE(contains(log, "\"msg\":\"stopping\",\"signal\":\"SIGTERM\"")) << log;
  EXPECT_TRUE(contains(log, "\"msg\":\"stopped\",\"exit_code\":0")) << log;
}

TEST_F(DaemonRunnerTest, SighupReloadsTheFileAndAppliesIt) {
  auto r = runner();
  r.flags().config_file = write_config("publish:\n  interval: 5s\n");
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<ExampleSettings> reloaded;
  r.on_reload([&](const ExampleSettings& settings) {
    std::lock_guard lock(mutex);
    reloaded = settings;
    cv.notify_all();
  });
  EXPECT_EQ(r.run([&](const ExampleSettings& settings, DaemonContext& context) {
    EXPECT_EQ(settings.publish_interval, 5s);
    EXPECT_FALSE(context.logger("x").enabled(log::Level::kDebug));
    write_config("publish:\n  interval: 1s\nlogging:\n  level: debug\n");
    EXPECT_EQ(std::raise(SIGHUP), 0);
    std::unique_lock lock(mutex);
    EXPECT_TRUE(cv.wait_for(lock, 10s, [&] { return reloaded.has_value(); }));
    EXPECT_TRUE(context.logger("x").enabled(log::Level::kDebug));
    EXPECT_TRUE(contains(context.metrics().render_prometheus(),
                         "recmesh_config_reloads_total{result=\"applied\"} 1\n"));
    return daemon::kExitOk;
  }),
            daemon::kExitOk);
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->publish_interval, 1s);
  EXPECT_TRUE(contains(log_.str(), "configuration reloaded")) << log_.str();
}

TEST_F(DaemonRunnerTest, SighupWithABadFileKeepsTheRunningConfiguration) {
  auto r = runner();
  r.flags().config_file = write_config("");
  bool hook_ran = false;
  r.on_reload([&](const ExampleSettings&) { hook_ran = true; });
  EXPECT_EQ(r.run([&](const ExampleSettings&, DaemonContext& context) {
    write_config("priority: 99\n");
    metrics::Counter& rejected = context.metrics().counter(
        "recmesh_config_reloads_total", "Configuration reloads on SIGHUP, by result",
        {{"result", "rejected"}});
    EXPECT_EQ(std::raise(SIGHUP), 0);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (rejected.value() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    EXPECT_EQ(rejected.value(), 1U);
    return daemon::kExitOk;
  }),
            daemon::kExitOk);
  EXPECT_FALSE(hook_ran);
  EXPECT_TRUE(contains(log_.str(), "configuration rejected; the running one stays problem=\"" +
                                       r.flags().config_file + ":5:11: priority: 99 is out of"))
      << log_.str();
}

TEST_F(DaemonRunnerTest, TheGracePeriodBoundsABodyThatDoesNotReturn) {
  std::mutex mutex;
  std::condition_variable cv;
  bool expired = false;
  options_.grace_period = 20ms;
  options_.on_grace_expired = [&] {
    std::lock_guard lock(mutex);
    expired = true;
    cv.notify_all();
  };
  auto r = runner();
  r.flags().config_file = write_config("");
  EXPECT_EQ(r.run([&](const ExampleSettings&, DaemonContext& context) {
    context.request_stop();
    // Ignores the request until the watchdog fires.
    std::unique_lock lock(mutex);
    EXPECT_TRUE(cv.wait_for(lock, 10s, [&] { return expired; }));
    return daemon::kExitOk;
  }),
            daemon::kExitOk);
  EXPECT_TRUE(expired);
}

TEST_F(DaemonRunnerTest, ErrorsFromTheBodyBecomeExitCodes) {
  const auto run_throwing = [&](auto error) {
    auto r = runner();
    r.flags().config_file = write_config("");
    return r.run([&](const ExampleSettings&, DaemonContext&) -> int { throw error; });
  };
  EXPECT_EQ(run_throwing(Error(ErrorCode::kUnavailable, "broker unreachable")),
            daemon::kExitFailed);
  EXPECT_EQ(run_throwing(Error(ErrorCode::kInvalidArgument, "bad topic")), daemon::kExitUsage);
  EXPECT_EQ(run_throwing(std::runtime_error("bug")), daemon::kExitFailed);
  EXPECT_TRUE(contains(log_.str(),
                       "CRITICAL daemon: stopped by an error error=\"broker "
                       "unreachable\" code=unavailable"))
      << log_.str();
}

TEST_F(DaemonRunnerTest, ServesMetricsWhileRunning) {
  auto r = runner();
  r.flags().config_file = write_config("metrics:\n  enabled: true\n  port: 0\n");
  EXPECT_EQ(r.run([&](const ExampleSettings&, DaemonContext& context) {
    context.metrics().counter("recmesh_example_ticks_total", "Ticks").increment(2);
    // The port chosen is in the start-up log line.
    const std::string log = log_.str();
    const std::string marker = "url=http://127.0.0.1:";
    const std::size_t at = log.find(marker);
    EXPECT_NE(at, std::string::npos) << log;
    const int port = std::stoi(log.substr(at + marker.size()));
    const auto reply = http_get(port, "/metrics");
    EXPECT_EQ(reply.status, 200);
    EXPECT_TRUE(
        contains(reply.body, "recmesh_build_info{daemon=\"example\",version=\"0.1.0\"} 1\n"))
        << reply.body;
    EXPECT_TRUE(contains(reply.body, "recmesh_example_ticks_total 2\n")) << reply.body;
    return daemon::kExitOk;
  }),
            daemon::kExitOk);
}

TEST_F(DaemonRunnerTest, ABusyMetricsPortIsAStartUpFailure) {
  metrics::Registry registry;
  metrics::HttpEndpoint taken(registry, {true, "127.0.0.1", 0});
  auto r = runner();
  r.flags().config_file =
      write_config("metrics:\n  enabled: true\n  port: " + std::to_string(taken.port()) + "\n");
  EXPECT_EQ(r.run(kNoBody), daemon::kExitFailed);
  EXPECT_TRUE(contains(log_.str(), "cannot listen for metrics")) << log_.str();
}

TEST_F(DaemonRunnerTest, ASchemaWithoutTheCommonBlocksIsRefused) {
  config::Schema<ExampleSettings> bare;
  bare.field("site", &ExampleSettings::site, "Site");
  try {
    daemon::DaemonRunner<ExampleSettings> r("bare", bare, options_);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
  }
}

}  // namespace
}  // namespace recmesh::testing
