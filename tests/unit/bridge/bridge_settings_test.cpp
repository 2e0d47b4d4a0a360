#include "bridge/bridge_settings.hpp"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh::bridge {
namespace {

class BridgeSettingsTest : public ::testing::Test {
 protected:
  BridgeSettingsTest() {
    for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
      std::ofstream(dir_ / name) << "x";
    }
  }

  config::LoadResult<BridgeSettings> load(const std::string& extra) const {
    const std::string tls = "  cafile: ca.pem\n  certfile: cert.pem\n  keyfile: key.pem\n";
    const std::string text = "rec: r1\nmember: m1\nlocal:\n  port: 8884\n" + tls +
                             "central:\n  port: 8894\n" + tls + "store:\n  path: s.db\n" + extra;
    return bridge_schema().load_text(text, "bridge.yaml", dir_.path());
  }

  testing::TempDir dir_;
};

TEST_F(BridgeSettingsTest, DefaultsBlockOnOverflowAndSurviveAProcessCrash) {
  const auto loaded = load("");
  ASSERT_TRUE(loaded.ok()) << config::describe_problems(loaded.problems);
  EXPECT_EQ(loaded.settings.overflow, OverflowPolicy::kBlock);
  EXPECT_EQ(loaded.settings.store_sync, StoreSync::kProcess);
  EXPECT_EQ(loaded.settings.common_name(), "bridge_r1_m1");
  EXPECT_EQ(loaded.settings.store_path, dir_ / "s.db");
}

TEST_F(BridgeSettingsTest, OverflowPoliciesByName) {
  EXPECT_EQ(load("  overflow: drop-oldest\n").settings.overflow, OverflowPolicy::kDropOldest);
  EXPECT_EQ(load("  overflow: drop-newest\n").settings.overflow, OverflowPolicy::kDropNewest);
  EXPECT_FALSE(load("  overflow: drop-all\n").ok());
}

TEST_F(BridgeSettingsTest, UnknownKeysAndBadValuesAreReportedWithTheirLine) {
  const auto unknown = load("  max_msgs: 5\n");
  ASSERT_FALSE(unknown.ok());
  const std::string text = config::describe_problems(unknown.problems);
  EXPECT_NE(text.find("bridge.yaml:"), std::string::npos) << text;
  EXPECT_NE(text.find("max_msgs"), std::string::npos) << text;
  EXPECT_FALSE(load("max_inflight: 0\n").ok());
  EXPECT_FALSE(load("max_payload_bytes: 10\n").ok());
  EXPECT_FALSE(load("reconnect:\n  initial: 5s\n  max: 1s\n").ok());
  EXPECT_FALSE(load("window_wait: 61s\n").ok());
  EXPECT_FALSE(load("window_wait: -1ms\n").ok());
  EXPECT_FALSE(load("window_wait: soon\n").ok());
}

TEST_F(BridgeSettingsTest, AFullWindowIsWaitedForBrieflyAndWriteBehindOutlastsALoadedRoundTrip) {
  const auto defaults = load("");
  ASSERT_TRUE(defaults.ok()) << config::describe_problems(defaults.problems);
  EXPECT_EQ(defaults.settings.window_wait, std::chrono::milliseconds(250));
  EXPECT_EQ(defaults.settings.store_write_behind, std::chrono::milliseconds(25));
  const auto set = load("window_wait: 2s\n");
  ASSERT_TRUE(set.ok()) << config::describe_problems(set.problems);
  EXPECT_EQ(set.settings.window_wait, std::chrono::milliseconds(2000));
}

TEST_F(BridgeSettingsTest, RecAndMemberMustBeIds) {
  const std::string tls = "  cafile: ca.pem\n  certfile: cert.pem\n  keyfile: key.pem\n";
  const auto bad = bridge_schema().load_text(
      "rec: R_1\nmember: m1\nlocal:\n" + tls + "central:\n" + tls + "store:\n  path: s.db\n",
      "bridge.yaml", dir_.path());
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace recmesh::bridge
