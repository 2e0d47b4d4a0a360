// `recmesh broker-config --guard` and the plugin's start-up checks: a broker with a bad guard
// configuration does not start (fail closed).
#include <fstream>

#include "guard_harness.hpp"

namespace recmesh::guard_test {
namespace {

class GuardConfigTest : public GuardFixture {
 protected:
  testing::CommandResult render(const std::vector<std::string>& extra) {
    std::vector<std::string> args{
        "broker-config",      "--pki",         pki_dir().string(),      "--central", "--ems-port",
        std::to_string(ems_), "--bridge-port", std::to_string(bridge_), "--out",     dir_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_recmesh(args);
  }

  int ems_ = testing::free_tcp_port();
  int bridge_ = testing::free_tcp_port();
  fs::path dir_ = tmp_ / "central";
};

TEST_F(GuardConfigTest, RendersThePluginWithItsFiles) {
  const auto result = render({"--guard-plugin", guard_plugin_path()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("recmesh-guard"), std::string::npos);
  const std::string conf = read_file(dir_ / "mosquitto.conf");
  EXPECT_NE(conf.find("per_listener_settings false"), std::string::npos);
  EXPECT_EQ(conf.find("use_identity_as_username"), std::string::npos);
  EXPECT_NE(conf.find("plugin " + guard_plugin_path()), std::string::npos);
  EXPECT_NE(conf.find("plugin_opt_broker central"), std::string::npos);
  EXPECT_EQ(conf.find("plugin_opt_ca_member"), std::string::npos);
  for (const char* file : {"guard-ca_ems.pem", "guard-ca_bridge.pem", "guard-ems-crl.pem",
                           "guard-secmgr.pem", "guard.key"}) {
    EXPECT_TRUE(fs::exists(dir_ / file)) << file;
  }
  EXPECT_EQ(
      fs::status(dir_ / "guard.key").permissions() & (fs::perms::group_all | fs::perms::others_all),
      fs::perms::none);
  // Re-rendering keeps the key of the stored policy.
  const std::string key = read_file(dir_ / "guard.key");
  ASSERT_EQ(render({"--guard-plugin", guard_plugin_path()}).exit_code, 0);
  EXPECT_EQ(read_file(dir_ / "guard.key"), key);
  // Without the guard the configuration is the plain one.
  ASSERT_EQ(render({}).exit_code, 0);
  EXPECT_NE(read_file(dir_ / "mosquitto.conf").find("use_identity_as_username true"),
            std::string::npos);
}

TEST_F(GuardConfigTest, AMissingPluginIsAClearError) {
  const auto result = render({"--guard-plugin", (tmp_ / "nope.so").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("recmesh-guard plugin"), std::string::npos) << result.err;
}

TEST_F(GuardConfigTest, TheBrokerDoesNotStartWithABadGuardConfiguration) {
  ASSERT_EQ(render({"--guard-plugin", guard_plugin_path()}).exit_code, 0);
  const std::string conf = read_file(dir_ / "mosquitto.conf");
  for (const std::string& bad :
       {std::string("plugin_opt_bogus 1\n"), std::string("plugin_opt_events_per_second x\n")}) {
    write_file_atomic(dir_ / "mosquitto.conf", conf + bad, 0644);
    EXPECT_THROW(testing::MosquittoBroker(dir_ / "mosquitto.conf", {ems_, bridge_}, 3s),
                 std::exception)
        << bad;
  }
  // A key file others can read.
  write_file_atomic(dir_ / "mosquitto.conf", conf, 0644);
  fs::permissions(dir_ / "guard.key", fs::perms::others_read, fs::perm_options::add);
  EXPECT_THROW(testing::MosquittoBroker(dir_ / "mosquitto.conf", {ems_, bridge_}, 3s),
               std::exception);
}

}  // namespace
}  // namespace recmesh::guard_test
