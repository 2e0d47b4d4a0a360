// Run-time policy of recmesh-guard: rule changes without restart, live revocation, refused
// bundles, persistence across restarts, the encrypted store, and the CN-collision attack.
#include <fmt/format.h>

#include "guard_harness.hpp"

namespace recmesh::guard_test {
namespace {

using policy::BrokerId;
using policy::MemberRegistration;

const std::vector<MemberRegistration> kMembers{{"r1", "m1", {"pv1", "bat1"}}};

class GuardPolicyTest : public GuardFixture {
 protected:
  void SetUp() override {
    GuardFixture::SetUp();
    broker_ = local_broker("m1");
    secmgr_ = publisher(broker_.management, "secmgr-policy");
  }

  policy::PolicyBundle bundle(std::uint64_t sequence) {
    return matrix_bundle(BrokerId::local("r1", "m1"), kMembers, sequence);
  }

  std::unique_ptr<GuardClient> connect(const std::string& id, const Cert& cert, int port = 0) {
    auto client = std::make_unique<GuardClient>(id);
    if (!client->connect(port == 0 ? broker_.member : port, root_ca(), cert)) {
      return nullptr;
    }
    return client;
  }

  LocalBroker broker_;
  std::unique_ptr<policy::GuardPublisher> secmgr_;
};

TEST_F(GuardPolicyTest, NothingIsAllowedBeforeTheFirstBundle) {
  EXPECT_EQ(connect("pv1", device("m1", "pv1")), nullptr);
  EXPECT_TRUE(broker_.process->wait_for_log("grants this identity nothing", 3s));
}

TEST_F(GuardPolicyTest, ARuleChangeIsInForceWithoutRestart) {
  push_ok(*secmgr_, bundle(1));
  auto gateway_client = connect("gw", gateway("m1"));
  auto pv1 = connect("pv1", device("m1", "pv1"));
  ASSERT_TRUE(gateway_client && pv1);
  ASSERT_TRUE(gateway_client->subscribe("/device/+/metrics/#"));
  ASSERT_TRUE(pv1->publish("/device/pv1/metrics/power", "before"));
  auto m = gateway_client->wait_message();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "before");

  // Rule change: pv1 loses its metrics flow.
  auto changed = bundle(2);
  for (auto& g : changed.grants) {
    if (g.identity == "member/r1/m1:rec_r1_m1_pv1") {
      std::erase(g.publish, "/device/pv1/metrics/#");
    }
  }
  push_ok(*secmgr_, changed);
  ASSERT_TRUE(pv1->publish("/device/pv1/metrics/power", "after"));
  EXPECT_FALSE(gateway_client->wait_message(500ms).has_value());
  EXPECT_FALSE(pv1->disconnected()) << "a rule change does not drop the connection";

  // And back.
  push_ok(*secmgr_, bundle(3));
  ASSERT_TRUE(pv1->publish("/device/pv1/metrics/power", "again"));
  m = gateway_client->wait_message();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "again");
}

TEST_F(GuardPolicyTest, RevokingADeviceDisconnectsItWithinOneSecondAndKeepsItOut) {
  push_ok(*secmgr_, bundle(1));
  auto pv1 = connect("pv1", device("m1", "pv1"));
  auto bat1 = connect("bat1", device("m1", "bat1"));
  ASSERT_TRUE(pv1 && bat1);
  auto revoking = bundle(2);
  revoking.revocations.identities.push_back("member/r1/m1:rec_r1_m1_pv1");
  const auto start = SteadyClock::now();
  push_ok(*secmgr_, revoking);
  ASSERT_TRUE(pv1->wait_disconnected(1s)) << "kicked within 1 s";
  RecordProperty("revoke_kick_ms",
                 static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      SteadyClock::now() - start)
                                      .count()));
  EXPECT_FALSE(bat1->disconnected());
  EXPECT_EQ(connect("pv1-again", device("m1", "pv1")), nullptr) << "refused at connect";
  EXPECT_TRUE(broker_.process->wait_for_log("identity member/r1/m1:rec_r1_m1_pv1 is revoked", 3s));
}

TEST_F(GuardPolicyTest, RevokingBySerialKeepsTheRenewedCertificate) {
  push_ok(*secmgr_, bundle(1));
  const Cert old_cert = keep_copy(device("m1", "pv1"), "pv1-old");
  auto old_client = connect("pv1-old", old_cert);
  ASSERT_TRUE(old_client);
  const std::string old_serial = pki::Pki::open(pki_dir(), pki::Pki::Access::kReadOnly)
                                     .find_by_common_name("rec_r1_m1_pv1")
                                     .serial;
  // A new certificate, new serial. The broker's TLS CRL is the one rendered at start, so the
  // old certificate still passes TLS: the guard's serial revocation is what keeps it out.
  const Cert renewed = renew("rec_r1_m1_pv1");
  auto revoking = bundle(2);
  revoking.revocations.serials.push_back({"member/r1/m1", old_serial});
  push_ok(*secmgr_, revoking);
  EXPECT_TRUE(old_client->wait_disconnected(1s));
  EXPECT_EQ(connect("pv1-old-again", old_cert), nullptr);
  EXPECT_NE(connect("pv1-new", renewed), nullptr);
}

