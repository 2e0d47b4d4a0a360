#include "recmesh/e2e/endpoint.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "e2e_fixture.hpp"

namespace recmesh::e2e {
namespace {

using namespace std::chrono_literals;

class EndpointTest : public E2eFixture {
 protected:
  void SetUp() override {
    E2eFixture::SetUp();
    platform_ = make_platform();
    gateway_ = make_member();
  }

  // What the gateway publishes, as the engine sees it on the central broker.
  Checked<std::string> deliver_to_platform(const Wire::Message& m,
                                           const std::string& member = "m1") {
    return platform_->open("r1", member, bound_topic("r1", member, m.topic), m.payload);
  }

  std::unique_ptr<PlatformEndpoint> platform_;
  std::unique_ptr<MemberEndpoint> gateway_;
};

TEST_F(EndpointTest, HandshakeThenTrafficBothWays) {
  handshake(*platform_, *gateway_);
  EXPECT_TRUE(platform_->established("r1", "m1"));
  EXPECT_TRUE(gateway_->established());

  ASSERT_TRUE(platform_->publish("r1", "m1", "/r1/m1/control", R"({"control":1})"));
  auto control = to_members_.take();
  ASSERT_TRUE(control);
  EXPECT_EQ(control->topic, "/r1/m1/control");
  EXPECT_EQ(control->payload.find("control"), std::string::npos);  // ciphertext on the wire
  auto opened = gateway_->open("/platform/control", control->payload);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_EQ(*opened, R"({"control":1})");

  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", R"({"m":2})"));
  auto metrics = to_platform_.take();
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->topic, "/platform/metrics/aggregate");
  auto plain = deliver_to_platform(*metrics);
  ASSERT_TRUE(plain) << plain.error().detail;
  EXPECT_EQ(*plain, R"({"m":2})");
}

TEST_F(EndpointTest, ChaChaSessionWhenTheEngineChoosesIt) {
  settings_.suite = Suite::kChaCha20Poly1305;
  platform_ = make_platform();
  handshake(*platform_, *gateway_);
  ASSERT_TRUE(gateway_->publish("/platform/control/response", "r"));
  auto m = to_platform_.take();
  ASSERT_TRUE(m);
  EXPECT_EQ(static_cast<std::uint8_t>(m->payload[2]), 2);
  EXPECT_TRUE(deliver_to_platform(*m));
}

TEST_F(EndpointTest, MessagesBeforeTheSessionAreQueuedAndSentOnceItIsUp) {
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "early-1"));
  ASSERT_TRUE(gateway_->publish("/smart-gateway/status/info", "early-2", true));
  EXPECT_EQ(gateway_->queued(), 2U);
  auto hello = to_platform_.take();  // the gateway asked for a handshake
  ASSERT_TRUE(hello);
  EXPECT_EQ(static_cast<std::uint8_t>(hello->payload[1]), 4);
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", hello->payload));
  auto init = to_members_.take();
  ASSERT_TRUE(init);
  ASSERT_TRUE(gateway_->on_keys(init->payload));
  auto response = to_platform_.take();
  ASSERT_TRUE(response);
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", response->payload));
  EXPECT_EQ(gateway_->queued(), 0U);
  auto first = to_platform_.take();
  auto second = to_platform_.take();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*deliver_to_platform(*first), "early-1");
  EXPECT_TRUE(second->retain);
  EXPECT_EQ(*deliver_to_platform(*second), "early-2");

  // The engine queues too, and starts the handshake itself.
  ASSERT_TRUE(platform_->publish("r1", "m2", "/r1/m2/control", "for m2"));
  EXPECT_EQ(platform_->queued("r1", "m2"), 1U);
  auto m2 = make_member("m2");
  auto init2 = to_members_.take();
  ASSERT_TRUE(init2);
  EXPECT_EQ(init2->topic, "/r1/m2/keys");
  ASSERT_TRUE(m2->on_keys(init2->payload));
  ASSERT_TRUE(platform_->on_keys_response("r1", "m2", to_platform_.take()->payload));
  auto control = to_members_.take();
  ASSERT_TRUE(control);
  EXPECT_EQ(*m2->open("/platform/control", control->payload), "for m2");
}

