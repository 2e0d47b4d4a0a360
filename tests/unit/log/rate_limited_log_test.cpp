#include "recmesh/log/rate_limited_log.hpp"

#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

namespace recmesh::log {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class RateLimitedLogTest : public ::testing::Test {
 protected:
  std::vector<json> lines() const {
    std::vector<json> out;
    std::istringstream in(sink_text_.str());
    for (std::string line; std::getline(in, line);) {
      out.push_back(json::parse(line));
    }
    return out;
  }

  std::ostringstream sink_text_;
  FixedClock clock_{from_unix_seconds(1700000000)};
  Logger logger_{"bridge", std::make_shared<LogOutput>(
                               LogSettings{Level::kInfo, Format::kJson},
                               std::make_shared<spdlog::sinks::ostream_sink_mt>(sink_text_))};
};

TEST_F(RateLimitedLogTest, WritesOncePerIntervalWithTheCountOfSuppressedRepeats) {
  RateLimitedLog dropped(logger_, Level::kWarn, "dropped malformed message", 10s, clock_);
  dropped.log({{"client", "c1"}});  // written: first occurrence
  for (int i = 0; i < 41; ++i) {
    clock_.set(clock_.now() + 200ms);
    dropped.log({{"client", "c2"}});  // within the interval: counted
  }
  EXPECT_EQ(dropped.suppressed(), 41U);
  ASSERT_EQ(lines().size(), 1U);
  EXPECT_EQ(lines()[0]["client"], "c1");
  EXPECT_FALSE(lines()[0].contains("suppressed"));

  clock_.set(clock_.now() + 2s);  // 10.2 s after the first line
  dropped.log({{"client", "c3"}});
  ASSERT_EQ(lines().size(), 2U);
  EXPECT_EQ(lines()[1]["msg"], "dropped malformed message");
  EXPECT_EQ(lines()[1]["level"], "warn");
  EXPECT_EQ(lines()[1]["client"], "c3");
  EXPECT_EQ(lines()[1]["suppressed"], 41);
  EXPECT_EQ(dropped.suppressed(), 0U);

  // The next interval starts at that line.
  clock_.set(clock_.now() + 9999ms);
  dropped.log();
  EXPECT_EQ(lines().size(), 2U);
  clock_.set(clock_.now() + 1ms);
  dropped.log();
  ASSERT_EQ(lines().size(), 3U);
  EXPECT_EQ(lines()[2]["suppressed"], 1);
}

TEST_F(RateLimitedLogTest, FlushReportsABurstThatStopped) {
  {
    RateLimitedLog full(logger_, Level::kError, "buffer full", 1min, clock_);
    full.log();
    full.log();
    full.log();
    full.flush();
    ASSERT_EQ(lines().size(), 2U);
    EXPECT_EQ(lines()[1]["suppressed"], 2);
    full.flush();  // nothing new
    EXPECT_EQ(lines().size(), 2U);
    full.log();  // still within the interval
  }
  // Destruction reports the last one.
  ASSERT_EQ(lines().size(), 3U);
  EXPECT_EQ(lines()[2]["suppressed"], 1);
}

TEST_F(RateLimitedLogTest, AClockGoingBackwardsDoesNotSilenceTheMessage) {
  RateLimitedLog log(logger_, Level::kWarn, "x", 10s, clock_);
  log.log();
  clock_.set(clock_.now() - 1h);
  log.log();
  EXPECT_EQ(lines().size(), 2U);
}

TEST_F(RateLimitedLogTest, LevelsBelowTheOutputLevelAreNeitherWrittenNorCounted) {
  RateLimitedLog log(logger_, Level::kDebug, "x", 10s, clock_);
  log.log();
  log.log();
  EXPECT_EQ(log.suppressed(), 0U);
  EXPECT_TRUE(lines().empty());
}

TEST_F(RateLimitedLogTest, ConcurrentCallersAreCountedExactly) {
  RateLimitedLog log(logger_, Level::kWarn, "hot", 1h, clock_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log] {
      for (int i = 0; i < 1000; ++i) {
        log.log();
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(lines().size(), 1U);
  EXPECT_EQ(log.suppressed(), 3999U);
}

}  // namespace
}  // namespace recmesh::log
