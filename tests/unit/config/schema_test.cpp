#include "recmesh/config/schema.hpp"

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/config/problem.hpp"
#include "recmesh/core/error.hpp"

#include "example_settings.hpp"
#include "temp_dir.hpp"

namespace recmesh::testing {
namespace {

using namespace std::chrono_literals;
using config::Problem;

// The smallest usable file: the broker block's three files (relative to the file's directory).
constexpr const char* kBroker =
    "broker:\n"
    "  cafile: ca.pem\n"
    "  certfile: cert.pem\n"
    "  keyfile: key.pem\n";

class SchemaTest : public ::testing::Test {
 protected:
  SchemaTest() {
    for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
      std::ofstream(dir_ / name) << "PEM\n";
    }
    std::filesystem::create_directory(dir_ / "buffer");
  }

  config::LoadResult<ExampleSettings> load(const std::string& text) const {
    return schema_.load_text(text, "example.yaml", dir_.path());
  }

  // The problems of `text`, which must have at least one.
  std::vector<Problem> problems(const std::string& text) const {
    auto result = load(text);
    EXPECT_FALSE(result.ok()) << text;
    return result.problems;
  }

  // The only problem of `text`.
  Problem problem(const std::string& text) const {
    auto found = problems(text);
    EXPECT_EQ(found.size(), 1U) << config::describe_problems(found);
    return found.empty() ? Problem{} : found.front();
  }

  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return dir_ / name;
  }

