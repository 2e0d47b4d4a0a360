// Keeps docs/protocol/messages.md and the code in step: every example the document marks with
// `<!-- test: ... -->` is decoded or rejected here, and its tables are compared with the code.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/protocol/bridge_mapping.hpp"
#include "recmesh/protocol/messages.hpp"
#include "recmesh/protocol/topics.hpp"

namespace recmesh::protocol {
namespace {

// One `<!-- test: ... -->` marker and the code block or table that follows it.
struct Example {
  std::string directive;                       // e.g. `decode MemberControl`
  std::size_t line = 0;                        // of the marker, 1-based
  std::string block;                           // code block contents, without the fences
  std::vector<std::vector<std::string>> rows;  // table body rows, cells trimmed
};

std::filesystem::path doc_path() {
  return std::filesystem::path(RECMESH_SOURCE_DIR) / "docs" / "protocol" / "messages.md";
}

std::string trim(std::string_view s) {
  auto begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) {
    return {};
  }
  auto end = s.find_last_not_of(" \t");
  return std::string(s.substr(begin, end - begin + 1));
}

std::vector<std::string> table_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  bool in_code = false;
  for (std::size_t i = 1; i < line.size(); ++i) {
    char c = line[i];
    if (c == '`') {
      in_code = !in_code;
      continue;  // cells are compared without their code spans
    }
    if (c == '|' && !in_code) {
      cells.push_back(trim(cell));
      cell.clear();
    } else {
      cell += c;
    }
  }
  return cells;
}

std::vector<Example> read_examples() {
  std::ifstream in(doc_path());
  if (!in) {
    ADD_FAILURE() << "cannot read " << doc_path();
    return {};
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  const std::string open = "<!-- test: ";
  const std::string close = " -->";
  std::vector<Example> examples;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.rfind(open, 0) != 0) {
      continue;
    }
    Example ex;
    ex.line = i + 1;
    if (line.size() < open.size() + close.size() ||
        line.compare(line.size() - close.size(), close.size(), close) != 0) {
      ADD_FAILURE() << "line " << ex.line << ": malformed marker";
      continue;
    }
    ex.directive = line.substr(open.size(), line.size() - open.size() - close.size());
    std::size_t j = i + 1;
    while (j < lines.size() && trim(lines[j]).empty()) {
      ++j;
    }
    if (j < lines.size() && lines[j].rfind("```", 0) == 0) {
      for (++j; j < lines.size() && lines[j].rfind("```", 0) != 0; ++j) {
        ex.block += lines[j];
        ex.block += '\n';
      }
    } else if (j < lines.size() && lines[j].rfind('|', 0) == 0) {
      j += 2;  // header and separator
      for (; j < lines.size() && lines[j].rfind('|', 0) == 0; ++j) {
        ex.rows.push_back(table_cells(lines[j]));
      }
    } else {
      ADD_FAILURE() << "line " << ex.line << ": no code block or table after the marker";
    }
    examples.push_back(std::move(ex));
  }
  return examples;
}

std::vector<std::string> block_lines(const std::string& block) {
  std::vector<std::string> out;
  std::istringstream in(block);
  for (std::string line; std::getline(in, line);) {
    if (!trim(line).empty()) {
      out.push_back(trim(line));
    }
  }
  return out;
}

// Decodes a payload as T and encodes it again.
using Reencode = std::function<Result<std::string>(std::string_view)>;

template <typename T>
Result<std::string> reencode(std::string_view payload) {
  auto decoded = T::decode(payload);
  if (!decoded) {
    return decoded.status();
  }
  return decoded->encode();
}

const std::map<std::string, Reencode>& codecs() {
  static const std::map<std::string, Reencode> kCodecs = {
      {"MemberControl", reencode<MemberControl>},
      {"DeviceCommand", reencode<DeviceCommand>},
      {"DeviceCommandResponse", reencode<DeviceCommandResponse>},
      {"MemberControlResponse", reencode<MemberControlResponse>},
      {"StatusInfo", reencode<StatusInfo>},
      {"DeviceMetrics", reencode<DeviceMetrics>},
      {"MemberMetrics", reencode<MemberMetrics>},
      {"DiagnosticReport", reencode<DiagnosticReport>},
      {"LogRecord", reencode<LogRecord>},
  };
  return kCodecs;
}

// `reject T "fragment"`: the type and the unescaped fragment.
std::pair<std::string, std::string> split_reject(const std::string& args) {
  auto space = args.find(' ');
  std::string type = args.substr(0, space);
  std::string quoted = space == std::string::npos ? "" : trim(args.substr(space + 1));
  std::string fragment;
  if (quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"') {
    for (std::size_t i = 1; i + 1 < quoted.size(); ++i) {
      if (quoted[i] == '\\' && i + 2 < quoted.size()) {
        ++i;
      }
      fragment += quoted[i];
    }
  }
  return {type, fragment};
}

void check_topics(const Example& ex, TopicForm form, bool accept, std::set<Channel>& seen) {
  auto names = block_lines(ex.block);
  EXPECT_FALSE(names.empty()) << "line " << ex.line;
  for (const auto& name : names) {
    auto parsed = parse_topic(form, name);
    if (accept) {
      ASSERT_TRUE(parsed.ok()) << "line " << ex.line << ": " << parsed.status().message;
      EXPECT_EQ(*format_topic(*parsed), name);
      seen.insert(parsed->channel);
    } else {
      EXPECT_FALSE(parsed.ok()) << "line " << ex.line << ": " << name << " was accepted";
    }
  }
}

