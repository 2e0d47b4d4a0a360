#include "secmgr/secmgr_config.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh::secmgr {
namespace {

config::LoadResult<SecmgrSettings> load(const testing::TempDir& dir, const std::string& yaml) {
  return secmgr_schema().load_text(yaml, "secmgr.yaml", dir.path());
}

TEST(SecmgrConfigTest, DefaultsNeedOnlyThePki) {
  testing::TempDir dir;
  const auto loaded = load(dir, "pki:\n  dir: " + dir.path().string() + "\n");
  ASSERT_TRUE(loaded.ok()) << config::describe_problems(loaded.problems);
  const SecmgrSettings& s = loaded.settings;
  EXPECT_EQ(s.api_address, "127.0.0.1");
  EXPECT_EQ(s.api_port, 8443);
  EXPECT_EQ(api_certfile(s), dir.path() / "issued" / "ems_secmgr-api" / "chain.pem");
  EXPECT_EQ(connector_keyfile(s), dir.path() / "issued" / "ems_secmgr" / "key.pem");
  EXPECT_FALSE(s.rabbitmq_auth_enabled);
}

TEST(SecmgrConfigTest, RejectsUnknownKeysWithFileAndLine) {
  testing::TempDir dir;
  const auto loaded = load(dir, "pki:\n  dir: " + dir.path().string() + "\napi:\n  prot: 1\n");
  ASSERT_FALSE(loaded.ok());
  const std::string text = config::describe_problems(loaded.problems);
  EXPECT_NE(text.find("secmgr.yaml:4"), std::string::npos) << text;
  EXPECT_NE(text.find("api.prot"), std::string::npos) << text;
}

TEST(SecmgrConfigTest, RejectsAMissingPkiAndBadValues) {
  testing::TempDir dir;
  EXPECT_FALSE(load(dir, "database: x.db\n").ok());
  const std::string pki = "pki:\n  dir: " + dir.path().string() + "\n";
  EXPECT_FALSE(load(dir, pki + "api:\n  address: not-an-address\n").ok());
  EXPECT_FALSE(load(dir, pki + "api:\n  max_body: 64MiB\n").ok());
  EXPECT_FALSE(load(dir, pki + "api:\n  threads: 0\n").ok());
  EXPECT_FALSE(load(dir, pki + "api:\n  certfile: a.pem\n").ok());  // without keyfile
  EXPECT_FALSE(load(dir, pki + "rabbitmq_auth:\n  address: 10.0.0.1\n").ok());
  EXPECT_TRUE(load(dir, pki + "rabbitmq_auth:\n  address: 127.0.0.2\n").ok());
}

// docs/secmgr.md carries the reference table generated from the declarations; run with
// RECMESH_UPDATE_DOCS=1 to rewrite it in place.
TEST(SecmgrConfigTest, DocumentationListsEveryKey) {
  const std::string path = std::string(RECMESH_SOURCE_DIR) + "/docs/secmgr.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string doc = buffer.str();
  const std::string begin = "<!-- generated from the declarations: secmgr -->\n";
  const std::size_t start = doc.find(begin);
  ASSERT_NE(start, std::string::npos);
  const std::size_t content = start + begin.size();
  const std::size_t end = doc.find("<!-- end of generated -->\n", content);
  ASSERT_NE(end, std::string::npos);
  const std::string table = secmgr_schema().render_markdown();
  const char* update = std::getenv("RECMESH_UPDATE_DOCS");
  if (update != nullptr && std::string(update) == "1") {
    doc.replace(content, end - content, table);
    std::ofstream(path) << doc;
    return;
  }
  EXPECT_EQ(doc.substr(content, end - content), table)
      << "docs/secmgr.md is out of date; regenerate with RECMESH_UPDATE_DOCS=1";
}

}  // namespace
}  // namespace recmesh::secmgr