  TempDir dir_;
  config::Schema<ExampleSettings> schema_ = example_schema();
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(SchemaTest, KeysLeftOutKeepTheStructDefaults) {
  auto result = load(kBroker);
  ASSERT_TRUE(result.ok()) << config::describe_problems(result.problems);
  const ExampleSettings defaults;
  EXPECT_EQ(result.settings.site, defaults.site);
  EXPECT_EQ(result.settings.publish_interval, 5s);
  EXPECT_EQ(result.settings.buffer_limit, config::ByteSize::mebibytes(64));
  EXPECT_EQ(result.settings.publish_topics, defaults.publish_topics);
  EXPECT_EQ(result.settings.logging, defaults.logging);
  EXPECT_EQ(result.settings.metrics, defaults.metrics);
  EXPECT_EQ(result.keys_in_file,
            (std::set<std::string>{"broker.cafile", "broker.certfile", "broker.keyfile"}));
}

TEST_F(SchemaTest, ValuesOfEveryTypeAreRead) {
  auto result = load(std::string(kBroker) +
                     "  host: broker.rec-1.example\n"
                     "  port: 8884\n"
                     "site: rec-7\n"
                     "mode: standby\n"
                     "publish:\n"
                     "  interval: 250ms\n"
                     "  retain: true\n"
                     "  topics: [metrics, \"status\"]\n"
                     "  transport: websocket\n"
                     "session_expiry: 2m\n"
                     "buffer:\n"
                     "  limit: 16MiB\n"
                     "  directory: buffer\n"
                     "max_power_kw: 7.5\n"
                     "priority: -3\n"
                     "logging:\n"
                     "  level: debug\n"
                     "  format: json\n"
                     "metrics:\n"
                     "  enabled: true\n"
                     "  port: 0\n");
  ASSERT_TRUE(result.ok()) << config::describe_problems(result.problems);
  const ExampleSettings& s = result.settings;
  EXPECT_EQ(s.broker.host, "broker.rec-1.example");
  EXPECT_EQ(s.broker.port, 8884);
  EXPECT_EQ(s.broker.cafile, dir_ / "ca.pem");
  EXPECT_EQ(s.site, "rec-7");
  EXPECT_EQ(s.mode, ExampleMode::kStandby);
  EXPECT_EQ(s.publish_interval, 250ms);
  EXPECT_TRUE(s.publish_retain);
  EXPECT_EQ(s.publish_topics, (std::vector<std::string>{"metrics", "status"}));
  EXPECT_EQ(s.publish_transport, "websocket");
  EXPECT_EQ(s.session_expiry, 120s);
  EXPECT_EQ(s.buffer_limit, config::ByteSize::mebibytes(16));
  EXPECT_EQ(s.buffer_directory, dir_ / "buffer");
  EXPECT_DOUBLE_EQ(s.max_power_kw, 7.5);
  EXPECT_EQ(s.priority, -3);
  EXPECT_EQ(s.logging.level, log::Level::kDebug);
  EXPECT_EQ(s.logging.format, log::Format::kJson);
  EXPECT_TRUE(s.metrics.enabled);
  EXPECT_EQ(s.metrics.port, 0);
}

TEST_F(SchemaTest, AbsolutePathsStayAsWritten) {
  auto result = load(std::string("broker:\n  cafile: ") + (dir_ / "ca.pem").string() +
                     "\n  certfile: cert.pem\n  keyfile: ./sub/../key.pem\n");
  ASSERT_TRUE(result.ok()) << config::describe_problems(result.problems);
  EXPECT_EQ(result.settings.broker.cafile, dir_ / "ca.pem");
  EXPECT_EQ(result.settings.broker.keyfile, dir_ / "key.pem");
}

TEST_F(SchemaTest, UnknownKeyNamesPlaceAndSuggestsTheNearestKey) {
  const Problem p = problem(std::string(kBroker) + "publish:\n  intreval: 5s\n");
  EXPECT_EQ(p.file, "example.yaml");
  EXPECT_EQ(p.line, 6);
  EXPECT_EQ(p.column, 3);
  EXPECT_EQ(p.key, "publish.intreval");
  EXPECT_TRUE(contains(p.message, "unknown key; did you mean publish.interval?")) << p.message;
  EXPECT_TRUE(contains(p.message, "allowed here: interval, retain, topics or transport"))
      << p.message;
  EXPECT_EQ(config::to_string(p),
            "example.yaml:6:3: publish.intreval: unknown key; did you mean publish.interval? "
            "(allowed here: interval, retain, topics or transport)");
}

TEST_F(SchemaTest, UnknownKeyAtTheWrongLevelSuggestsItsFullPath) {
  const Problem p = problem(std::string(kBroker) + "interval: 5s\n");
  EXPECT_EQ(p.key, "interval");
  EXPECT_TRUE(contains(p.message, "did you mean publish.interval?")) << p.message;
}

TEST_F(SchemaTest, UnknownKeyFarFromEveryKnownKeyListsTheAllowedOnes) {
  const Problem p = problem(std::string(kBroker) + "zzzzzzzzzz: 1\n");
  EXPECT_FALSE(contains(p.message, "did you mean")) << p.message;
  EXPECT_TRUE(contains(p.message, "allowed here: site, mode, publish")) << p.message;
}

TEST_F(SchemaTest, DottedKeysMustBeWrittenAsNestedMappings) {
  const Problem p = problem(std::string(kBroker) + "publish.interval: 5s\n");
  EXPECT_EQ(p.key, "publish.interval");
  EXPECT_TRUE(contains(p.message, "nested mappings")) << p.message;
}

TEST_F(SchemaTest, UnprintableUnknownKeysAreQuoted) {
  const Problem p = problem(std::string(kBroker) + "\"bad\\tkey\": 1\n");
  EXPECT_EQ(p.key, "\"bad\\x09key\"");
}

TEST_F(SchemaTest, WrongTypesSayWhatWasExpected) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"priority: abc\n", "expected an integer, got \"abc\" (allowed: -10..10)"},
      {"priority: \"3\"\n", "expected an integer (without quotes), got the quoted string \"3\""},
      {"priority: 1.5\n", "expected an integer, got \"1.5\""},
      {"priority: 0x10\n", "expected an integer, got \"0x10\""},
      {"publish:\n  retain: yes\n", "expected true or false, got \"yes\""},
      {"publish:\n  retain: \"true\"\n", "expected true or false"},
      {"publish: 5\n", "expected a mapping, got \"5\""},
      {"publish:\n  topics: metrics\n", "expected a list, got \"metrics\""},
      {"publish:\n  topics: [[a]]\n", "item 1: expected a string, got a list"},
      {"site: [a, b]\n", "expected a string, got a list"},
      {"site: {a: b}\n", "expected a string, got a mapping"},
      {"max_power_kw: 1,5\n", "expected a number, got \"1,5\""},
      {"max_power_kw: .nan\n", "expected a number, got \".nan\""},
      {"mode: [active]\n", "expected one of active or standby, got a list"},
  };
  for (const auto& [text, message] : cases) {
    const Problem p = problem(std::string(kBroker) + text);
    EXPECT_TRUE(contains(p.message, message)) << text << " -> " << p.message;
    EXPECT_GT(p.line, 4) << text;
  }
}