TEST_F(EndpointTest, SealWithoutASessionAsksForOneAndQueuesNothing) {
  auto none = gateway_->seal("/platform/metrics/aggregate", "x");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().failure, Failure::kNoSession);
  EXPECT_EQ(gateway_->queued(), 0U);
  ASSERT_TRUE(to_platform_.take());  // the hello
  handshake(*platform_, *gateway_);
  auto sealed = gateway_->seal("/platform/metrics/aggregate", "x");
  ASSERT_TRUE(sealed);
  auto opened = platform_->open("r1", "m1", "/r1/m1/metrics/aggregate", *sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, "x");
}

TEST_F(EndpointTest, TheQueueIsBoundedAndItsOverflowCounted) {
  settings_.max_queued = 2;
  gateway_ = make_member();
  EXPECT_TRUE(gateway_->publish("/platform/metrics/aggregate", "1"));
  EXPECT_TRUE(gateway_->publish("/platform/metrics/aggregate", "2"));
  auto third = gateway_->publish("/platform/metrics/aggregate", "3");
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().failure, Failure::kQueueFull);
  EXPECT_EQ(gateway_->stats().refused_of(Failure::kQueueFull), 1U);
}

TEST_F(EndpointTest, OnlyProtectedTopicsAreSealed) {
  auto refused = gateway_->publish("/device/pv1/control", "x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().failure, Failure::kMalformed);
  EXPECT_EQ(bound_topic("r1", "m1", "/platform/logs/ERROR"), "/r1/m1/logs/ERROR");
  EXPECT_EQ(bound_topic("r1", "m1", "/smart-gateway/status/info"),
            "/r1/m1/smart-gateway/status/info");
  EXPECT_EQ(bound_topic("r1", "m1", "/platform/"), "");
}

TEST_F(EndpointTest, ARevokedGatewayCannotCompleteTheHandshake) {
  pki_->revoke(pki::RevocationTarget::certificate("rec_r1_m1_gateway"));
  platform_->connect("r1", "m1");
  ASSERT_TRUE(gateway_->on_keys(to_members_.take()->payload));
  auto finished = platform_->on_keys_response("r1", "m1", to_platform_.take()->payload);
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.error().failure, Failure::kRevoked);
  EXPECT_FALSE(platform_->established("r1", "m1"));
}

TEST_F(EndpointTest, ARevokedMemberCaRevokesItsGateway) {
  pki_->revoke(pki::RevocationTarget::whole_member("r1", "m1"));
  platform_->connect("r1", "m1");
  ASSERT_TRUE(gateway_->on_keys(to_members_.take()->payload));
  auto finished = platform_->on_keys_response("r1", "m1", to_platform_.take()->payload);
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.error().failure, Failure::kRevoked);
}

TEST_F(EndpointTest, ARevokedEngineCannotCompleteTheHandshake) {
  pki_->revoke(pki::RevocationTarget::certificate("ems_engine"));
  platform_->connect("r1", "m1");
  auto answered = gateway_->on_keys(to_members_.take()->payload);
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().failure, Failure::kRevoked);
  EXPECT_TRUE(to_platform_.messages.empty());
  EXPECT_FALSE(gateway_->established());
}

TEST_F(EndpointTest, AnotherMembersGatewayIsRefused) {
  auto impostor = make_member("m1", "rec_r1_m2_gateway");
  platform_->connect("r1", "m1");
  ASSERT_TRUE(impostor->on_keys(to_members_.take()->payload));
  auto finished = platform_->on_keys_response("r1", "m1", to_platform_.take()->payload);
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.error().failure, Failure::kWrongMember);
}

TEST_F(EndpointTest, AnInitForAnotherMemberIsRefused) {
  auto m2 = make_member("m2");
  platform_->connect("r1", "m1");
  auto answered = m2->on_keys(to_members_.take()->payload);
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().failure, Failure::kWrongMember);
}

TEST_F(EndpointTest, WrongRolesAreRefused) {
  // A device certificate of the right member answering as its gateway.
  auto device = make_member("m1", "rec_r1_m1_pv1");
  platform_->connect("r1", "m1");
  ASSERT_TRUE(device->on_keys(to_members_.take()->payload));
  auto finished = platform_->on_keys_response("r1", "m1", to_platform_.take()->payload);
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.error().failure, Failure::kWrongRole);
  // Another EMS service initiating as the engine.
  auto lms = make_platform("ems_lms");
  lms->connect("r1", "m1");
  auto answered = gateway_->on_keys(to_members_.take()->payload);
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().failure, Failure::kWrongRole);
}