TEST(DocExamplesTest, EveryMarkedExampleHoldsAndEveryMessageHasOne) {
  auto examples = read_examples();
  ASSERT_FALSE(examples.empty()) << doc_path();
  std::set<std::string> decoded_types;
  std::set<Channel> local_channels;
  std::set<Channel> central_channels;
  std::map<std::string, std::string> first_encoding;  // per type, of its first decode example
  std::set<std::string> tables;
  for (const auto& ex : examples) {
    SCOPED_TRACE("docs/protocol/messages.md:" + std::to_string(ex.line) + " " + ex.directive);
    const auto space = ex.directive.find(' ');
    const std::string verb = ex.directive.substr(0, space);
    const std::string args = space == std::string::npos ? "" : ex.directive.substr(space + 1);
    if (verb == "decode" || verb == "canonical") {
      ASSERT_TRUE(codecs().contains(args)) << "unknown message type " << args;
      auto encoded = codecs().at(args)(ex.block);
      ASSERT_TRUE(encoded.ok()) << encoded.status().message;
      if (verb == "decode") {
        decoded_types.insert(args);
        first_encoding.emplace(args, *encoded);
      } else {
        EXPECT_EQ(*encoded + "\n", ex.block) << "the block is not in canonical form";
        EXPECT_EQ(*encoded, first_encoding[args]) << "not the encoding of the first example";
      }
    } else if (verb == "reject") {
      auto [type, fragment] = split_reject(args);
      ASSERT_TRUE(codecs().contains(type)) << "unknown message type " << type;
      ASSERT_FALSE(fragment.empty()) << "a reject marker quotes part of the error";
      auto encoded = codecs().at(type)(ex.block);
      ASSERT_FALSE(encoded.ok()) << "accepted";
      EXPECT_EQ(encoded.status().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(encoded.status().message.find(fragment), std::string::npos)
          << encoded.status().message;
    } else if (verb == "local-topics") {
      check_topics(ex, TopicForm::kLocal, true, local_channels);
    } else if (verb == "central-topics") {
      check_topics(ex, TopicForm::kCentral, true, central_channels);
    } else if (verb == "rejected-local-topics") {
      check_topics(ex, TopicForm::kLocal, false, local_channels);
    } else if (verb == "rejected-central-topics") {
      check_topics(ex, TopicForm::kCentral, false, central_channels);
    } else if (verb == "limits" || verb == "bridge-table") {
      tables.insert(verb);
    } else {
      ADD_FAILURE() << "unknown marker";
    }
  }
  for (const auto& [type, codec] : codecs()) {
    EXPECT_TRUE(decoded_types.contains(type)) << "no decode example for " << type;
  }
  for (int i = 0; i <= static_cast<int>(Channel::kPlatformSecurityEvents); ++i) {
    auto channel = static_cast<Channel>(i);
    EXPECT_EQ(local_channels.contains(channel), exists_in(channel, TopicForm::kLocal))
        << "local-topics and channel " << to_string(channel);
    EXPECT_EQ(central_channels.contains(channel), exists_in(channel, TopicForm::kCentral))
        << "central-topics and channel " << to_string(channel);
  }
  EXPECT_EQ(tables, (std::set<std::string>{"limits", "bridge-table"}));
}

const Example* find_example(const std::vector<Example>& examples, const std::string& directive) {
  auto it = std::find_if(examples.begin(), examples.end(),
                         [&](const Example& ex) { return ex.directive == directive; });
  return it == examples.end() ? nullptr : &*it;
}

TEST(DocExamplesTest, LimitsTableIsTheCode) {
  auto examples = read_examples();
  const Example* table = find_example(examples, "limits");
  ASSERT_NE(table, nullptr);
  const std::map<std::string, std::size_t> code = {
      {"kMaxTopicBytes", kMaxTopicBytes},
      {"kMaxMetricLevels", kMaxMetricLevels},
      {"kMaxMetricLevelBytes", kMaxMetricLevelBytes},
      {"kMaxMessageBytes", kMaxMessageBytes},
      {"kMaxJsonDepth", kMaxJsonDepth},
      {"kMaxDevicesPerControl", kMaxDevicesPerControl},
      {"kMaxObjectBytes", kMaxObjectBytes},
      {"kMaxTextBytes", kMaxTextBytes},
      {"kMaxLabelBytes", kMaxLabelBytes},
  };
  std::map<std::string, std::size_t> doc;
  for (const auto& row : table->rows) {
    ASSERT_GE(row.size(), 2u);
    doc[row[0]] = std::stoul(row[1]);
  }
  EXPECT_EQ(doc, code);
}

TEST(DocExamplesTest, BridgeTableIsTheCode) {
  auto examples = read_examples();
  const Example* table = find_example(examples, "bridge-table");
  ASSERT_NE(table, nullptr);
  auto rules = bridge_rules();
  ASSERT_EQ(table->rows.size(), rules.size());
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& row = table->rows[i];
    ASSERT_EQ(row.size(), 5u) << "row " << i;
    EXPECT_EQ(row[0], rules[i].local);
    EXPECT_EQ(row[1], rules[i].central);
    EXPECT_EQ(row[2], to_string(rules[i].direction));
    EXPECT_EQ(row[3], std::to_string(rules[i].qos));
    EXPECT_EQ(row[4], rules[i].retain ? "yes" : "no");
  }
}

}  // namespace
}  // namespace recmesh::protocol