TEST_F(SchemaTest, OutOfRangeValuesShowTheAllowedRange) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"priority: 11\n", "11 is out of range (allowed: -10..10)"},
      {"priority: -99999999999999999999\n", "is out of range (allowed: -10..10)"},
      {"priority: 4294967296\n", "4294967296 is out of range (allowed: -10..10)"},
      {"max_power_kw: 1000.5\n", "1000.5 is out of range (allowed: 0..1000)"},
      {"max_power_kw: 1e400\n", "\"1e400\" is out of range (allowed: 0..1000)"},
      {"buffer:\n  limit: 8KiB\n", "8KiB is out of range (allowed: 64KiB..4GiB)"},
      {"publish:\n  interval: 50ms\n", "50ms is out of range (allowed: 100ms..1h)"},
      {"publish:\n  interval: 2h\n", "2h is out of range (allowed: 100ms..1h)"},
      {"session_expiry: 1500ms\n", "1500ms is not a multiple of 1s (allowed: 0s..1d)"},
      {"metrics:\n  port: 70000\n", "70000 is out of range (allowed: 0..65535)"},
      {"metrics:\n  port: -1\n", "-1 is out of range (allowed: 0..65535)"},
  };
  for (const auto& [text, message] : cases) {
    const Problem p = problem(std::string(kBroker) + text);
    EXPECT_TRUE(contains(p.message, message)) << text << " -> " << p.message;
  }
  const Problem port =
      problem("broker:\n  cafile: ca.pem\n  certfile: cert.pem\n  keyfile: key.pem\n  port: 0\n");
  EXPECT_EQ(config::to_string(port),
            "example.yaml:5:9: broker.port: 0 is out of range (allowed: 1..65535)");
}

TEST_F(SchemaTest, BadDurationsAreRefusedWithTheUnits) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"5", "(the unit is missing)"},
      {"5x", "(units: ms, s, m, h, d)"},
      {"5 s", "(units: ms, s, m, h, d)"},
      {"5S", "(units: ms, s, m, h, d)"},
      {"-1s", "expected a duration such as 250ms, 5s, 2m or 1h, got \"-1s\""},
      {"1.5s", "(use a smaller unit instead of a fraction)"},
      {"1m30s", "(units: ms, s, m, h, d)"},
      {"99999999999999999999d", "is out of range"},
      {"9999999999999999d", "is out of range"},
      {"\"\"", "expected a duration"},
      {"[5s]", "expected a duration such as 250ms, 5s, 2m or 1h, got a list"},
  };
  for (const auto& [value, message] : cases) {
    const Problem p = problem(std::string(kBroker) + "publish:\n  interval: " + value + "\n");
    EXPECT_EQ(p.key, "publish.interval");
    EXPECT_TRUE(contains(p.message, message)) << value << " -> " << p.message;
    EXPECT_TRUE(contains(p.message, "(allowed: 100ms..1h)")) << p.message;
  }
  EXPECT_EQ(load(std::string(kBroker) + "publish:\n  interval: \"2m\"\n").settings.publish_interval,
            2min);
  EXPECT_EQ(load(std::string(kBroker) + "session_expiry: 0\n").settings.session_expiry, 0s);
}

TEST_F(SchemaTest, BadByteSizesAreRefusedWithTheUnits) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"64KB", "(write KiB, MiB, GiB or TiB: units are powers of 1024)"},
      {"64M", "(write KiB, MiB, GiB or TiB"},
      {"64kib", "(units: B, KiB, MiB, GiB, TiB)"},
      {"1.5MiB", "(use a smaller unit instead of a fraction)"},
      {"-1KiB", "expected a byte size such as 512B, 64KiB or 16MiB"},
      {"99999999TiB", "is out of range"},
      {"MiB", "expected a byte size"},
  };
  for (const auto& [value, message] : cases) {
    const Problem p = problem(std::string(kBroker) + "buffer:\n  limit: " + value + "\n");
    EXPECT_EQ(p.key, "buffer.limit");
    EXPECT_TRUE(contains(p.message, message)) << value << " -> " << p.message;
  }
  EXPECT_EQ(load(std::string(kBroker) + "buffer:\n  limit: 1048576\n").settings.buffer_limit,
            config::ByteSize::mebibytes(1));
}