TEST_F(EndpointTest, ReplayedAndStaleInitsAreRefused) {
  platform_->connect("r1", "m1");
  const std::string init = to_members_.take()->payload;
  ASSERT_TRUE(gateway_->on_keys(init));
  auto replayed = gateway_->on_keys(init);
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().failure, Failure::kReplayed);

  auto fresh_gateway = make_member();
  advance(settings_.max_age + 1s);
  auto stale = fresh_gateway->on_keys(init);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().failure, Failure::kStale);
}

TEST_F(EndpointTest, ReflectedHandshakeMessagesAreRefused) {
  platform_->connect("r1", "m1");
  const std::string init = to_members_.take()->payload;
  auto reflected = platform_->on_keys_response("r1", "m1", init);
  ASSERT_FALSE(reflected);
  EXPECT_EQ(reflected.error().failure, Failure::kWrongDirection);
  ASSERT_TRUE(gateway_->on_keys(init));
  const std::string response = to_platform_.take()->payload;
  auto back = gateway_->on_keys(response);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().failure, Failure::kWrongDirection);
}

// docs/protocol/e2e.md, "Handshake" step 7: an init whose ephemeral key is a low-order X25519
// point is refused even when the genuine engine signed it, and no response goes out.
TEST_F(EndpointTest, ALowOrderEphemeralKeyIsRefusedAsTampered) {
  std::string one(32, '\0');
  one[0] = 1;
  for (const std::string& point : {std::string(32, '\0'), one}) {
    advance(1ms);
    HandshakeInputs inputs = HandshakeInputs::fresh(clock_);
    inputs.ephemeral.reset(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(point.data()),
        point.size()));
    ASSERT_TRUE(inputs.ephemeral);
    const PlatformHandshake forged(credentials("ems_engine"), "r1", "m1", Suite::kAes256Gcm,
                                   std::move(inputs));
    auto refused = gateway_->on_keys(forged.init());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().failure, Failure::kTampered);
    EXPECT_FALSE(to_platform_.take().has_value()) << "a response went out";
  }
  handshake(*platform_, *gateway_);
}

TEST_F(EndpointTest, TamperedHandshakeMessagesAreRefused) {
  platform_->connect("r1", "m1");
  const std::string init = to_members_.take()->payload;
  std::string forged = init;
  forged[40] = static_cast<char>(forged[40] ^ 1);  // the engine's ephemeral key
  auto refused = gateway_->on_keys(forged);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().failure, Failure::kTampered);
  for (std::size_t n = 0; n < init.size(); n += 7) {
    auto cut = gateway_->on_keys(init.substr(0, n));
    ASSERT_FALSE(cut);
    EXPECT_TRUE(cut.error().failure == Failure::kTruncated ||
                cut.error().failure == Failure::kMalformed)
        << n;
  }
  ASSERT_TRUE(gateway_->on_keys(init));
  std::string response = to_platform_.take()->payload;
  response[20] = static_cast<char>(response[20] ^ 1);  // the gateway's nonce
  auto bad = platform_->on_keys_response("r1", "m1", response);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().failure, Failure::kTampered);
}

TEST_F(EndpointTest, AMessageOfAnotherMembersSessionIsAWrongMember) {
  auto m2 = make_member("m2");
  handshake(*platform_, *gateway_);
  handshake(*platform_, *m2, "m2");
  ASSERT_TRUE(m2->publish("/platform/metrics/aggregate", "from m2"));
  const auto sealed = to_platform_.take();
  // The bridge (or anyone on the path) moves it onto m1's topic.
  auto moved = platform_->open("r1", "m1", "/r1/m1/metrics/aggregate", sealed->payload);
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().failure, Failure::kWrongMember);
  EXPECT_EQ(platform_->stats().refused_of(Failure::kWrongMember), 1U);
}

