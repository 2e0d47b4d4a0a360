// Fault and attack timelines of `recmesh sim run`, end to end with real processes.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/core/sqlite_database.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"
#include "recmesh/protocol/timestamp.hpp"

#include "child_process.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

class SimFaultsTest : public ::testing::Test {
 protected:
  SimFaultsTest() {
    fs::permissions(tmp_.path(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
  }

  // Runs the scenario to its end; returns the report.
  Json run(const std::string& yaml) {
    const fs::path scenario = tmp_ / "scenario.yaml";
    std::ofstream(scenario) << yaml;
    const auto result = testing::run_command(
        {testing::recmesh_binary(), "sim", "run", scenario.string(), "--dir", dir().string()}, {},
        240s);
    EXPECT_EQ(result.exit_code, 0)
        << result.err.substr(result.err.size() > 3000 ? result.err.size() - 3000 : 0);
    return Json::parse(read_file(dir() / "report.json"), nullptr, false);
  }
  fs::path dir() const { return tmp_ / "run"; }

  testing::TempDir tmp_;
};

const Json* fault(const Json& report, const std::string& what) {
  for (const auto& f : report["faults"]) {
    if (f["what"].get<std::string>().find(what) != std::string::npos) {
      return &f;
    }
  }
  return nullptr;
}

TEST_F(SimFaultsTest, ABackboneCutIsBufferedAndNothingIsLostWhenTheLinkReturns) {
  const Json report =
      run("name: cut\nduration_s: 45\n"
          "rates: {metrics_interval_ms: 1000, aggregate_interval_ms: 2000}\n"
          "ems: {policy_period_ms: 0}\n"
          "recs:\n  - id: sun\n    members:\n"
          "      - {id: alice, devices: {pv: 1, battery: 1, passive_load: 1}}\n"
          "      - {id: bob, devices: {pv: 1, passive_load: 1}}\n"
          "timeline:\n"
          "  - {at_s: 8, action: cut-backbone, member: alice}\n"
          "  - {at_s: 28, action: restore-backbone, member: alice}\n");
  ASSERT_TRUE(report.is_object());
  ASSERT_NE(fault(report, "cut-backbone sun/alice"), nullptr);
  ASSERT_NE(fault(report, "restore-backbone sun/alice"), nullptr);
  EXPECT_GE(report["metrics_published"].get<int>(), 30);
  EXPECT_TRUE(report["crashes"].empty()) << report["crashes"].dump(1);
  // The member's bridge held its aggregates in its store while the link was down and delivered
  // every one of them when it came back (repeats are not counted twice).
  EXPECT_EQ(report["lost_qos1"], 0) << report["metrics_published"] << " published";
  EXPECT_EQ(report["metrics_received_by_ems"], report["metrics_published"]);

  // Buffering: alice's aggregates of the cut arrived late, after the link came back; bob's never.
  SqliteDatabase db(dir() / "ems" / "ems.db", SqliteDatabase::Mode::kReadOnly);
  auto rows =
      db.prepare("SELECT member, received_at, payload FROM metrics WHERE metric = 'aggregate'");
  std::map<std::string, double> worst_delay_s;
  while (rows.step()) {
    const auto metrics = protocol::MemberMetrics::decode(rows.column_text(2));
    const auto received = protocol::parse_timestamp(rows.column_text(1));
    ASSERT_TRUE(metrics && received);
    const double delay = std::chrono::duration<double>(*received - metrics->window_end).count();
    auto& worst = worst_delay_s[rows.column_text(0)];
    worst = std::max(worst, delay);
  }
  EXPECT_GT(worst_delay_s["alice"], 10.0) << "nothing was held back during the cut";
  // Bob's link was never cut: whatever the machine's load adds to every delay, his aggregates are
  // not held for the length of the cut.
  EXPECT_LT(worst_delay_s["bob"], worst_delay_s["alice"] / 2);
}

// Every kind of component is killed or restarted once, and one device crashes on its own: the
// community comes back each time, and no aggregate is lost on the way.
TEST_F(SimFaultsTest, EveryComponentSurvivesKillsAndRestartsAndOneDeviceCrashes) {
  const Json report =
      run("name: components\nduration_s: 44\n"
          "rates: {metrics_interval_ms: 1000, aggregate_interval_ms: 2000}\n"
          "ems: {policy_period_ms: 0}\n"
          "supervision: {restart: on-failure, restart_delay_ms: 300}\n"
          "recs:\n  - id: sun\n    members:\n"
          "      - {id: alice, devices: {pv: 1, battery: 1, passive_load: 1}}\n"
          "      - {id: bob, devices: {pv: 1, passive_load: 1}}\n"
          "timeline:\n"
          "  - {at_s: 3, action: crash-device, member: alice, device: pv1}\n"
          "  - {at_s: 5, action: kill, component: bridge, member: alice}\n"
          "  - {at_s: 8, action: restart, component: bridge, member: bob}\n"
          "  - {at_s: 11, action: restart, component: local-broker, member: alice}\n"
          "  - {at_s: 15, action: kill, component: ems}\n"
          "  - {at_s: 19, action: restart, component: central-broker}\n"
          "  - {at_s: 24, action: restart, component: gateway, member: bob}\n"
          "  - {at_s: 27, action: kill, component: devices, member: bob}\n"
          "  - {at_s: 30, action: stop, component: bridge, member: bob}\n"
          "  - {at_s: 33, action: restart, component: bridge, member: bob}\n");
  ASSERT_TRUE(report.is_object());
  // Each process the timeline hit ran again under a new PID; nothing exited on its own.
  EXPECT_TRUE(report["crashes"].empty()) << report["crashes"].dump(1);
  std::map<std::string, std::size_t> runs;
  for (const auto& process : report["processes"]) {
    runs[process["name"].get<std::string>()] = process["pids"].size();
  }
  for (const char* name : {"sun/alice/bridge", "sun/alice/local-broker", "ems", "central-broker",
                           "sun/bob/gateway", "sun/bob/devices"}) {
    EXPECT_EQ(runs[name], 2U) << name;
  }
  EXPECT_EQ(runs["sun/bob/bridge"], 3U);
  EXPECT_EQ(runs["sun/alice/gateway"], 1U);
  for (const char* what :
       {"kill bridge sun/alice", "restart local-broker sun/alice", "kill ems",
        "restart central-broker", "stop bridge sun/bob", "crash-device sun/alice/pv1"}) {
    const Json* f = fault(report, what);
    ASSERT_NE(f, nullptr) << what;
    EXPECT_NE((*f)["outcome"].get<std::string>().find("(pid "), std::string::npos) << f->dump();
  }
  EXPECT_EQ(report["members_online"], 2);
  // Every bridge keeps what it took until the central broker has it, the brokers keep the
  // bridges' and the EMS engine's sessions, and the gateway keeps each aggregate until the
  // engine confirms it stored it, re-sealing it after a restart of either end
  // (docs/protocol/e2e.md §6.1): no aggregate is lost, none is counted twice.
  EXPECT_GE(report["metrics_published"].get<int>(), 30);
  EXPECT_EQ(report["lost_qos1"], 0) << report["metrics_published"] << " published, "
                                    << report["metrics_received_by_ems"] << " received";
  EXPECT_EQ(report["metrics_received_by_ems"], report["metrics_published"]);
  EXPECT_EQ(report["metrics_duplicates"], 0);

  // The crashed device says so and stays down (nothing rebooted it); the others are healthy.
  SqliteDatabase db(dir() / "ems" / "ems.db", SqliteDatabase::Mode::kReadOnly);
  auto rows =
      db.prepare("SELECT member, component, info FROM components WHERE component LIKE 'device/%'");
  std::map<std::string, std::string> info;
  while (rows.step()) {
    info[rows.column_text(0) + "/" + rows.column_text(1)] = rows.column_text(2);
  }
  EXPECT_NE(info["alice/device/pv1"].find("UNHEALTHY"), std::string::npos)
      << info["alice/device/pv1"];
  EXPECT_NE(info["alice/device/battery1"].find("HEALTHY"), std::string::npos);
  EXPECT_EQ(info["alice/device/battery1"].find("UNHEALTHY"), std::string::npos);
  EXPECT_EQ(info["bob/device/pv1"].find("UNHEALTHY"), std::string::npos) << info["bob/device/pv1"];
}

TEST_F(SimFaultsTest, AttacksAreRunAndTheirOutcomesReported) {
  const Json report =
      run("name: attacks\nduration_s: 30\n"
          "rates: {metrics_interval_ms: 1000, aggregate_interval_ms: 2000}\n"
          "ems: {policy_period_ms: 2000, surplus_threshold_w: 1, deficit_threshold_w: 1}\n"
          "recs:\n  - id: sun\n    generate: {count: 2, devices: {pv: 1, battery: 1, "
          "passive_load: 1}}\n"
          "timeline:\n"
          "  - {at_s: 2, action: attack, attack: foreign-ca, member: m01}\n"
          "  - {at_s: 4, action: attack, attack: colliding-cn, member: m02}\n"
          "  - {at_s: 12, action: attack, attack: replay-control}\n"
          "  - {at_s: 16, action: attack, attack: publish-flood, member: m01, rate_per_s: 100,\n"
          "     duration_s: 2}\n"
          "  - {at_s: 20, action: attack, attack: retained-spam, member: m02, count: 20}\n");
  ASSERT_TRUE(report.is_object());
  const Json* foreign = fault(report, "foreign-ca");
  ASSERT_NE(foreign, nullptr);
  EXPECT_TRUE((*foreign)["refused"].get<bool>()) << foreign->dump();
  const Json* colliding = fault(report, "colliding-cn");
  ASSERT_NE(colliding, nullptr);
  EXPECT_TRUE((*colliding)["refused"].get<bool>()) << colliding->dump();
  const Json* replay = fault(report, "replay-control");
  ASSERT_NE(replay, nullptr);
  EXPECT_TRUE((*replay)["refused"].get<bool>()) << replay->dump();
  EXPECT_NE((*replay)["outcome"].get<std::string>().find("not executed again"), std::string::npos);
  // An insider's flood and spam hold certificates of the member's CA and a grant for their
  // topics: recmesh-guard's device quota (20 publishes/s, 8 retained topics, set through the
  // Security Manager) drops what exceeds it and reports each violation as a security event.
  const Json* flood = fault(report, "publish-flood");
  ASSERT_NE(flood, nullptr);
  EXPECT_TRUE((*flood)["refused"].get<bool>()) << flood->dump();
  EXPECT_NE((*flood)["outcome"].get<std::string>().find("publishes sent"), std::string::npos);
  EXPECT_EQ((*flood)["outcome"].get<std::string>().find(" 0 security events"), std::string::npos)
      << flood->dump();
  const Json* spam = fault(report, "retained-spam");
  ASSERT_NE(spam, nullptr);
  EXPECT_TRUE((*spam)["refused"].get<bool>()) << spam->dump();
  EXPECT_NE((*spam)["outcome"].get<std::string>().find("retained messages sent"),
            std::string::npos);
  EXPECT_EQ((*spam)["outcome"].get<std::string>().find(" 0 security events"), std::string::npos)
      << spam->dump();
  EXPECT_GT(report["security_events"].get<std::uint64_t>(), 0U);
  // The community kept running through it.
  EXPECT_EQ(report["members_online"], 2);
  EXPECT_TRUE(report["crashes"].empty()) << report["crashes"].dump(1);
}

}  // namespace
}  // namespace recmesh::sim
