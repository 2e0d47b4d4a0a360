#include "sim/scenario.hpp"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh::sim {
namespace {

const std::string kCommunity =
    "recs:\n"
    "  - id: sun\n"
    "    members:\n"
    "      - id: alice\n"
    "        devices: {pv: 2, battery: 1, smart_meter: 1}\n"
    "    generate: {count: 3, prefix: m, devices: {passive_load: 1}}\n";

std::string error_of(const std::string& yaml) {
  try {
    parse_scenario(yaml, "s.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Scenario, ParsesEveryKey) {
  const Scenario s = parse_scenario(
      "name: cut\nseed: 9\nduration_s: 120\n"
      "rates: {metrics_interval_ms: 1000, aggregate_interval_ms: 3000, device_timeout_ms: 500}\n"
      "physics: {start_hour: 8, time_scale: 60, cloudiness: 0.5, crash_fraction: 0.1}\n"
      "ems: {policy_period_ms: 2000, control_timeout_ms: 9000, surplus_threshold_w: 50,\n"
      "      deficit_threshold_w: 70, max_soc_percent: 90, min_soc_percent: 10}\n"
      "supervision: {restart: always, max_restarts: 2, restart_delay_ms: 10,\n"
      "              startup_timeout_ms: 5000}\n" +
          kCommunity +
          "timeline:\n"
          "  - {at_s: 30, action: restore-backbone, member: alice}\n"
          "  - {at_s: 10, action: cut-backbone, member: alice}\n"
          "  - {at_s: 40, action: slow-backbone, member: m01, delay_ms: 250}\n"
          "  - {at_s: 50, action: kill, component: ems}\n"
          "  - {at_s: 51, action: restart, component: gateway, member: m02}\n"
          "  - {at_s: 52, action: attack, attack: publish-flood, member: m03, rate_per_s: 10,\n"
          "     duration_s: 2}\n"
          "  - {at_s: 53, action: attack, attack: replay-control}\n",
      "s.yaml");
  EXPECT_EQ(s.name, "cut");
  EXPECT_EQ(s.seed, 9U);
  EXPECT_EQ(s.duration_s, 120);
  EXPECT_EQ(s.metrics_interval_ms, 1000);
  EXPECT_EQ(s.aggregate_interval_ms, 3000);
  EXPECT_EQ(s.device_timeout_ms, 500);
  EXPECT_EQ(s.time_scale, 60);
  EXPECT_EQ(s.policy_period_ms, 2000);
  EXPECT_EQ(s.min_soc_percent, 10);
  EXPECT_EQ(s.restart, RestartPolicy::kAlways);
  EXPECT_EQ(s.max_restarts, 2);
  ASSERT_EQ(s.recs.size(), 1U);
  EXPECT_EQ(s.member_count(), 4U);
  EXPECT_EQ(s.device_count(), 7U);
  ASSERT_NE(s.find_member("sun", "m03"), nullptr);
  EXPECT_EQ(s.find_member("sun", "m04"), nullptr);
  const auto devices = s.find_member("sun", "alice")->device_list();
  ASSERT_EQ(devices.size(), 4U);
  EXPECT_EQ(devices[0].id, "pv1");
  EXPECT_EQ(devices[1].id, "pv2");
  EXPECT_EQ(devices[2].kind, protocol::DeviceKind::kAccumulator);
  EXPECT_EQ(devices[3].id, "meter");
  // Sorted by time; rec filled in from the only REC.
  ASSERT_EQ(s.timeline.size(), 7U);
  EXPECT_EQ(s.timeline[0].action, FaultAction::kCutBackbone);
  EXPECT_EQ(s.timeline[0].rec, "sun");
  EXPECT_EQ(s.timeline[1].action, FaultAction::kRestoreBackbone);
  EXPECT_EQ(s.timeline[2].delay_ms, 250);
  EXPECT_EQ(s.timeline[3].component, ComponentKind::kEms);
  EXPECT_EQ(s.timeline[5].attack, AttackKind::kPublishFlood);
  EXPECT_EQ(s.timeline[5].rate_per_s, 10);
  EXPECT_EQ(s.timeline[6].member, "");
}

TEST(Scenario, DefaultsMatchTheThesisRates) {
  const Scenario s = parse_scenario(kCommunity, "s.yaml");
  EXPECT_EQ(s.metrics_interval_ms, 5000);
  EXPECT_EQ(s.aggregate_interval_ms, 30000);
  EXPECT_EQ(s.duration_s, 0);
  EXPECT_EQ(s.restart, RestartPolicy::kOnFailure);
  EXPECT_TRUE(s.timeline.empty());
}

TEST(Scenario, RejectsUnknownKeysWithFileAndLine) {
  EXPECT_EQ(error_of("nmae: x\n" + kCommunity),
            "s.yaml:1: nmae: unknown key (allowed: duration_s, ems, name, physics, rates, recs, "
            "seed, supervision, timeline)");
  EXPECT_EQ(error_of(kCommunity + "ems: {policy: 1}\n"),
            "s.yaml:7: ems.policy: unknown key (allowed: control_timeout_ms, deficit_threshold_w, "
            "max_soc_percent, min_soc_percent, policy_period_ms, surplus_threshold_w)");
  EXPECT_NE(error_of("recs:\n  - id: sun\n    members:\n      - id: a\n        devices: {pv: 1, "
                     "wind: 2}\n")
                .find("s.yaml:5: recs[0].members[0].devices.wind: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of(kCommunity + "timeline:\n  - {at_s: 1, action: kill, component: ems, "
                                  "delay_ms: 5}\n")
                .find("s.yaml:8: timeline[0].delay_ms: not used by action kill"),
            std::string::npos);
}

TEST(Scenario, RejectsImpossibleValues) {
  EXPECT_NE(error_of("duration_s: -1\n" + kCommunity).find("s.yaml:1: duration_s: -1 is outside"),
            std::string::npos);
  EXPECT_NE(error_of("rates: {metrics_interval_ms: 10}\n" + kCommunity)
                .find("rates.metrics_interval_ms: 10 is outside 50"),
            std::string::npos);
  EXPECT_NE(
      error_of("rates: {metrics_interval_ms: 5000, aggregate_interval_ms: 1000}\n" + kCommunity)
          .find("aggregate_interval_ms: must not be shorter"),
      std::string::npos);
  EXPECT_NE(error_of("ems: {min_soc_percent: 90, max_soc_percent: 80}\n" + kCommunity)
                .find("ems.min_soc_percent: must be below max_soc_percent"),
            std::string::npos);
  EXPECT_NE(error_of("supervision: {restart: sometimes}\n" + kCommunity)
                .find("expected one of never, on-failure, always"),
            std::string::npos);
  EXPECT_NE(error_of("recs:\n  - id: Sun\n    members: []\n").find("recs[0].id: expected an ID"),
            std::string::npos);
  EXPECT_NE(error_of("recs:\n  - id: sun\n    members:\n      - id: a\n        devices: {}\n")
                .find("a member needs at least one device"),
            std::string::npos);
  EXPECT_NE(error_of("recs:\n  - id: sun\n    members:\n      - id: a\n        devices: "
                     "{smart_meter: 2}\n")
                .find("smart_meter: 2 is outside 0 .. 1"),
            std::string::npos);
  EXPECT_NE(error_of("recs:\n  - id: sun\n    members:\n      - id: a\n        devices: "
                     "{pv: 1000, battery: 1}\n")
                .find("1001 devices; a member registers at most 1000"),
            std::string::npos);
  EXPECT_NE(error_of("recs:\n  - id: sun\n    generate: {count: 20000, devices: {pv: 1}}\n")
                .find("count: 20000 is outside"),
            std::string::npos);
  EXPECT_NE(error_of("recs: []\n").find("expected a non-empty list of RECs"), std::string::npos);
  EXPECT_NE(error_of("name: x\n").find("recs: required"), std::string::npos);
  EXPECT_NE(error_of("recs: [\n").find("s.yaml:"), std::string::npos);  // malformed YAML
}

TEST(Scenario, RejectsDuplicateIds) {
  EXPECT_NE(error_of("recs:\n  - id: sun\n    members:\n      - {id: m01, devices: {pv: 1}}\n"
                     "    generate: {count: 2, devices: {pv: 1}}\n")
                .find("member m01 is defined twice"),
            std::string::npos);
  EXPECT_NE(error_of("recs:\n  - id: sun\n    generate: {count: 1, devices: {pv: 1}}\n"
                     "  - id: sun\n    generate: {count: 1, devices: {pv: 1}}\n")
                .find("REC defined twice"),
            std::string::npos);
}

TEST(Scenario, RejectsInconsistentTimelines) {
  const auto timeline = [](const std::string& events) {
    return error_of("duration_s: 100\n" + kCommunity + "timeline:\n" + events);
  };
  EXPECT_NE(timeline("  - {at_s: 100, action: kill, component: ems}\n")
                .find("s.yaml:9: timeline.at_s: 100 s is not before the end of the run"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: cut-backbone, member: zed}\n")
                .find("no member sun/zed in the scenario"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: restore-backbone, member: alice}\n")
                .find("the backbone of sun/alice is not cut"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: cut-backbone, member: alice}\n"
                     "  - {at_s: 2, action: cut-backbone, member: alice}\n")
                .find("s.yaml:10: timeline.action: the backbone of sun/alice is already cut"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: kill}\n").find("timeline[0].component: required"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: kill, component: gateway}\n")
                .find("timeline.member: required"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: kill, component: ems, member: alice}\n")
                .find("ems is not a member's component"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: attack}\n").find("timeline[0].attack: required"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: attack, attack: foreign-ca}\n")
                .find("timeline.member: required"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: attack, attack: teleport, member: alice}\n")
                .find("expected one of publish-flood, foreign-ca"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: explode}\n").find("expected one of kill, stop"),
            std::string::npos);
  EXPECT_NE(timeline("  - {action: kill, component: ems}\n").find("timeline[0].at_s: required"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: slow-backbone, member: alice, delay_ms: 70000}\n")
                .find("delay_ms: 70000 is outside 0 .. 60000"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: crash-device, member: alice}\n")
                .find("timeline[0].device: required for crash-device"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: crash-device, member: alice, device: pv9}\n")
                .find("s.yaml:9: timeline.device: sun/alice has no device pv9"),
            std::string::npos);
  EXPECT_NE(timeline("  - {at_s: 1, action: crash-devices, member: alice, device: pv1}\n")
                .find("timeline[0].device: not used by action crash-devices"),
            std::string::npos);
  EXPECT_EQ(timeline("  - {at_s: 1, action: crash-device, member: alice, device: pv2}\n"), "");
  // A cut that is never restored is allowed.
  EXPECT_EQ(timeline("  - {at_s: 1, action: cut-backbone, member: alice}\n"), "");
}

TEST(Scenario, DemoIsTenMembersOfFiveDevices) {
  const Scenario s = demo_scenario();
  EXPECT_EQ(s.member_count(), 10U);
  EXPECT_EQ(s.device_count(), 50U);
  const auto devices = s.members().front()->device_list();
  ASSERT_EQ(devices.size(), 5U);
  EXPECT_EQ(s.recs.front().members.back().id, "m10");
}

TEST(Scenario, ExamplesParse) {
  const std::filesystem::path examples = std::filesystem::path(RECMESH_SOURCE_DIR) / "examples";
  int parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples)) {
    if (entry.path().extension() == ".yaml") {
      EXPECT_NO_THROW(load_scenario(entry.path())) << entry.path();
      ++parsed;
    }
  }
  EXPECT_GE(parsed, 3);
}

}  // namespace
}  // namespace recmesh::sim
