#include "ems/ems_store.hpp"

#include <filesystem>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh::ems {
namespace {

namespace fs = std::filesystem;

RequestRow queued(const std::string& id, std::int64_t take_by_ms) {
  RequestRow row;
  row.control_id = id;
  row.rec = "r1";
  row.member = "m1";
  row.type = "diagnostic";
  row.device = "pv1";
  row.devices = R"(["pv1"])";
  row.requested_by = "operator (uid 1000, pid 1)";
  row.requested_at_ms = 1000;
  row.take_by_ms = take_by_ms;
  row.state = std::string(kRequestQueued);
  return row;
}

TEST(EmsStoreTest, NewDatabaseIsTheEnginesAlone) {
  testing::TempDir tmp;
  const fs::path path = tmp.path() / "ems.db";
  { EmsStore store(path, SqliteDatabase::Mode::kCreate); }
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // ctl never creates one.
  EXPECT_ANY_THROW(EmsStore(tmp.path() / "other.db", SqliteDatabase::Mode::kReadWrite));
  EXPECT_FALSE(fs::exists(tmp.path() / "other.db"));
}

TEST(EmsStoreTest, ARequestIsTakenOrExpiredOnceNeverBoth) {
  testing::TempDir tmp;
  EmsStore engine(tmp.path() / "ems.db", SqliteDatabase::Mode::kCreate);
  EmsStore ctl(tmp.path() / "ems.db", SqliteDatabase::Mode::kReadWrite);

  ctl.put_request(queued("a", 5000));
  ctl.put_request(queued("b", 5000));
  ctl.put_request(queued("c", 2000));
  ASSERT_EQ(engine.queued_requests().size(), 3U);

  EXPECT_TRUE(engine.take_request("a", 4000));
  EXPECT_FALSE(ctl.expire_request("a"));         // too late: the engine has it
  EXPECT_FALSE(engine.take_request("a", 4000));  // and only once
  EXPECT_TRUE(ctl.expire_request("b"));
  EXPECT_FALSE(engine.take_request("b", 4000));  // ctl gave up first
  EXPECT_FALSE(engine.take_request("c", 4000));  // past its take_by
  EXPECT_EQ(ctl.request("a")->state, kRequestTaken);
  EXPECT_EQ(ctl.request("b")->state, kRequestExpired);
  EXPECT_EQ(ctl.request("c")->state, kRequestQueued);
  ASSERT_EQ(engine.queued_requests().size(), 1U);

  engine.refuse_request("c", "no such member");
  EXPECT_EQ(ctl.request("c")->state, kRequestRefused);
  EXPECT_EQ(ctl.request("c")->error, "no such member");
  EXPECT_FALSE(ctl.request("d"));
}

TEST(EmsStoreTest, DiagnosticReportsAreKeptWithTheirRequest) {
  testing::TempDir tmp;
  EmsStore store(tmp.path() / "ems.db", SqliteDatabase::Mode::kCreate);
  store.put_request(queued("a", 5000));
  EXPECT_TRUE(store.awaiting_reports("r1", "m1", "pv1").empty());  // not taken yet
  ASSERT_TRUE(store.take_request("a", 1000));
  store.set_request_command("a", "cmd-1");
  const auto waiting = store.awaiting_reports("r1", "m1", "pv1");
  ASSERT_EQ(waiting.size(), 1U);
  EXPECT_EQ(waiting[0].command_id, "cmd-1");
  EXPECT_TRUE(store.awaiting_reports("r1", "m1", "bat1").empty());
  EXPECT_TRUE(store.awaiting_reports("r1", "m2", "pv1").empty());
  store.set_request_report("a", R"({"signer":"rec_r1_m1_pv1"})");
  EXPECT_TRUE(store.awaiting_reports("r1", "m1", "pv1").empty());
  EXPECT_EQ(store.request("a")->report, R"({"signer":"rec_r1_m1_pv1"})");
}

TEST(EmsStoreTest, DataVersionMovesWhenAnotherConnectionCommits) {
  testing::TempDir tmp;
  EmsStore engine(tmp.path() / "ems.db", SqliteDatabase::Mode::kCreate);
  const auto before = engine.data_version();
  engine.put_request(queued("own", 5000));
  EXPECT_EQ(engine.data_version(), before);  // its own writes do not count
  EmsStore ctl(tmp.path() / "ems.db", SqliteDatabase::Mode::kReadWrite);
  ctl.put_request(queued("theirs", 5000));
  EXPECT_NE(engine.data_version(), before);
}

TEST(EmsStoreTest, DeliveryStateAndUnansweredControlsSurviveAReopen) {
  testing::TempDir tmp;
  const auto path = tmp.path() / "ems.db";
  {
    EmsStore store(path, SqliteDatabase::Mode::kCreate);
    EXPECT_FALSE(store.delivery("r1", "m1"));
    // Binary bitmaps with zero bytes come back exactly, inside a caller's transaction too.
    SqliteTransaction outer(store.db());
    store.put_delivery("r1", "m1", {1003, std::string("\x0d\0\0\0\0\0\0\0", 8)});
    store.put_member_metrics("r1", "m1", "aggregate", "{}", "2026-11-22T00:00:00.000Z");
    outer.commit();
    store.put_control({"c1", "r1", "m1", "store-surplus", 5, "t", "ISSUED", "t", ""}, "payload 1");
    store.put_control({"c2", "r1", "m1", "store-surplus", 6, "t", "SUCCESS", "t", ""}, "payload 2");
    store.put_control({"c3", "r1", "m2", "store-surplus", 7, "t", "ISSUED", "t", ""}, "payload 3");
  }
  EmsStore store(path, SqliteDatabase::Mode::kReadWrite);
  const auto d = store.delivery("r1", "m1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->highest, 1003U);
  EXPECT_EQ(d->bitmap, std::string("\x0d\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(store.count("metrics"), 1);
  const auto open = store.unconfirmed_controls("r1", "m1");
  ASSERT_EQ(open.size(), 1U);
  EXPECT_EQ(open[0].control_id, "c1");
  EXPECT_EQ(open[0].payload, "payload 1");
  EXPECT_EQ(store.members_with_unconfirmed_controls().size(), 2U);
}

TEST(EmsStoreTest, AFailedWriteRollsBackTheDeliveryStateWithIt) {
  testing::TempDir tmp;
  EmsStore store(tmp.path() / "ems.db", SqliteDatabase::Mode::kCreate);
  {
    SqliteTransaction tx(store.db());
    store.put_delivery("r1", "m1", {7, std::string("\x01\0\0\0\0\0\0\0", 8)});
    store.put_member_metrics("r1", "m1", "aggregate", "{}", "t");  // a nested transaction
  }                                                                // not committed
  EXPECT_FALSE(store.delivery("r1", "m1"));
  EXPECT_EQ(store.count("metrics"), 0);
}

}  // namespace
}  // namespace recmesh::ems