TEST_F(EndpointTest, GatewayRestartReHandshakesAndLosesNothingQueued) {
  handshake(*platform_, *gateway_);
  // The gateway goes away; its status flag turns offline and the engine drops the session.
  gateway_.reset();
  platform_->peer_offline("r1", "m1");
  ASSERT_TRUE(platform_->publish("r1", "m1", "/r1/m1/control", "while away"));
  auto init = to_members_.take();  // the engine already tries a new handshake
  ASSERT_TRUE(init);
  // The gateway starts again with nothing, queues, and says hello.
  gateway_ = make_member();
  gateway_->start();
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "after restart"));
  auto hello = to_platform_.take();
  ASSERT_TRUE(hello);
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", hello->payload));
  // The first init is still current on the engine (not timed out): answer it.
  ASSERT_TRUE(gateway_->on_keys(init->payload));
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", to_platform_.take()->payload));
  auto flushed = to_platform_.take();
  ASSERT_TRUE(flushed);
  EXPECT_EQ(*deliver_to_platform(*flushed), "after restart");
  auto control = to_members_.take();
  ASSERT_TRUE(control);
  EXPECT_EQ(*gateway_->open("/platform/control", control->payload), "while away");
}

TEST_F(EndpointTest, EngineRestartReHandshakesOnTheFirstUnknownSession) {
  handshake(*platform_, *gateway_);
  platform_ = make_platform();
  advance(1ms);
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "lost"));
  auto lost = deliver_to_platform(*to_platform_.take());
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().failure, Failure::kNoSession);
  auto init = to_members_.take();  // the engine starts a handshake at once
  ASSERT_TRUE(init);
  ASSERT_TRUE(gateway_->on_keys(init->payload));
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", to_platform_.take()->payload));
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "after"));
  EXPECT_EQ(*deliver_to_platform(*to_platform_.take()), "after");
}

TEST_F(EndpointTest, ACleanStopClosesTheSessionAndLaterMessagesWait) {
  handshake(*platform_, *gateway_);
  platform_->close_all();
  auto close = to_members_.take();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->topic, "/r1/m1/keys");
  ASSERT_TRUE(gateway_->on_keys(close->payload));
  EXPECT_FALSE(gateway_->established());
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "queued"));
  EXPECT_EQ(gateway_->queued(), 1U);
  auto hello = to_platform_.take();
  ASSERT_TRUE(hello);
  EXPECT_EQ(static_cast<std::uint8_t>(hello->payload[1]), 4);

  // And the other way round.
  handshake(*platform_, *gateway_);
  EXPECT_EQ(to_platform_.take()->payload.size(), 6 + kEnvelopeOverhead);  // the flushed one
  gateway_->close();
  auto from_gateway = to_platform_.take();
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", from_gateway->payload));
  EXPECT_FALSE(platform_->established("r1", "m1"));
}

TEST_F(EndpointTest, OldSessionStillOpensDuringItsGraceAfterARehandshake) {
  handshake(*platform_, *gateway_);
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "sealed in the old session"));
  auto in_flight = to_platform_.take();
  handshake(*platform_, *gateway_);
  auto opened = deliver_to_platform(*in_flight);
  ASSERT_TRUE(opened) << opened.error().detail;
  advance(settings_.epoch_grace + 1s);
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "x"));
  auto x = to_platform_.take();
  EXPECT_TRUE(deliver_to_platform(*x));
}

// A local broker restart: the gateway reconnects holding its session (no hello), an offline
// flag and the online flag's re-handshake pass on the way, and what the gateway sealed in the
// old session before the new one came up still opens, once; after the grace it does not.
TEST_F(EndpointTest, AReconnectKeepsTheSessionAndWhatWasSealedInItStillOpens) {
  handshake(*platform_, *gateway_);
  const auto hellos = gateway_->stats().hellos;
  gateway_->start();  // the reconnect
  EXPECT_EQ(gateway_->stats().hellos, hellos);
  EXPECT_TRUE(to_platform_.messages.empty());
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "before the flag"));
  auto first = to_platform_.take();
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "still in the broker"));
  auto second = to_platform_.take();
  ASSERT_TRUE(deliver_to_platform(*first));
  platform_->peer_offline("r1", "m1");
  EXPECT_FALSE(platform_->established("r1", "m1"));
  // Offline and online twice over: two re-handshakes, the first session still opens.
  handshake(*platform_, *gateway_);
  platform_->peer_offline("r1", "m1");
  handshake(*platform_, *gateway_);
  auto opened = deliver_to_platform(*second);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_EQ(*opened, "still in the broker");
  // A redelivery or a replay of it is refused, in the retired session as in a current one.
  auto again = deliver_to_platform(*second);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().failure, Failure::kReplayed);
  auto replayed_first = deliver_to_platform(*first);
  ASSERT_FALSE(replayed_first);
  EXPECT_EQ(replayed_first.error().failure, Failure::kReplayed);
  // Once the grace is over, the retired sessions are gone for good.
  advance(settings_.epoch_grace + 1s);
  auto late = deliver_to_platform(*second);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().failure, Failure::kUnknownSession);
}