TEST_F(GuardPolicyTest, RevokingAMemberKicksAllItsIdentities) {
  push_ok(*secmgr_, bundle(1));
  auto pv1 = connect("pv1", device("m1", "pv1"));
  auto bat1 = connect("bat1", device("m1", "bat1"));
  auto gw = connect("gw", gateway("m1"));
  auto bridge_client = connect("bridge", bridge("m1"), broker_.bridge);
  ASSERT_TRUE(pv1 && bat1 && gw && bridge_client);
  auto revoking = bundle(2);
  revoking.revocations.domains.push_back("member/r1/m1");
  push_ok(*secmgr_, revoking);
  EXPECT_TRUE(pv1->wait_disconnected(1s));
  EXPECT_TRUE(bat1->wait_disconnected(1s));
  EXPECT_TRUE(gw->wait_disconnected(1s));
  EXPECT_FALSE(bridge_client->disconnected()) << "the Bridge CA is another domain";
  EXPECT_EQ(connect("gw-again", gateway("m1")), nullptr);
}

TEST_F(GuardPolicyTest, ForgedReplayedOlderAndMisdirectedBundlesAreRefused) {
  push_ok(*secmgr_, bundle(5));
  const std::string accepted = secmgr_->signer().sign(bundle(5));

  auto replayed = secmgr_->push_signed(accepted);
  ASSERT_TRUE(replayed.ok()) << replayed.status().message;
  EXPECT_FALSE(replayed->accepted);
  EXPECT_NE(replayed->reason.find("replayed or older"), std::string::npos) << replayed->reason;

  auto older = secmgr_->push(bundle(4));
  ASSERT_TRUE(older.ok());
  EXPECT_FALSE(older->accepted);
  EXPECT_EQ(older->current_sequence, 5u);

  // Signed by another EMS identity with its own valid certificate.
  const Cert engine = service("engine");
  const policy::BundleSigner forger(crypto::JwsSigner::from_files(engine.chain, engine.key));
  auto forged = secmgr_->push_signed(forger.sign(bundle(6)));
  ASSERT_TRUE(forged.ok());
  EXPECT_FALSE(forged->accepted);
  EXPECT_NE(forged->reason.find("ems_engine"), std::string::npos) << forged->reason;

  auto other_broker = secmgr_->push(matrix_bundle(BrokerId::central(), kMembers, 7));
  ASSERT_TRUE(other_broker.ok());
  EXPECT_FALSE(other_broker->accepted);

  for (std::string junk : {std::string("not a jws"), std::string(), std::string(70000, 'a')}) {
    auto refused = secmgr_->push_signed(junk);
    ASSERT_TRUE(refused.ok());
    EXPECT_FALSE(refused->accepted);
  }
  // Still the same policy, and the broker is alive.
  auto newer = secmgr_->push(bundle(6));
  ASSERT_TRUE(newer.ok());
  EXPECT_TRUE(newer->accepted);
  EXPECT_TRUE(broker_.process->wait_for_log("policy-refused", 3s));
}

TEST_F(GuardPolicyTest, OnlyTheSecurityManagerReachesTheControlTopic) {
  push_ok(*secmgr_, bundle(1));
  // The engine's EMS certificate has no grant on a local broker: not even a connection.
  GuardClient engine("engine");
  EXPECT_FALSE(engine.connect(broker_.management, root_ca(), service("engine")));
  // A device publishing a validly signed bundle on the control topic is denied by the ACL.
  auto pv1 = connect("pv1", device("m1", "pv1"));
  ASSERT_TRUE(pv1);
  auto revoking = bundle(2);
  revoking.revocations.identities.push_back("member/r1/m1:rec_r1_m1_bat1");
  ASSERT_TRUE(
      pv1->publish(std::string(policy::kGuardControlTopic), secmgr_->signer().sign(revoking)));
  auto bat1 = connect("bat1", device("m1", "bat1"));
  EXPECT_NE(bat1, nullptr) << "the smuggled bundle must not be in force";
  auto next = secmgr_->push(bundle(2));
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->accepted) << "sequence 2 was never consumed";
}

