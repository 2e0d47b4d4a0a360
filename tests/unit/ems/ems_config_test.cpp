#include "ems/ems_config.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

#include "ems/ems_store.hpp"
#include "temp_dir.hpp"

namespace recmesh::ems {
namespace {

using namespace std::chrono_literals;

std::string error_of(std::string_view yaml) {
  try {
    (void)parse_ems_config(yaml, "ems.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(EmsConfigTest, ReadsEveryKeyAndFillsFilesFromThePki) {
  EmsConfig c = parse_ems_config(
      "broker:\n  host: central\n  port: 9883\npki_dir: pki\ndatabase: ems.db\n"
      "policy_period_ms: 500\ncontrol_timeout_ms: 2000\ncontrol_ttl_ms: 4000\n"
      "surplus_threshold_w: 100\ndeficit_threshold_w: 200\nmax_soc_percent: 90\n"
      "min_soc_percent: 10\nretry_policy:\n  max_retries: 3\n  backoff_initial_ms: 50\n"
      "  backoff_exponential: false\n",
      "ems.yaml", "/etc/recmesh");
  c.resolve_and_validate();
  EXPECT_EQ(c.broker_host, "central");
  EXPECT_EQ(c.broker_port, 9883);
  EXPECT_EQ(c.database, "/etc/recmesh/ems.db");
  EXPECT_EQ(c.policy_period, 500ms);
  EXPECT_EQ(c.control_timeout, 2000ms);
  EXPECT_EQ(c.control_ttl, 4000ms);
  EXPECT_EQ(c.surplus_threshold_w, 100);
  EXPECT_EQ(c.deficit_threshold_w, 200);
  EXPECT_EQ(c.retry_policy, (protocol::RetryPolicy{3, 50, false}));
  EXPECT_EQ(c.certfile, "/etc/recmesh/pki/issued/ems_engine/chain.pem");
  EXPECT_EQ(c.keyfile, "/etc/recmesh/pki/issued/ems_engine/key.pem");
  EXPECT_EQ(c.cafile, "/etc/recmesh/pki/ca/ems/chain.pem");
}

TEST(EmsConfigTest, RefusalsNameFileLineAndKey) {
  EXPECT_EQ(error_of("broker:\n  prot: 1\n"),
            "ems.yaml:2: broker.prot: unknown key (allowed: host, port)");
  EXPECT_EQ(error_of("policy_period_ms: 5\n"),
            "ems.yaml:1: policy_period_ms: expected 0 (off) or 100 .. 86400000");
  EXPECT_EQ(error_of("\nretry_policy:\n  max_retries: 17\n"),
            "ems.yaml:3: retry_policy.max_retries: 17 is outside 0 .. 16");
  EXPECT_EQ(error_of("surplus_threshold_w: lots\n"),
            "ems.yaml:1: surplus_threshold_w: expected a number");
  EmsConfig no_files = parse_ems_config("database: x.db\n", "ems.yaml");
  EXPECT_THROW(no_files.resolve_and_validate(), Error);
}

TEST(EmsStoreTest, SequencesStayMonotonicAcrossClockAndReopen) {
  testing::TempDir tmp;
  const auto path = tmp / "ems.db";
  {
    EmsStore store(path, SqliteDatabase::Mode::kCreate);
    EXPECT_EQ(store.next_sequence(1000), 1000U);
    EXPECT_EQ(store.next_sequence(1000), 1001U);
    EXPECT_EQ(store.next_sequence(5), 1002U);  // the clock went back
  }
  EmsStore reopened(path, SqliteDatabase::Mode::kCreate);
  EXPECT_EQ(reopened.next_sequence(0), 1003U);
  EXPECT_EQ(reopened.next_sequence(2000), 2000U);
}

TEST(EmsStoreTest, StatusAndInfoUpdateOneComponentRow) {
  testing::TempDir tmp;
  EmsStore store(tmp / "ems.db", SqliteDatabase::Mode::kCreate);
  store.put_status("r1", "m1", "device/pv1", "online", std::nullopt, "t1");
  store.put_status("r1", "m1", "device/pv1", std::nullopt, R"({"x":1})", "t2");
  const auto rows = store.components();
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].status, "online");
  EXPECT_EQ(rows[0].info, R"({"x":1})");
  EXPECT_EQ(rows[0].updated_at, "t2");
}

TEST(EmsConfigTest, LoggingBlockIsSharedWithTheOtherDaemons) {
  const EmsConfig c = parse_ems_config("logging:\n  level: debug\n  format: json\n", "ems.yaml");
  EXPECT_EQ(c.logging.level, log::Level::kDebug);
  EXPECT_EQ(c.logging.format, log::Format::kJson);
  EXPECT_EQ(parse_ems_config("{}", "ems.yaml").logging.format, log::Format::kHuman);
  EXPECT_EQ(error_of("logging:\n  format: xml\n"),
            "ems.yaml:2: logging.format: expected human or json");
  EXPECT_EQ(error_of("logging:\n  colour: red\n"),
            "ems.yaml:2: logging.colour: unknown key (allowed: format, level)");
  EXPECT_EQ(error_of("broker:\n  host: ''\n"),
            "ems.yaml:2: broker.host: expected a host name or address");
}

}  // namespace
}  // namespace recmesh::ems
