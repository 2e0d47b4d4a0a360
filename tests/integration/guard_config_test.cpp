// `recmesh broker-config --guard` and the plugin's start-up checks: a broker with a bad guard
// configuration does not start (fail closed).
#include <fstream>

#include "guard_harness.hpp"
#include "test_community.hpp"

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
  // Only --no-guard renders the plain configuration, and says that it is unsafe.
  const auto plain = render({"--no-guard"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.out.find("WARNING"), std::string::npos) << plain.out;
  EXPECT_NE(read_file(dir_ / "mosquitto.conf").find("use_identity_as_username true"),
            std::string::npos);
  EXPECT_NE(render({"--no-guard", "--guard-plugin", guard_plugin_path()}).exit_code, 0);
}

TEST_F(GuardConfigTest, TheGuardIsLoadedByDefault) {
  const auto result = render({});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string conf = read_file(dir_ / "mosquitto.conf");
  EXPECT_NE(conf.find("plugin "), std::string::npos) << conf;
  EXPECT_NE(conf.find("recmesh_guard.so"), std::string::npos) << conf;
  EXPECT_EQ(conf.find("use_identity_as_username"), std::string::npos);
  EXPECT_NE(result.out.find("no policy yet"), std::string::npos) << result.out;
}

// A fresh broker seeded with the Security Manager's bundle enforces it from its first
// connection, without a push; a re-render with an older bundle keeps the newer stored one; a
// forged or misaddressed bundle fails the rendering.
TEST_F(GuardConfigTest, APolicySeededByBrokerConfigIsInForceAtStart) {
  const Cert engine = service("engine");
  const std::vector<policy::MemberRegistration> members{{"r1", "m1", {}}};
  const auto bundle_file = [&](std::uint64_t sequence, std::vector<policy::Grant> extra) {
    return testing::write_signed_policy(tmp_ / ("seed-" + std::to_string(sequence)), pki_dir(),
                                        policy::BrokerId::central(), members, std::move(extra),
                                        sequence);
  };
  auto seeded = render(
      {"--guard-plugin", guard_plugin_path(), "--policy",
       bundle_file(5, {testing::grant_for("ems_engine", {"/test/seeded"}, {"/test/seeded"})})});
  ASSERT_EQ(seeded.exit_code, 0) << seeded.err;
  EXPECT_NE(seeded.out.find("policy 5 seeded"), std::string::npos) << seeded.out;
  // Older: the stored policy stays.
  auto older = render({"--guard-plugin", guard_plugin_path(), "--policy", bundle_file(4, {})});
  ASSERT_EQ(older.exit_code, 0) << older.err;
  EXPECT_NE(older.out.find("policy 5 kept"), std::string::npos) << older.out;

  testing::MosquittoBroker broker(dir_ / "mosquitto.conf", {ems_, bridge_});
  // The seeded custom rule is in force with no push (deny-all would refuse the subscription).
  GuardClient subscriber("seed-sub");
  ASSERT_TRUE(subscriber.connect(ems_, root_ca_, engine));
  ASSERT_TRUE(subscriber.subscribe("/test/seeded"));
  EXPECT_FALSE(subscriber.subscribe("/test/other"));
  GuardClient publisher("seed-pub");
  ASSERT_TRUE(publisher.connect(ems_, root_ca_, engine));
  ASSERT_TRUE(publisher.publish("/test/seeded", "x"));
  const auto received = subscriber.wait_message();
  ASSERT_TRUE(received.has_value()) << broker.log();
  EXPECT_EQ(received->payload, "x");
  EXPECT_NE(broker.log().find("policy 5 loaded"), std::string::npos) << broker.log();

  // A bundle signed by a key other than the Security Manager's.
  const Cert other = service("other");
  policy::PolicyBundle forged;
  forged.broker = "central";
  forged.sequence = 9;
  write_file_atomic(
      tmp_ / "forged.jws",
      policy::BundleSigner(crypto::JwsSigner::from_files(other.chain, other.key)).sign(forged),
      0600);
  auto refused =
      render({"--guard-plugin", guard_plugin_path(), "--policy", (tmp_ / "forged.jws").string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("refused"), std::string::npos) << refused.err;
  // A bundle for another broker.
  testing::write_signed_policy(tmp_ / "local.jws", pki_dir(), policy::BrokerId::local("r1", "m1"),
                               members, {}, 10);
  auto elsewhere =
      render({"--guard-plugin", guard_plugin_path(), "--policy", (tmp_ / "local.jws").string()});
  EXPECT_NE(elsewhere.exit_code, 0);
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

// recmesh-guard.md: the key of the stored policy is readable by the broker's account only (0600).
// The attack loosens the rendered key file's mode with a policy stored under it: the broker must
// not start, so the policy is never loaded with a key others could have read; set back to 0600,
// the same files start and load it.
TEST_F(GuardConfigTest, AStoreKeyOpenToGroupOrOthersStopsTheBrokerBeforeThePolicyLoads) {
  const std::string seed = testing::write_signed_policy(
      tmp_ / "seed.jws", pki_dir(), policy::BrokerId::central(), {{"r1", "m1", {}}}, {}, 5);
  const auto rendered = render({"--guard-plugin", guard_plugin_path(), "--policy", seed});
  ASSERT_EQ(rendered.exit_code, 0) << rendered.err;
  const fs::path key = dir_ / "guard.key";
  const auto owner_only = fs::perms::owner_read | fs::perms::owner_write;
  EXPECT_EQ(fs::status(key).permissions(), owner_only);
  EXPECT_EQ(fs::status(dir_ / "data" / "guard-policy.bin").permissions(), owner_only);

  for (const auto loose : {fs::perms::group_read, fs::perms::others_read, fs::perms::group_write,
                           fs::perms::group_read | fs::perms::others_read}) {
    fs::permissions(key, owner_only | loose, fs::perm_options::replace);
    std::string refusal;
    try {
      testing::MosquittoBroker broker(dir_ / "mosquitto.conf", {ems_, bridge_}, 3s);
      ADD_FAILURE() << "the broker started with key mode " << std::oct
                    << static_cast<unsigned>(owner_only | loose);
    } catch (const std::exception& e) {
      refusal = e.what();
    }
    EXPECT_NE(refusal.find(key.string()), std::string::npos) << refusal;
    EXPECT_EQ(refusal.find("policy 5 loaded"), std::string::npos) << refusal;
  }

  fs::permissions(key, owner_only, fs::perm_options::replace);
  testing::MosquittoBroker broker(dir_ / "mosquitto.conf", {ems_, bridge_});
  EXPECT_TRUE(broker.wait_for_log("policy 5 loaded", 5s)) << broker.log();
}

}  // namespace
}  // namespace recmesh::guard_test
