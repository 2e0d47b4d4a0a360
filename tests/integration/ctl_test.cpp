// `recmesh ctl` end to end, as an operator runs it: `recmesh ems`, `recmesh gateway` and
// `recmesh device` as processes on a central and a bridged local Mosquitto, end-to-end protection
// on (the default). ctl hands its requests to the engine through the EMS database; the engine
// seals them for the member's session, the gateway opens and executes them, and ctl watches them
// to their final state in the database.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process_community.hpp"
#include "temp_dir.hpp"

namespace recmesh {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using Daemon = testing::ProcessCommunity::Daemon;

class CtlTest : public ::testing::Test {
 protected:
  // Waits until the engine stored m1's aggregate: the e2e session is up and devices report.
  bool member_reported() {
    const auto deadline = Clock::now() + 40s;
    while (Clock::now() < deadline) {
      const auto members = community_.ctl({"members"});
      if (members.exit_code == 0) {
        const auto listed = nlohmann::json::parse(members.out);
        if (listed.size() == 1 && listed[0]["metrics"].is_object() &&
            listed[0]["metrics"].value("production_w", 0.0) > 0) {
          return true;
        }
      }
      std::this_thread::sleep_for(300ms);
    }
    return false;
  }

  testing::TempDir tmp_;
  testing::ProcessCommunity community_{tmp_.path()};
};

TEST_F(CtlTest, MemberControlThroughTheEngineSucceedsAndIsWatchedToTheEnd) {
  ASSERT_TRUE(member_reported()) << community_.logs();

  const auto sent =
      community_.ctl({"control", "--rec", "r1", "--member", "m1", "--type", "activate-load",
                      "--device", "ev1", "--params", R"({"power_w":3000})"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err << sent.out << community_.logs();
  const std::string id = nlohmann::json::parse(sent.out)["control_id"];

  const auto watched = community_.ctl({"watch", id, "--timeout", "30"});
  ASSERT_EQ(watched.exit_code, 0) << watched.err << watched.out << community_.logs();
  const auto json = nlohmann::json::parse(watched.out);
  EXPECT_EQ(json["status"], "SUCCESS");
  EXPECT_EQ(json["type"], "activate-load");
  const auto& outcomes = json["last_response"]["details"]["per_device"];
  ASSERT_EQ(outcomes.size(), 1U) << json.dump(2);
  EXPECT_EQ(outcomes[0]["device_id"], "ev1");
  EXPECT_EQ(outcomes[0]["status"], "SUCCESS");

  // The engine tracked it like its own: it is in `ctl controls` as SUCCESS.
  const auto controls = community_.ctl({"controls"});
  ASSERT_EQ(controls.exit_code, 0) << controls.err;
  bool listed = false;
  for (const auto& row : nlohmann::json::parse(controls.out)) {
    listed = listed || (row["control_id"] == id && row["state"] == "SUCCESS");
  }
  EXPECT_TRUE(listed) << controls.out;
}

TEST_F(CtlTest, DiagnosticIsSignedByTheEngineAndTheReportVerified) {
  ASSERT_TRUE(member_reported()) << community_.logs();
  const auto result =
      community_.ctl({"diagnostic", "--rec", "r1", "--member", "m1", "--device", "pv1", "--wait"});
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out << community_.logs();
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "SUCCESS");
  EXPECT_EQ(json["diagnostic"]["signer"], "rec_r1_m1_pv1");
  EXPECT_EQ(json["diagnostic"]["report"]["command_id"], json["command_id"]);
  EXPECT_EQ(json["diagnostic"]["report"]["trigger"], "command");
}

TEST_F(CtlTest, WithoutTheEngineNothingIsSentAndCtlSaysSo) {
  ASSERT_TRUE(member_reported()) << community_.logs();
  community_.stop(Daemon::kEms);
  const auto result = community_.ctl({"control", "--rec", "r1", "--member", "m1", "--type",
                                      "store-surplus", "--take-timeout", "1"});
  EXPECT_EQ(result.exit_code, 3) << result.err << result.out;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "EXPIRED");
  EXPECT_NE(json["error"].get<std::string>().find("recmesh ems"), std::string::npos);

  // Started again, the engine leaves the expired request alone.
  community_.start(Daemon::kEms);
  std::this_thread::sleep_for(2s);
  const auto controls = community_.ctl({"controls"});
  ASSERT_EQ(controls.exit_code, 0) << controls.err;
  EXPECT_TRUE(nlohmann::json::parse(controls.out).empty()) << controls.out;
}

}  // namespace
}  // namespace recmesh