// A hello (the gateway restarted) retires the engine's session instead of dropping it: what the
// old process sealed and its broker still held opens during the grace.
TEST_F(EndpointTest, AHelloRetiresTheSessionWhatItSealedStillOpens) {
  handshake(*platform_, *gateway_);
  ASSERT_TRUE(gateway_->publish("/platform/metrics/aggregate", "sealed before the crash"));
  auto in_flight = to_platform_.take();
  gateway_ = make_member();
  gateway_->start();
  auto hello = to_platform_.take();
  ASSERT_TRUE(hello);
  ASSERT_TRUE(platform_->on_keys_response("r1", "m1", hello->payload));
  EXPECT_FALSE(platform_->established("r1", "m1"));
  auto opened = deliver_to_platform(*in_flight);
  ASSERT_TRUE(opened) << opened.error().detail;
  // Controls wait for the next session: nothing is sealed in a retired one.
  ASSERT_TRUE(platform_->publish("r1", "m1", "/r1/m1/control", "queued"));
  EXPECT_EQ(platform_->queued("r1", "m1"), 1U);
}

TEST_F(EndpointTest, HandshakeRetriesAfterItsTimeout) {
  platform_->connect("r1", "m1");
  platform_->connect("r1", "m1");  // one under way: nothing new
  EXPECT_EQ(to_members_.messages.size(), 1U);
  advance(settings_.handshake_timeout);
  platform_->poll();
  EXPECT_EQ(to_members_.messages.size(), 2U);
  EXPECT_EQ(platform_->stats().handshakes_started, 2U);
}

TEST_F(EndpointTest, GarbageOnEveryEntryPointIsRefusedNotThrown) {
  for (const std::string& bad : {std::string(), std::string("\x01"), std::string("{\"json\":1}"),
                                 std::string("\x01\x09", 2), std::string(5000, '\x01')}) {
    EXPECT_FALSE(gateway_->on_keys(bad));
    EXPECT_FALSE(gateway_->open("/platform/control", bad));
    EXPECT_FALSE(platform_->on_keys_response("r1", "m1", bad));
    EXPECT_FALSE(platform_->open("r1", "m1", "/r1/m1/control/response", bad));
  }
  EXPECT_GT(platform_->stats().refused_total(), 0U);
}

// Lossless restarts (docs/protocol/e2e.md §6.1): the gateway numbers its messages, the engine
// confirms what it stored with a sealed ack, and a message re-sealed in a later session keeps
// its number.
TEST_F(EndpointTest, TheEnginesAckConfirmsExactlyTheMessagesItStored) {
  handshake(*platform_, *gateway_);
  std::vector<Acknowledgement> acks;
  gateway_->on_acknowledged = [&](const Acknowledgement& ack) { acks.push_back(ack); };
  SequenceWindow stored(settings_.replay_window);
  for (const std::uint64_t id : {100U, 101U, 102U, 103U}) {
    ASSERT_TRUE(gateway_->seal("/platform/metrics/aggregate", "m", id));
  }
  // What the gateway sealed, as the engine opens it: the envelope's sequence is the ID.
  for (const std::uint64_t id : {100U, 101U, 103U}) {
    auto sealed = gateway_->seal("/platform/metrics/aggregate", "n", id + 10);
    ASSERT_TRUE(sealed);
    auto opened = platform_->open_message("r1", "m1", "/r1/m1/metrics/aggregate", *sealed);
    ASSERT_TRUE(opened) << opened.error().detail;
    EXPECT_EQ(opened->sequence, id + 10);
    stored.accept(opened->sequence);
  }
  ASSERT_TRUE(platform_->acknowledge("r1", "m1", stored));
  auto ack = to_members_.take();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->topic, "/r1/m1/keys");
  EXPECT_EQ(ack->payload.find("ack"), std::string::npos);  // sealed
  ASSERT_TRUE(gateway_->on_keys(ack->payload));
  ASSERT_EQ(acks.size(), 1U);
  EXPECT_TRUE(acks[0].confirms(110));
  EXPECT_TRUE(acks[0].confirms(111));
  EXPECT_FALSE(acks[0].confirms(112));
  EXPECT_TRUE(acks[0].confirms(113));
  EXPECT_EQ(gateway_->stats().acks, 1U);

  // Replayed, tampered or reflected, an ack changes nothing.
  EXPECT_EQ(gateway_->on_keys(ack->payload).error().failure, Failure::kReplayed);
  ASSERT_TRUE(platform_->acknowledge("r1", "m1", stored));
  auto second = to_members_.take();
  std::string tampered = second->payload;
  tampered[tampered.size() - 20] = static_cast<char>(tampered[tampered.size() - 20] ^ 0x01);
  EXPECT_EQ(gateway_->on_keys(tampered).error().failure, Failure::kTampered);
  EXPECT_FALSE(platform_->on_keys_response("r1", "m1", second->payload));
  EXPECT_EQ(acks.size(), 1U);
}