TEST_F(GuardPolicyTest, PolicySurvivesRestartAndIsNotPlainText) {
  auto revoking = bundle(8);
  revoking.revocations.identities.push_back("member/r1/m1:rec_r1_m1_bat1");
  push_ok(*secmgr_, revoking);
  secmgr_.reset();

  const fs::path store = broker_.dir / "data" / "guard-policy.bin";
  ASSERT_TRUE(fs::exists(store));
  const std::string on_disk = read_file(store);
  for (const char* text : {"rec_r1_m1_pv1", "device", "grants", "eyJ"}) {
    EXPECT_EQ(on_disk.find(text), std::string::npos) << text << " readable on disk";
  }
  EXPECT_EQ(fs::status(broker_.dir / "guard.key").permissions() & fs::perms::group_all,
            fs::perms::none);

  broker_.process.reset();
  start(broker_);
  EXPECT_TRUE(broker_.process->wait_for_log("policy 8 loaded", 5s));
  EXPECT_NE(connect("pv1", device("m1", "pv1")), nullptr);
  EXPECT_EQ(connect("bat1", device("m1", "bat1")), nullptr) << "the revocation persisted";
  secmgr_ = publisher(broker_.management, "secmgr-policy-2");
  auto replay = secmgr_->push(bundle(8));
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(replay->accepted) << "the sequence persisted too";

  // An edited store is refused whole: the broker starts with nothing allowed.
  broker_.process.reset();
  std::string edited = read_file(store);
  edited[edited.size() / 2] ^= 0x01;
  write_file_atomic(store, edited, 0600);
  if (::geteuid() == 0) {
    run_ok({"chown", "mosquitto:", store.string()});
  }
  start(broker_);
  EXPECT_TRUE(broker_.process->wait_for_log("authentication failed", 5s));
  EXPECT_EQ(connect("pv1-after-edit", device("m1", "pv1")), nullptr);
}

// A broker that is not running (registered before it starts, or down) refuses the connection:
// the push fails at once as "not reachable" instead of waiting out its timeout, and the same
// publisher reaches the broker at its next push once it runs again.
TEST_F(GuardPolicyTest, APushToABrokerThatIsNotRunningFailsAtOnce) {
  push_ok(*secmgr_, bundle(1));
  broker_.process.reset();
  constexpr auto kTimeout = 30s;
  const auto start_push = SteadyClock::now();
  auto refused = secmgr_->push(bundle(2), kTimeout);
  const auto took = SteadyClock::now() - start_push;
  ASSERT_FALSE(refused.ok()) << "nothing listens on the management port";
  EXPECT_EQ(refused.status().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.status().message.find("not reachable"), std::string::npos)
      << refused.status().message;
  EXPECT_NE(refused.status().message.find("refused"), std::string::npos)
      << refused.status().message;
  // Generous: a refused TCP connect is immediate even on a loaded machine.
  EXPECT_LT(took, kTimeout / 2) << "the push waited for its timeout";

  start(broker_);
  push_ok(*secmgr_, bundle(3));
}

// mosquitto#2423: a certificate of one CA named like an identity of another CA.
TEST_F(GuardPolicyTest, CommonNameCollisionGetsNoRights) {
  push_ok(*secmgr_, bundle(1));
  for (const std::string cn : {"bridge_r1_m1", "ems_engine", "ems_secmgr", "rec_r1_m2_gateway"}) {
    const Cert forged = forge_member_certificate("m1", cn);
    GuardClient client("forged-" + cn);
    EXPECT_FALSE(client.connect(broker_.member, root_ca(), forged, {}, 3s)) << cn;
    EXPECT_TRUE(broker_.process->wait_for_log(
        fmt::format("common name \\\"{}\\\" is outside the domain of CA member/r1/m1", cn), 3s))
        << cn;
  }
  // A client-chosen username cannot claim another identity either.
  GuardClient spoof("spoof");
  GuardClient::Options options;
  options.username = "bridge:bridge_r1_m1";
  ASSERT_TRUE(spoof.connect(broker_.member, root_ca(), device("m1", "pv1"), options));
  EXPECT_FALSE(spoof.subscribe("/platform/control"));
  EXPECT_FALSE(spoof.subscribe("/device/bat1/status"));

  // A certificate of a foreign root never completes TLS.
  pki::Pki foreign = pki::Pki::create(tmp_ / "foreign", Secret("foreign passphrase 0123"));
  foreign.add_rec("r1");
  foreign.add_member("r1", "m1");
  pki::IssueRequest request;
  request.identity = pki::Identity::make(pki::IdentityKind::kDevice, "r1", "m1", "pv1");
  const auto impostor = foreign.issue(request);
  GuardClient outsider("outsider");
  EXPECT_FALSE(outsider.connect(broker_.member, root_ca(),
                                {"rec_r1_m1_pv1", impostor.files.chain, impostor.files.key}, {},
                                3s));
}

}  // namespace
}  // namespace recmesh::guard_test

namespace recmesh::guard_test {
namespace {

TEST_F(GuardPolicyTest, DeniedPublishesDropTheMessageNotTheConnection) {
  push_ok(*secmgr_, bundle(1));
  auto gw = connect("gw", gateway("m1"));
  auto pv1 = connect("pv1", device("m1", "pv1"));
  ASSERT_TRUE(gw && pv1);
  ASSERT_TRUE(gw->subscribe("/device/+/metrics/#"));
  for (int qos : {0, 1}) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(pv1->publish("/device/bat1/metrics/power", "forged", qos));
    }
  }
  ASSERT_TRUE(pv1->publish("/device/pv1/metrics/power", "own"));
  auto m = gw->wait_message();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "own");
  EXPECT_FALSE(pv1->disconnected());
}

}  // namespace
}  // namespace recmesh::guard_test
