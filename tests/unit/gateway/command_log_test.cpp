#include "gateway/command_log.hpp"

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh::gateway {
namespace {

TEST(CommandLog, KeepsControlsSequencesAndCommandsAcrossReopening) {
  testing::TempDir tmp;
  const auto path = tmp / "gw.db";
  {
    CommandLog log(path);
    log.insert_control("c1", "ems_engine", 7, "activate-load", "non-idempotent", "{}", "RECEIVED");
    log.set_last_sequence("ems_engine", 7);
    EXPECT_EQ(log.next_command_sequence(), 1u);
    EXPECT_EQ(log.next_command_sequence(), 2u);
    log.insert_command("k1", "c1", "ev1", "power-on", 1, 2, "{}");
    log.update_control("c1", "EXECUTING", std::string("{\"status\":\"EXECUTING\"}"));
    log.update_command("k1", "RECEIVED", 0, std::nullopt);
    log.insert_control("c2", "ems_engine", 8, "activate-load", "idempotent", "{}", "RECEIVED");
    log.update_control("c2", "SUCCESS", std::nullopt);
  }
  CommandLog log(path);
  EXPECT_EQ(log.last_sequence("ems_engine"), 7u);
  EXPECT_FALSE(log.last_sequence("someone"));
  EXPECT_EQ(log.next_command_sequence(), 3u);  // never reused after a restart
  const auto open = log.unfinished_controls();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].control_id, "c1");
  EXPECT_EQ(open[0].intent, "non-idempotent");
  EXPECT_EQ(open[0].response, "{\"status\":\"EXECUTING\"}");
  log.fail_open_commands("c1", "restarted");
  const auto rows = log.commands_of("c1");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, "FAILED");
  EXPECT_EQ(log.find_control("c2")->state, "SUCCESS");
  EXPECT_FALSE(log.find_control("c3"));
}

TEST(CommandLog, StoresDeviceLogs) {
  testing::TempDir tmp;
  CommandLog log(tmp / "gw.db");
  const auto first = log.insert_log("ev1", "WARN", "2026-01-01T00:00:00.000Z", "{}");
  const auto second = log.insert_log("ev1", "ERROR", "2026-01-01T00:00:01.000Z", "{}");
  EXPECT_GT(second, first);
  log.mark_log_forwarded(second);
  EXPECT_EQ(log.count_logs("WARN"), 1);
  EXPECT_EQ(log.count_logs("INFO"), 0);
}

}  // namespace
}  // namespace recmesh::gateway
