// docs/security.md maps every security claim of the documents to the tests that attack it. This
// test keeps the map honest: every test it names exists (a `Suite.Name*` pattern matches at least
// one), and every fuzz target it names has its source.
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "recmesh/core/file_io.hpp"

namespace recmesh {
namespace {

namespace fs = std::filesystem;
using TestName = std::pair<std::string, std::string>;  // suite, test

const fs::path kSource(RECMESH_SOURCE_DIR);

std::set<TestName> defined_tests() {
  const std::regex definition(R"(TEST(?:_F|_P)?\(\s*(\w+),\s*(\w+)\))");
  std::set<TestName> out;
  for (const auto& entry : fs::recursive_directory_iterator(kSource / "tests")) {
    const auto extension = entry.path().extension();
    if (!entry.is_regular_file() || (extension != ".cpp" && extension != ".hpp")) {
      continue;
    }
    const std::string text = read_file(entry.path());
    for (std::sregex_iterator it(text.begin(), text.end(), definition), end; it != end; ++it) {
      out.emplace((*it)[1].str(), (*it)[2].str());
    }
  }
  return out;
}

// `pattern` is a test name, or one with a `*` standing for any run of characters.
bool is_defined(const std::set<TestName>& tests, const std::string& suite,
                const std::string& pattern) {
  const std::size_t star = pattern.find('*');
  const std::string head = pattern.substr(0, star);
  const std::string tail = star == std::string::npos ? "" : pattern.substr(star + 1);
  for (auto it = tests.lower_bound({suite, head}); it != tests.end() && it->first == suite; ++it) {
    const std::string& name = it->second;
    if (star == std::string::npos ? name == pattern
                                  : name.size() >= head.size() + tail.size() &&
                                        name.starts_with(head) && name.ends_with(tail)) {
      return true;
    }
  }
  return false;
}

TEST(SecurityClaimsTest, EveryNamedTestAndFuzzTargetExists) {
  const std::string doc = read_file(kSource / "docs" / "security.md");
  const std::set<TestName> tests = defined_tests();
  ASSERT_GT(tests.size(), 300U);

  const std::regex named(R"(`([A-Z]\w*)\.(\*?\w*\*?)`)");
  int checked = 0;
  for (std::sregex_iterator it(doc.begin(), doc.end(), named), end; it != end; ++it) {
    const std::string suite = (*it)[1].str();
    const std::string test = (*it)[2].str();
    if (suite == "Suite") {
      continue;  // the naming convention in the introduction
    }
    EXPECT_TRUE(is_defined(tests, suite, test)) << suite << "." << test << " is not a test";
    ++checked;
  }
  EXPECT_GT(checked, 100);

  const std::regex fuzz(R"(fuzz `(\w+)`(?:, `(\w+)`)?)");
  for (std::sregex_iterator it(doc.begin(), doc.end(), fuzz), end; it != end; ++it) {
    for (std::size_t group = 1; group < it->size(); ++group) {
      const std::string name = (*it)[group].str();
      if (!name.empty()) {
        EXPECT_TRUE(fs::exists(kSource / "tests" / "fuzz" / (name + "_fuzz.cpp"))) << name;
      }
    }
  }
}

}  // namespace
}  // namespace recmesh
