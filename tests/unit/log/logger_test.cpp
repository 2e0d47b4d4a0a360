#include "recmesh/log/logger.hpp"

#include <sstream>
#include <type_traits>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "recmesh/core/secret.hpp"

namespace recmesh::log {
namespace {

using namespace std::chrono_literals;

// A secret can be neither a field nor a fmt/spdlog argument: these do not compile.
static_assert(!std::is_constructible_v<Field, std::string_view, const Secret&>);
static_assert(!std::is_constructible_v<Field, std::string_view, Secret>);
static_assert(!fmt::is_formattable<Secret>::value);
static_assert(!std::is_convertible_v<const Secret&, std::string_view>);

const Clock::TimePoint kAt = from_unix_seconds(1714564800) + 123ms;  // 2024-05-01T12:00:00.123Z

class LoggerTest : public ::testing::Test {
 protected:
  std::shared_ptr<LogOutput> output(Format format, Level level = Level::kTrace) {
    return std::make_shared<LogOutput>(LogSettings{level, format},
                                       std::make_shared<spdlog::sinks::ostream_sink_mt>(lines_),
                                       clock_);
  }

  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(lines_.str());
    for (std::string line; std::getline(in, line);) {
      out.push_back(line);
    }
    return out;
  }

  std::ostringstream lines_;
  FixedClock clock_{kAt};
};

TEST_F(LoggerTest, TimestampsAreRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(format_timestamp(kAt), "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(format_timestamp(from_unix_seconds(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(from_unix_seconds(951782400) + 999999us), "2000-02-29T00:00:00.999Z");
}

TEST_F(LoggerTest, HumanLinesCarryEveryPart) {
  const Logger log("gateway", output(Format::kHuman));
  log.info("connected to broker", {{"host", "127.0.0.1"}, {"port", 8883}, {"tls", true}});
  log.warn("slow", {{"ratio", 0.25}, {"path", std::filesystem::path("/var/lib/x")}});
  ASSERT_EQ(lines().size(), 2U);
  EXPECT_EQ(lines()[0],
            "2024-05-01T12:00:00.123Z INFO  gateway: connected to broker host=127.0.0.1 "
            "port=8883 tls=true");
  EXPECT_EQ(lines()[1], "2024-05-01T12:00:00.123Z WARN  gateway: slow ratio=0.25 path=/var/lib/x");
}

TEST_F(LoggerTest, HumanLinesQuoteValuesAndEscapeLineBreaks) {
  const Logger log("bridge", output(Format::kHuman));
  log.error("two\nlines", {{"reason", "peer said \"no\""}, {"empty", ""}, {"k", "a=b"}});
  ASSERT_EQ(lines().size(), 1U);
  EXPECT_EQ(lines()[0],
            "2024-05-01T12:00:00.123Z ERROR bridge: two\\nlines reason=\"peer said \\\"no\\\"\" "
            "empty=\"\" k=\"a=b\"");
}

TEST_F(LoggerTest, JsonLinesAreOneValidObjectEach) {
  const Logger log("ems", output(Format::kJson));
  const std::string untrusted = std::string("bad\xff utf-8\n") + '\0';
  log.info("started", {{"count", 3}, {"big", 18446744073709551615ULL}, {"on", false}});
  log.critical("line\nbreak", {{"client", untrusted}, {"x", -1.5}});
  ASSERT_EQ(lines().size(), 2U);
  const auto first = nlohmann::json::parse(lines()[0]);
  EXPECT_EQ(first["ts"], "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["component"], "ems");
  EXPECT_EQ(first["msg"], "started");
  EXPECT_EQ(first["count"], 3);
  EXPECT_EQ(first["big"], 18446744073709551615ULL);
  EXPECT_EQ(first["on"], false);
  EXPECT_EQ(lines()[0].rfind("{\"ts\":\"2024-05-01T12:00:00.123Z\",\"level\":\"info\","
                             "\"component\":\"ems\",\"msg\":\"started\"",
                             0),
            0U);
  const auto second = nlohmann::json::parse(lines()[1]);
  EXPECT_EQ(second["level"], "critical");
  EXPECT_EQ(second["msg"], "line\nbreak");
  EXPECT_EQ(second["client"], "bad\xef\xbf\xbd utf-8\n" + std::string(1, '\0'));
  EXPECT_EQ(second["x"], -1.5);
}

TEST_F(LoggerTest, FieldsNeverReplaceTheFixedKeys) {
  const Logger log("sim", output(Format::kJson));
  log.info("real", {{"msg", "fake"}, {"level", "fake"}, {"ts", 0}, {"component", "fake"}});
  const auto line = nlohmann::json::parse(lines().at(0));
  EXPECT_EQ(line["msg"], "real");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["component"], "sim");
  EXPECT_EQ(line["field_msg"], "fake");
  EXPECT_EQ(line["field_ts"], 0);
}

TEST_F(LoggerTest, LevelFiltersAndCanChangeWhileRunning) {
  auto out = output(Format::kHuman, Level::kWarn);
  const Logger log("secmgr", out);
  log.debug("hidden");
  log.info("hidden");
  log.warn("shown");
  EXPECT_FALSE(log.enabled(Level::kInfo));
  out->apply(LogSettings{Level::kDebug, Format::kJson});
  log.debug("now shown");
  out->apply(LogSettings{Level::kOff, Format::kJson});
  log.critical("hidden");
  ASSERT_EQ(lines().size(), 2U);
  EXPECT_NE(lines()[0].find("WARN  secmgr: shown"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(lines()[1])["msg"], "now shown");
}

TEST_F(LoggerTest, LevelAndFormatNamesRoundTrip) {
  for (const auto& [name, level] : level_names()) {
    EXPECT_EQ(parse_level(name), level);
    EXPECT_EQ(to_string(level), name);
  }
  for (const auto& [name, format] : format_names()) {
    EXPECT_EQ(parse_format(name), format);
  }
  EXPECT_EQ(parse_level("INFO"), std::nullopt);
  EXPECT_EQ(parse_format("text"), std::nullopt);
}

TEST_F(LoggerTest, DefaultOutputCanBeReplaced) {
  const auto previous = default_output();
  set_default_output(output(Format::kHuman));
  Logger("core").info("through the default");
  set_default_output(previous);
  Logger("core").debug("not captured");
  ASSERT_EQ(lines().size(), 1U);
  EXPECT_NE(lines()[0].find("core: through the default"), std::string::npos);
}

}  // namespace
}  // namespace recmesh::log