TEST_F(SchemaTest, EnumerationsAndChoicesListWhatIsAllowed) {
  Problem p = problem(std::string(kBroker) + "mode: passive\n");
  EXPECT_EQ(p.message, "\"passive\" is not allowed (allowed: one of active or standby)");
  p = problem(std::string(kBroker) + "publish:\n  transport: websockets\n");
  EXPECT_EQ(p.message,
            "\"websockets\" is not allowed (did you mean websocket?) (allowed: one of tcp or "
            "websocket)");
  p = problem(std::string(kBroker) + "logging:\n  level: verbose\n");
  EXPECT_TRUE(contains(p.message, "one of trace, debug, info, warn, error, critical or off"))
      << p.message;
}

TEST_F(SchemaTest, EmptyValuesAreRefusedWhereTheyMakeNoSense) {
  EXPECT_TRUE(contains(problem(std::string(kBroker) + "site: \"\"\n").message,
                       "must not be empty (allowed: a non-empty string)"));
  EXPECT_TRUE(contains(problem(std::string(kBroker) + "publish:\n  topics: []\n").message,
                       "must hold at least one item"));
  EXPECT_TRUE(contains(problem(std::string(kBroker) + "site:\n").message,
                       "has no value (remove the key to keep the default)"));
  EXPECT_TRUE(contains(problem(std::string(kBroker) + "site: ~\n").message, "has no value"));
}

TEST_F(SchemaTest, ControlCharactersInStringsAreRefused) {
  EXPECT_TRUE(contains(problem(std::string(kBroker) + "site: \"rec\\n1\"\n").message,
                       "contains the control character \\x0a"));
  EXPECT_TRUE(contains(problem(std::string(kBroker) + "publish:\n  topics: [\"a\\tb\"]\n").message,
                       "item 1: contains the control character \\x09"));
}

TEST_F(SchemaTest, PathsThatMustExistAreChecked) {
  Problem p = problem("broker:\n  cafile: missing.pem\n  certfile: cert.pem\n  keyfile: key.pem\n");
  EXPECT_EQ(p.key, "broker.cafile");
  EXPECT_EQ(p.line, 2);
  EXPECT_TRUE(contains(p.message, "missing.pem\" does not exist (allowed: an existing file)"))
      << p.message;
  p = problem("broker:\n  cafile: buffer\n  certfile: cert.pem\n  keyfile: key.pem\n");
  EXPECT_TRUE(contains(p.message, "is not a regular file")) << p.message;
  p = problem(std::string(kBroker) + "buffer:\n  directory: ca.pem\n");
  EXPECT_TRUE(
      contains(p.message, "is not a directory (allowed: an existing directory, or empty for none)"))
      << p.message;
}

TEST_F(SchemaTest, RequiredKeysLeftOutAreEachReported) {
  auto found = problems("site: rec-2\n");
  ASSERT_EQ(found.size(), 3U) << config::describe_problems(found);
  EXPECT_EQ(found[0].key, "broker.cafile");
  EXPECT_EQ(found[1].key, "broker.certfile");
  EXPECT_EQ(found[2].key, "broker.keyfile");
  EXPECT_EQ(found[0].line, 0);
  EXPECT_EQ(config::to_string(found[0]),
            "example.yaml: broker.cafile: is required but not set (allowed: an existing file)");
  // With the block present, the problem points at it.
  found = problems("broker:\n  host: h\n");
  ASSERT_EQ(found.size(), 3U);
  EXPECT_EQ(found[0].line, 1);
}

