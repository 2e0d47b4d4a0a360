// `recmesh ctl` end to end, as an operator runs it: `recmesh ems`, `recmesh gateway` and
// `recmesh device` as processes on a central and a bridged local Mosquitto, end-to-end protection
// on (the default). ctl hands its requests to the engine through the EMS database; the engine
// seals them for the member's session, the gateway opens and executes them, and ctl watches them
// to their final state in the database.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"

#include "child_process.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    community_.service("engine");
    community_.gateway();
    community_.issue_devices("m1", {"pv1", "bat1", "ev1"});
    central_port_ = community_.start_central().ems_port;
    local_port_ = community_.start_local("m1", true).member_port;
    write_configs();
    ems_ = start("ems", ems_config_);
    gateway_ = start("gateway", gateway_config_);
    devices_ = start("device", device_config_);
  }

  void TearDown() override {
    // Devices first: the gateway then stops with nothing left in flight.
    devices_.reset();
    gateway_.reset();
    ems_.reset();
  }

  void write_configs() {
    const std::string pki = community_.pki_dir().string();
    std::ofstream(ems_config_) << "broker:\n  port: " << central_port_ << "\npki_dir: " << pki
                               << "\ndatabase: " << (tmp_ / "ems.db").string()
                               << "\npolicy_period_ms: 0\ncontrol_timeout_ms: 20000\n";
    std::ofstream(gateway_config_)
        << "broker:\n  port: " << local_port_ << "\npki_dir: " << pki
        << "\nrec: r1\nmember: m1\ndatabase: " << (tmp_ / "gateway.db").string()
        << "\nmetrics_interval_ms: 500\ndevice_timeout_ms: 5000\n"
        << "devices:\n  - {id: pv1, kind: generator}\n  - {id: bat1, kind: accumulator}\n"
        << "  - {id: ev1, kind: load}\n";
    std::ofstream(device_config_)
        << "broker:\n  port: " << local_port_ << "\npki_dir: " << pki
        << "\nrec: r1\nmember: m1\nmetrics_interval_ms: 200\ncrash_fraction: 0\n"
        << "devices:\n  - {id: pv1, kind: generator}\n  - {id: bat1, kind: accumulator}\n"
        << "  - {id: ev1, kind: load, initially_on: false}\n";
  }

  std::unique_ptr<testing::ChildProcess> start(const std::string& daemon, const fs::path& config) {
    return std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{testing::recmesh_binary(), daemon, "--config", config.string()},
        tmp_ / (daemon + ".log"));
  }

  testing::CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"ctl", "--config", ems_config_.string(), "--json"});
    return testing::run_recmesh(args);
  }

  std::string logs() const {
    std::string out;
    for (const std::string name : {"ems", "gateway", "device"}) {
      out += "--- " + name + ".log\n" + read_file(tmp_ / (name + ".log"));
    }
    return out;
  }

  // Waits until the engine stored m1's aggregate: the e2e session is up and devices report.
  bool member_reported() {
    const auto deadline = Clock::now() + 40s;
    while (Clock::now() < deadline) {
      const auto members = ctl({"members"});
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
  testing::TestCommunity community_{tmp_.path()};
  int central_port_ = 0;
  int local_port_ = 0;
  fs::path ems_config_ = tmp_ / "ems.yaml";
  fs::path gateway_config_ = tmp_ / "gateway.yaml";
  fs::path device_config_ = tmp_ / "device.yaml";
  std::unique_ptr<testing::ChildProcess> ems_, gateway_, devices_;
};

TEST_F(CtlTest, MemberControlThroughTheEngineSucceedsAndIsWatchedToTheEnd) {
  ASSERT_TRUE(member_reported()) << logs();

  const auto sent = ctl({"control", "--rec", "r1", "--member", "m1", "--type", "activate-load",
                         "--device", "ev1", "--params", R"({"power_w":3000})"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err << sent.out << logs();
  const std::string id = nlohmann::json::parse(sent.out)["control_id"];

  const auto watched = ctl({"watch", id, "--timeout", "30"});
  ASSERT_EQ(watched.exit_code, 0) << watched.err << watched.out << logs();
  const auto json = nlohmann::json::parse(watched.out);
  EXPECT_EQ(json["status"], "SUCCESS");
  EXPECT_EQ(json["type"], "activate-load");
  const auto& outcomes = json["last_response"]["details"]["per_device"];
  ASSERT_EQ(outcomes.size(), 1U) << json.dump(2);
  EXPECT_EQ(outcomes[0]["device_id"], "ev1");
  EXPECT_EQ(outcomes[0]["status"], "SUCCESS");

  // The engine tracked it like its own: it is in `ctl controls` as SUCCESS.
  const auto controls = ctl({"controls"});
  ASSERT_EQ(controls.exit_code, 0) << controls.err;
  bool listed = false;
  for (const auto& row : nlohmann::json::parse(controls.out)) {
    listed = listed || (row["control_id"] == id && row["state"] == "SUCCESS");
  }
  EXPECT_TRUE(listed) << controls.out;
}

TEST_F(CtlTest, DiagnosticIsSignedByTheEngineAndTheReportVerified) {
  ASSERT_TRUE(member_reported()) << logs();
  const auto result =
      ctl({"diagnostic", "--rec", "r1", "--member", "m1", "--device", "pv1", "--wait"});
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out << logs();
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "SUCCESS");
  EXPECT_EQ(json["diagnostic"]["signer"], "rec_r1_m1_pv1");
  EXPECT_EQ(json["diagnostic"]["report"]["command_id"], json["command_id"]);
  EXPECT_EQ(json["diagnostic"]["report"]["trigger"], "command");
}

TEST_F(CtlTest, WithoutTheEngineNothingIsSentAndCtlSaysSo) {
  ASSERT_TRUE(member_reported()) << logs();
  ems_->stop();
  const auto result = ctl({"control", "--rec", "r1", "--member", "m1", "--type", "store-surplus",
                           "--take-timeout", "1"});
  EXPECT_EQ(result.exit_code, 3) << result.err << result.out;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["status"], "EXPIRED");
  EXPECT_NE(json["error"].get<std::string>().find("recmesh ems"), std::string::npos);

  // Started again, the engine leaves the expired request alone.
  ems_ = start("ems", ems_config_);
  std::this_thread::sleep_for(2s);
  const auto controls = ctl({"controls"});
  ASSERT_EQ(controls.exit_code, 0) << controls.err;
  EXPECT_TRUE(nlohmann::json::parse(controls.out).empty()) << controls.out;
}

}  // namespace
}  // namespace recmesh
