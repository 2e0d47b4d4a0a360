#include "secmgr/registry.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace recmesh::secmgr {
namespace {

TEST(RegistryTest, KeepsRecordsAcrossReopening) {
  testing::TempDir dir;
  const auto path = dir / "secmgr.db";
  {
    Registry registry(path);
    registry.add_rec("r1", 10);
    registry.add_member("r1", "m1", 11);
    registry.add_identity({"rec_r1_m1_pv", "device", "r1", "m1", "pv", "active", 12});
    registry.add_identity({"bridge_r1_m1", "bridge", "r1", "m1", "", "active", 12});
    registry.add_identity({"ems_engine", "service", "", "", "engine", "active", 12});
    BrokerRecord broker;
    broker.id = "broker_r1_m1";
    broker.role = "local";
    broker.rec = "r1";
    broker.member = "m1";
    broker.host = "127.0.0.1";
    broker.port = 8885;
    broker.connector = "guard";
    registry.add_broker(broker);
    RuleRecord rule;
    rule.identity = "rec_r1_m1_pv";
    rule.broker = "*";
    rule.permission = "write";
    rule.topic = "/device/pv/extra";
    EXPECT_EQ(registry.add_rule(rule), 1);
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  Registry registry(path);
  EXPECT_EQ(registry.recs().size(), 1U);
  EXPECT_EQ(registry.identities("r1", "m1").size(), 2U);
  EXPECT_EQ(registry.identities({}, {}, "service").size(), 1U);
  EXPECT_EQ(registry.broker("broker_r1_m1")->port, 8885);
  EXPECT_EQ(registry.rules("rec_r1_m1_pv").size(), 1U);
  registry.revoke_identities_of("r1", "m1");
  EXPECT_EQ(registry.identity("rec_r1_m1_pv")->status, kRevoked);
  EXPECT_EQ(registry.identity("ems_engine")->status, kActive);
  EXPECT_TRUE(registry.remove_rule(1));
  EXPECT_FALSE(registry.remove_rule(1));
}

TEST(RegistryTest, AuditEntriesComeBackInOrderAndFiltered) {
  testing::TempDir dir;
  Registry registry(dir / "secmgr.db");
  for (int i = 0; i < 5; ++i) {
    AuditEntry entry;
    entry.at_ms = i;
    entry.actor = i % 2 == 0 ? "ems_engine" : "(unauthenticated)";
    entry.outcome = i % 2 == 0 ? "ok" : "refused";
    entry.status = i % 2 == 0 ? 201 : 401;
    registry.append_audit(entry);
  }
  AuditQuery query;
  EXPECT_EQ(registry.audit(query).size(), 5U);
  query.outcome = "refused";
  EXPECT_EQ(registry.audit(query).size(), 2U);
  query = {};
  query.after_id = 3;
  query.limit = 1;
  const auto entries = registry.audit(query);
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].id, 4);
}

}  // namespace
}  // namespace recmesh::secmgr