TEST_F(SchemaTest, EveryProblemIsCollectedInFileOrder) {
  const std::string text = std::string(kBroker) +
                           "site: \"\"\n"             // 5
                           "publish:\n"               // 6
                           "  intervl: 5s\n"          // 7
                           "  retain: maybe\n"        // 8
                           "priority: 20\n"           // 9
                           "buffer:\n  limit: 1KB\n"  // 10, 11
                           "priority: 1\n";           // 12: duplicate
  auto found = problems(text);
  ASSERT_EQ(found.size(), 6U) << config::describe_problems(found);
  const std::vector<std::pair<int, std::string>> expected{
      {5, "site"},     {7, "publish.intervl"}, {8, "publish.retain"},
      {9, "priority"}, {11, "buffer.limit"},   {12, "priority"},
  };
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(found[i].line, expected[i].first) << config::to_string(found[i]);
    EXPECT_EQ(found[i].key, expected[i].second) << config::to_string(found[i]);
    // Every message names the file, the line, the key and what is allowed.
    const std::string line = config::to_string(found[i]);
    EXPECT_TRUE(line.starts_with("example.yaml:" + std::to_string(expected[i].first) + ":"))
        << line;
    EXPECT_TRUE(contains(line, expected[i].second)) << line;
    EXPECT_TRUE(contains(line, "allowed") || contains(line, "each key may appear once")) << line;
  }
}

