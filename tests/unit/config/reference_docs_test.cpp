// docs/configuration.md shows reference tables generated from the declarations of the blocks
// every daemon shares. This test fails when a table differs from what the declarations
// generate; run it with RECMESH_UPDATE_DOCS=1 to rewrite the tables in place.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/config/tls_client.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/metrics/http_endpoint.hpp"

namespace recmesh::config {
namespace {

struct GeneratedSection {
  std::string name;
  std::string markdown;
};

std::vector<GeneratedSection> generated_sections() {
  return {
      {"logging", log::settings_schema().render_markdown("logging.")},
      {"metrics", metrics::settings_schema().render_markdown("metrics.")},
      {"tls-client", tls_client_schema().render_markdown()},
  };
}

std::string begin_marker(const std::string& name) {
  return "<!-- generated from the declarations: " + name + " -->\n";
}
const std::string kEndMarker = "<!-- end of generated -->\n";

TEST(ReferenceDocsTest, ConfigurationReferenceMatchesTheDeclarations) {
  const std::string path = std::string(RECMESH_SOURCE_DIR) + "/docs/configuration.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string doc = buffer.str();
  const char* update = std::getenv("RECMESH_UPDATE_DOCS");
  const bool rewrite = update != nullptr && std::string(update) == "1";
  for (const GeneratedSection& section : generated_sections()) {
    const std::size_t begin = doc.find(begin_marker(section.name));
    ASSERT_NE(begin, std::string::npos) << "no marker for " << section.name << " in " << path;
    const std::size_t content = begin + begin_marker(section.name).size();
    const std::size_t end = doc.find(kEndMarker, content);
    ASSERT_NE(end, std::string::npos) << "unterminated section " << section.name;
    if (rewrite) {
      doc.replace(content, end - content, section.markdown);
    } else {
      EXPECT_EQ(doc.substr(content, end - content), section.markdown)
          << "docs/configuration.md is out of date for " << section.name
          << "; regenerate with RECMESH_UPDATE_DOCS=1 ctest --test-dir build/debug -R "
             "ReferenceDocsTest";
    }
  }
  if (rewrite) {
    std::ofstream(path) << doc;
  }
}

}  // namespace
}  // namespace recmesh::config