TEST_F(EndpointTest, AnAckOfMessagesNeverSentIsRefusedWhole) {
  handshake(*platform_, *gateway_);
  bool called = false;
  gateway_->on_acknowledged = [&](const Acknowledgement&) { called = true; };
  ASSERT_TRUE(gateway_->seal("/platform/metrics/aggregate", "m", 50));
  SequenceWindow forged(settings_.replay_window);
  forged.accept(50);
  forged.accept(5000);  // the gateway never sent 5000: its rows up to 4000 must not go
  ASSERT_TRUE(platform_->acknowledge("r1", "m1", forged));
  auto ack = to_members_.take();
  auto refused = gateway_->on_keys(ack->payload);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().failure, Failure::kMalformed);
  EXPECT_FALSE(called);
  // A restarted gateway knows the IDs its earlier run gave out.
  gateway_ = make_member();
  gateway_->resume_after(6000);
  gateway_->on_acknowledged = [&](const Acknowledgement&) { called = true; };
  handshake(*platform_, *gateway_);
  ASSERT_TRUE(platform_->acknowledge("r1", "m1", forged));
  ASSERT_TRUE(gateway_->on_keys(to_members_.take()->payload));
  EXPECT_TRUE(called);
}

TEST_F(EndpointTest, AMessageResealedAfterARestartKeepsItsNumber) {
  handshake(*platform_, *gateway_);
  auto before = gateway_->seal("/platform/metrics/aggregate", "row 7", 7);
  ASSERT_TRUE(before);
  // The gateway dies with its session; the engine restarts as well and holds none.
  gateway_ = make_member();
  gateway_->resume_after(7);
  platform_ = make_platform();
  auto lost = platform_->open_message("r1", "m1", "/r1/m1/metrics/aggregate", *before);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().failure, Failure::kNoSession);
  handshake(*platform_, *gateway_);  // completes the init that the refusal started
  auto again = gateway_->seal("/platform/metrics/aggregate", "row 7", 7);
  ASSERT_TRUE(again);
  auto opened = platform_->open_message("r1", "m1", "/r1/m1/metrics/aggregate", *again);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_EQ(opened->sequence, 7U);
  EXPECT_EQ(opened->payload, "row 7");
  // Within one session a number is never sealed twice.
  EXPECT_EQ(gateway_->seal("/platform/metrics/aggregate", "row 7", 7).error().failure,
            Failure::kReplayed);
  // A number-less message (close) continues above the IDs given out.
  gateway_->close();
  auto close = to_platform_.take();
  ASSERT_TRUE(close);
  EXPECT_EQ(parse_envelope(close->payload)->header.sequence, 8U);
}

TEST_F(EndpointTest, TheEnginesSealWithoutASessionStartsOneAndQueuesNothing) {
  auto sealed = platform_->seal("r1", "m1", "/r1/m1/control", "c");
  ASSERT_FALSE(sealed);
  EXPECT_EQ(sealed.error().failure, Failure::kNoSession);
  EXPECT_EQ(platform_->queued("r1", "m1"), 0U);
  EXPECT_EQ(platform_->stats().handshakes_started, 1U);
  EXPECT_FALSE(platform_->acknowledge("r1", "m1", SequenceWindow(64)));
  handshake(*platform_, *gateway_);  // completes the init that seal() started
  sealed = platform_->seal("r1", "m1", "/r1/m1/control", "c");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(*gateway_->open("/platform/control", *sealed), "c");
}

}  // namespace
}  // namespace recmesh::e2e