TEST_F(SchemaTest, OneErrorListsEveryProblem) {
  const auto path = write("bad.yaml", std::string(kBroker) + "priority: 20\nmode: x\n");
  try {
    schema_.load_file_or_throw(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string what = e.what();
    EXPECT_TRUE(what.starts_with("configuration " + path.string() + " has 2 problems:")) << what;
    EXPECT_TRUE(contains(what, "\n  " + path.string() + ":5:11: priority: 20 is out of range"))
        << what;
    EXPECT_TRUE(contains(what, "\n  " + path.string() + ":6:7: mode: \"x\" is not allowed"))
        << what;
  }
}

TEST_F(SchemaTest, LoadFileReadsRelativePathsFromTheFilesDirectory) {
  const auto path = write("good.yaml", kBroker);
  const ExampleSettings s = schema_.load_file_or_throw(path);
  EXPECT_EQ(s.broker.certfile, dir_ / "cert.pem");
}

TEST_F(SchemaTest, MissingOrUnreadableFilesAreProblemsToo) {
  auto result = schema_.load_file(dir_ / "absent.yaml");
  ASSERT_EQ(result.problems.size(), 1U);
  EXPECT_EQ(config::to_string(result.problems[0]),
            (dir_ / "absent.yaml").string() +
                ": cannot open the configuration file: No such file or directory");
  EXPECT_THROW(schema_.load_file_or_throw(dir_ / "absent.yaml"), Error);
  result = schema_.load_file(dir_.path());
  ASSERT_EQ(result.problems.size(), 1U);
  EXPECT_TRUE(contains(result.problems[0].message, "not a regular file"));
}

TEST_F(SchemaTest, MalformedYamlIsReportedWithItsPlace) {
  const Problem p = problem(std::string(kBroker) + "publish: [unclosed\nsite: a\n");
  EXPECT_TRUE(p.message.starts_with("malformed YAML: ")) << p.message;
  EXPECT_GT(p.line, 4);
  const Problem tab = problem("site:\ta\n\tmode: x\n");
  EXPECT_TRUE(tab.message.starts_with("malformed YAML")) << tab.message;
}

TEST_F(SchemaTest, DuplicateKeysAreRefused) {
  const Problem p = problem(std::string(kBroker) + "site: a\nsite: b\n");
  EXPECT_EQ(config::to_string(p),
            "example.yaml:6:1: site: duplicate key (first at line 5; each key may appear once)");
  // Also inside a section, and for unknown keys.
  EXPECT_EQ(problems("broker:\n  cafile: ca.pem\n  cafile: ca.pem\n  certfile: cert.pem\n"
                     "  keyfile: key.pem\n")
                .size(),
            1U);
  EXPECT_EQ(problems(std::string(kBroker) + "x: 1\nx: 2\n").size(), 2U);
}

TEST_F(SchemaTest, FilesOverOneMebibyteAreRefusedBeforeParsing) {
  // Exactly the limit: accepted.
  std::string text = kBroker;
  text += "#" + std::string(config::kMaxConfigFileSize - text.size() - 2, 'x') + "\n";
  ASSERT_EQ(text.size(), config::kMaxConfigFileSize);
  EXPECT_TRUE(schema_.load_file(write("limit.yaml", text)).ok());
  // One byte more: refused.
  auto result = schema_.load_file(write("over.yaml", text + "\n"));
  ASSERT_EQ(result.problems.size(), 1U);
  EXPECT_TRUE(contains(result.problems[0].message, "larger than 1048576 bytes (1 MiB)"))
      << result.problems[0].message;
}

TEST_F(SchemaTest, DeeplyNestedGarbageIsAProblemNotACrash) {
  std::vector<std::string> inputs{
      std::string(200000, '['),
      std::string(200000, '{'),
      "publish: " + std::string(100000, '[') + std::string(100000, ']') + "\n",
  };
  std::string block = "publish:\n";
  for (int depth = 1; depth < 1200; ++depth) {
    block += std::string(static_cast<std::size_t>(depth), ' ') + "a:\n";
  }
  inputs.push_back(block);
  std::string sequences;
  for (int depth = 0; depth < 1500; ++depth) {
    sequences += std::string(static_cast<std::size_t>(depth), ' ') + "-\n";
  }
  inputs.push_back(sequences);
  inputs.push_back("a: &a [*a, *a]\n");
  inputs.push_back("publish: &p {interval: *p}\n");
  for (const std::string& input : inputs) {
    auto result = load(input);
    EXPECT_FALSE(result.ok()) << input.substr(0, 40);
  }
}

TEST_F(SchemaTest, OneDocumentPerFile) {
  const Problem p = problem(std::string(kBroker) + "---\nsite: b\n");
  EXPECT_EQ(config::to_string(p),
            "example.yaml:5:1: holds more than one YAML document; a configuration file holds one");
  // Garbage on which the YAML library would otherwise keep reading "documents" for ever.
  EXPECT_TRUE(contains(problem(",[[\xa5[]]]]]}}]];").message, "more than one YAML document"));
}

TEST_F(SchemaTest, TheFileMustBeAMapping) {
  Problem p = problem("- site\n- mode\n");
  EXPECT_TRUE(contains(p.message, "the file must be a mapping of keys, got a list")) << p.message;
  p = problem("just text\n");
  EXPECT_TRUE(contains(p.message, "got \"just text\"")) << p.message;
  p = problem(std::string(kBroker) + "? [a, b]\n: c\n");
  EXPECT_TRUE(contains(p.message, "keys must be plain names, got a list")) << p.message;
}

TEST_F(SchemaTest, NulBytesAreRefused) {
  const Problem p = problem(std::string(kBroker) + "site: a" + std::string(1, '\0') + "b\n");
  EXPECT_EQ(p.line, 5);
  EXPECT_TRUE(contains(p.message, "NUL byte")) << p.message;
}

TEST_F(SchemaTest, EmptyFilesAndEmptySectionsMeanDefaults) {
  const auto result = schema_.load_text("", "empty.yaml");
  EXPECT_EQ(result.problems.size(), 3U);  // only the three required broker files
  EXPECT_TRUE(load(std::string(kBroker) + "publish:\nlogging:\n# nothing\n").ok());
}

TEST_F(SchemaTest, CrossFieldRulesRunAfterTheFieldsPassed) {
  const Problem p =
      problem(std::string(kBroker) + "publish:\n  interval: 30m\nsession_expiry: 10m\n");
  EXPECT_EQ(config::to_string(p),
            "example.yaml:6:3: publish.interval: must be shorter than session_expiry (10m)");
  // While a field has a problem, cross-field rules wait: they would see a default instead.
  const auto found =
      problems(std::string(kBroker) + "publish:\n  interval: 30m\nsession_expiry: 10x\n");
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(found[0].key, "session_expiry");
}

TEST_F(SchemaTest, RulesOfABlockReportUnderItsPrefix) {
  const Problem p = problem("broker:\n  cafile: ca.pem\n  certfile: cert.pem\n  keyfile: ca.pem\n");
  EXPECT_EQ(config::to_string(p),
            "example.yaml:4:3: broker.keyfile: must not be the cafile (allowed: a file of its "
            "own)");
}

TEST_F(SchemaTest, CheckAppliesTheConstraintsToSettingsBuiltInCode) {
  ExampleSettings settings;
  settings.broker.cafile = settings.broker.certfile = settings.broker.keyfile = dir_ / "ca.pem";
  settings.priority = 50;
  auto found = schema_.check(settings);
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(config::to_string(found[0]),
            "(settings): priority: 50 is out of range (allowed: -10..10)");
  settings.priority = 0;
  found = schema_.check(settings);
  ASSERT_EQ(found.size(), 2U);  // keyfile and certfile are the cafile
  EXPECT_EQ(found[0].key, "broker.keyfile");
}

TEST_F(SchemaTest, DefaultsThatBreakAConstraintAreReported) {
  // buffer.directory must exist when set; a default that does not is reported as a default.
  struct WithDefault {
    std::filesystem::path directory = "/nonexistent/recmesh";
  };
  config::Schema<WithDefault> s;
  s.field("directory", &WithDefault::directory, "A directory").existing_directory();
  const auto result = s.load_text("", "x.yaml");
  ASSERT_EQ(result.problems.size(), 1U);
  EXPECT_EQ(config::to_string(result.problems[0]),
            "x.yaml: directory: the default \"/nonexistent/recmesh\" does not exist (allowed: an "
            "existing directory, or empty for none)");
}

TEST_F(SchemaTest, EffectiveConfigurationLoadsBackToTheSameSettings) {
  auto first = load(std::string(kBroker) +
                    "publish:\n  interval: 90s\n  topics: [\"a \\\"quoted\\\" one\", b]\n"
                    "site: \"it's: #1\"\nmax_power_kw: 0.1\nbuffer:\n  limit: 65537B\n");
  ASSERT_TRUE(first.ok()) << config::describe_problems(first.problems);
  const std::string rendered = schema_.render_yaml(first.settings, &first.keys_in_file);
  EXPECT_TRUE(contains(rendered, "publish:\n  interval: 90s\n")) << rendered;
  EXPECT_TRUE(contains(rendered, "  retain: false  # default\n")) << rendered;
  EXPECT_TRUE(contains(rendered, "site: \"it's: #1\"\n")) << rendered;
  EXPECT_TRUE(
      contains(rendered, "logging:\n  level: info  # default\n  format: human  # default\n"))
      << rendered;
  auto second = schema_.load_text(rendered, "rendered.yaml", dir_.path());
  ASSERT_TRUE(second.ok()) << config::describe_problems(second.problems) << rendered;
  EXPECT_EQ(schema_.render_yaml(second.settings), schema_.render_yaml(first.settings));
  EXPECT_EQ(second.settings.publish_topics[0], "a \"quoted\" one");
}

TEST_F(SchemaTest, MarkdownReferenceHasEveryKeyOnce) {
  const std::string markdown = schema_.render_markdown();
  EXPECT_TRUE(markdown.starts_with("| Key | Type | Default | Allowed | Description |\n"));
  for (const std::string& key : schema_.keys()) {
    EXPECT_TRUE(contains(markdown, "| `" + key + "` |")) << key;
  }
  EXPECT_TRUE(contains(markdown,
                       "| `publish.interval` | duration | `5s` | 100ms..1h | Time between two "
                       "publications |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| `broker.cafile` | path | *required* | an existing file |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| `mode` | enumeration | `active` | one of active or standby |"))
      << markdown;
}

TEST(SchemaDeclarationTest, MistakesInADeclarationAreCaughtWhenItIsBuilt) {
  struct S {
    int a = 0;
    int b = 0;
  };
  config::Schema<S> s;
  s.field("x.a", &S::a, "a");
  const auto internal = [](auto&& declare) {
    try {
      declare();
      return false;
    } catch (const Error& e) {
      return e.code() == ErrorCode::kInternal;
    }
  };
  EXPECT_TRUE(internal([&] { s.field("x.a", &S::b, "again"); }));
  EXPECT_TRUE(internal([&] { s.field("x", &S::b, "section and key"); }));
  EXPECT_TRUE(internal([&] { s.field("x.a.b", &S::b, "below a key"); }));
  EXPECT_TRUE(internal([&] { s.field("Bad", &S::b, "upper case"); }));
  EXPECT_TRUE(internal([&] { s.field("a..b", &S::b, "empty segment"); }));
  EXPECT_TRUE(internal([] {
    config::Schema<S> t;
    t.field("b", &S::b, "empty range").range(5, 1);
  }));
  EXPECT_FALSE(internal([&] { s.field("x.b", &S::b, "fine").range(1, 5); }));
  EXPECT_EQ(s.keys(), (std::vector<std::string>{"x.a", "x.b"}));
}

}  // namespace
}  // namespace recmesh::testing
