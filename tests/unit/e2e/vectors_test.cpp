// The test vectors of docs/protocol/e2e.md: fixed keys, nonces and times give exact bytes.
// tests/testdata/e2e/ holds them; DISABLED_WriteVectors regenerates them (see the doc).
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"
#include "recmesh/e2e/delivery.hpp"
#include "recmesh/e2e/handshake.hpp"
#include "recmesh/e2e/session.hpp"
#include "recmesh/pki/pki.hpp"

#include "temp_dir.hpp"

namespace recmesh::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kDir = fs::path(RECMESH_SOURCE_DIR) / "tests/testdata/e2e";
constexpr long long kIssuedAt = 1795305600;  // 2026-11-22T00:00:00Z
constexpr long long kVerifyAt = 1795309200;  // one hour later
constexpr std::string_view kTopic = "/r1/m1/metrics/aggregate";
constexpr std::string_view kPayload = R"({"net_exchange_w":1250})";

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto b = static_cast<std::uint8_t>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::string unhex(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string sequence_bytes(std::uint8_t first, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(static_cast<char>(first + i));
  }
  return out;
}

HandshakeInputs fixed_inputs(std::uint8_t key_first, std::uint8_t nonce_first,
                             std::uint64_t time_ms) {
  HandshakeInputs in;
  in.ephemeral = ephemeral_from_private(sequence_bytes(key_first, 32));
  in.nonce = sequence_bytes(nonce_first, kNonceBytes);
  in.session_id = 0x5E551011;
  in.time_ms = time_ms;
  return in;
}

PeerTrust trust(const std::string& chain, const std::vector<std::string>& crls,
                const std::string& cn) {
  std::vector<std::string> pems;
  for (const auto& name : crls) {
    pems.push_back(read_file(kDir / name));
  }
  return PeerTrust::from_pem(read_file(kDir / chain), pems, cn);
}

PeerTrust ems_trust() {
  return trust("ems-chain.pem", {"crl-root.pem", "crl-ems.pem"}, "ems_engine");
}
PeerTrust gateway_trust() {
  return trust("member-chain.pem", {"crl-root.pem", "crl-rec.pem", "crl-member.pem"},
               "rec_r1_m1_gateway");
}

std::string envelope(const SessionKeys& keys, Suite suite, const Clock& clock) {
  SessionKeys k = keys;
  k.suite = suite;
  Session session(k, E2eSettings{}, clock);
  return session.seal(kTopic, kPayload).value();
}

// The gateway's view of the engine's session keys.
SessionKeys gateway_side(SessionKeys keys) {
  std::swap(keys.send_secret, keys.receive_secret);
  keys.send_direction = Direction::kMemberToPlatform;
  return keys;
}

// Lossless restarts (docs/protocol/e2e.md §6.1): a gateway envelope whose sequence is the
// message's outbox ID, and the engine's ack of IDs 1000, 1001 and 1003 in a 64-bit window, sealed
// as the first message of its direction on /r1/m1/keys.
constexpr std::uint64_t kMessageId = 1795309200000001;  // an outbox ID: the clock in µs
json restart_vectors(const SessionKeys& platform_side, const Clock& clock) {
  json v;
  Session gateway(gateway_side(platform_side), E2eSettings{}, clock);
  v["envelope_message_id"] = hex(gateway.seal(kTopic, kPayload, kMessageId).value());
  SequenceWindow stored(64);
  for (const std::uint64_t id : {1000U, 1001U, 1003U}) {
    stored.accept(id);
  }
  v["ack_payload"] = hex(encode_ack(stored));
  Session engine(platform_side, E2eSettings{}, clock);
  v["ack_envelope"] = hex(engine.seal("/r1/m1/keys", encode_ack(stored)).value());
  return v;
}

TEST(E2eVectors, DISABLED_WriteVectors) {
  const char* out_dir = std::getenv("RECMESH_E2E_VECTOR_DIR");
  ASSERT_NE(out_dir, nullptr) << "set RECMESH_E2E_VECTOR_DIR";
  const fs::path out(out_dir);
  recmesh::testing::TempDir tmp;
  FixedClock issue_clock{from_unix_seconds(kIssuedAt)};
  auto pki = pki::Pki::create(tmp / "pki", Secret("e2e vector passphrase"), issue_clock);
  pki.add_rec("r1");
  pki.add_member("r1", "m1");
  pki::IssueRequest request;
  request.identity = pki::Identity::make(pki::IdentityKind::kService, "", "", "engine");
  const auto engine = pki.issue(request);
  request.identity = pki::Identity::make(pki::IdentityKind::kGateway, "r1", "m1", "");
  const auto gateway = pki.issue(request);
  const auto ca = tmp / "pki" / "ca";
  fs::create_directories(out);
  const auto copy = [&](const fs::path& from, const std::string& to) {
    fs::copy_file(from, out / to, fs::copy_options::overwrite_existing);
  };
  copy(ca / "ems" / "chain.pem", "ems-chain.pem");
  copy(ca / "member_r1_m1" / "chain.pem", "member-chain.pem");
  copy(ca / "root" / "crl.pem", "crl-root.pem");
  copy(ca / "ems" / "crl.pem", "crl-ems.pem");
  copy(ca / "rec_r1" / "crl.pem", "crl-rec.pem");
  copy(ca / "member_r1_m1" / "crl.pem", "crl-member.pem");
  copy(engine.files.chain, "engine-chain.pem");
  copy(engine.files.key, "engine-key.pem");
  copy(gateway.files.chain, "gateway-chain.pem");
  copy(gateway.files.key, "gateway-key.pem");

  FixedClock clock{from_unix_seconds(kVerifyAt)};
  const auto engine_creds =
      Credentials::from_files(out / "engine-chain.pem", out / "engine-key.pem");
  const auto gateway_creds =
      Credentials::from_files(out / "gateway-chain.pem", out / "gateway-key.pem");
  const std::uint64_t t = static_cast<std::uint64_t>(kVerifyAt) * 1000;
  PlatformHandshake platform(engine_creds, "r1", "m1", Suite::kAes256Gcm,
                             fixed_inputs(0x01, 0xA0, t));
  auto responded = respond_to_init(gateway_creds, "r1", "m1", platform.init(), ems_trust(),
                                   E2eSettings{}, clock, fixed_inputs(0x41, 0xC0, t + 250));
  ASSERT_TRUE(responded) << responded.error().detail;
  auto keys = platform.finish(responded->response, gateway_trust(), E2eSettings{}, clock);
  ASSERT_TRUE(keys) << keys.error().detail;
  json v;
  v["verify_at"] = kVerifyAt;
  v["init"] = hex(platform.init());
  v["response"] = hex(responded->response);
  auto init = parse_init(platform.init());
  auto gateway_eph = fixed_inputs(0x41, 0xC0, 0).ephemeral;
  v["shared_secret"] = hex(*ephemeral_shared_secret(gateway_eph.get(), init->ephemeral));
  v["transcript_hash"] = hex(keys->transcript_hash);
  v["secret_platform_to_member_0"] = hex(keys->send_secret);
  v["secret_member_to_platform_0"] = hex(keys->receive_secret);
  v["secret_platform_to_member_1"] = hex(next_epoch_secret(keys->send_secret));
  const auto tk = traffic_key(keys->receive_secret);
  v["key_member_to_platform_0"] = hex(tk.key);
  v["iv_member_to_platform_0"] = hex(tk.iv);
  v["nonce_member_to_platform_seq_1"] = hex(message_nonce(tk.iv, 1));
  const SessionKeys member_side = gateway_side(*keys);
  v["envelope_aes_256_gcm"] = hex(envelope(member_side, Suite::kAes256Gcm, clock));
  v["envelope_chacha20_poly1305"] = hex(envelope(member_side, Suite::kChaCha20Poly1305, clock));
  v.update(restart_vectors(*keys, clock));
  std::ofstream(out / "vectors.json") << v.dump(2) << "\n";
}

class E2eVectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v_ = json::parse(read_file(kDir / "vectors.json"));
    init_ = unhex(v_["init"].get<std::string>());
    response_ = unhex(v_["response"].get<std::string>());
  }
  json v_;
  std::string init_, response_;
  FixedClock clock_{from_unix_seconds(kVerifyAt)};
};

TEST_F(E2eVectorTest, TheHandshakeVerifiesAndGivesTheDocumentedKeys) {
  auto platform = PlatformHandshake::from_recorded(init_, fixed_inputs(0x01, 0xA0, 0).ephemeral);
  ASSERT_TRUE(platform);
  auto keys = platform->finish(response_, gateway_trust(), E2eSettings{}, clock_);
  ASSERT_TRUE(keys) << keys.error().detail;
  EXPECT_EQ(keys->session_id, 0x5E551011U);
  EXPECT_EQ(hex(keys->transcript_hash), v_["transcript_hash"]);
  EXPECT_EQ(hex(keys->send_secret), v_["secret_platform_to_member_0"]);
  EXPECT_EQ(hex(keys->receive_secret), v_["secret_member_to_platform_0"]);
  EXPECT_EQ(hex(next_epoch_secret(keys->send_secret)), v_["secret_platform_to_member_1"]);
  const auto tk = traffic_key(keys->receive_secret);
  EXPECT_EQ(hex(tk.key), v_["key_member_to_platform_0"]);
  EXPECT_EQ(hex(tk.iv), v_["iv_member_to_platform_0"]);
  EXPECT_EQ(hex(message_nonce(tk.iv, 1)), v_["nonce_member_to_platform_seq_1"]);

  // The shared secret is the same from both private keys.
  auto gateway_eph = fixed_inputs(0x41, 0xC0, 0).ephemeral;
  auto init = parse_init(init_);
  ASSERT_TRUE(init);
  auto shared = ephemeral_shared_secret(gateway_eph.get(), init->ephemeral);
  ASSERT_TRUE(shared);
  EXPECT_EQ(hex(*shared), v_["shared_secret"]);
}

TEST_F(E2eVectorTest, TheGatewayAcceptsTheInitAndAnswersWithTheSameFields) {
  const auto gateway =
      Credentials::from_files(kDir / "gateway-chain.pem", kDir / "gateway-key.pem");
  auto responded =
      respond_to_init(gateway, "r1", "m1", init_, ems_trust(), E2eSettings{}, clock_,
                      fixed_inputs(0x41, 0xC0, static_cast<std::uint64_t>(kVerifyAt) * 1000 + 250));
  ASSERT_TRUE(responded) << responded.error().detail;
  // ECDSA signatures are randomised: everything before the signature is exact.
  auto ours = parse_response(responded->response);
  auto recorded = parse_response(response_);
  ASSERT_TRUE(ours && recorded);
  EXPECT_EQ(hex(ours->signed_part), hex(recorded->signed_part));
}

TEST_F(E2eVectorTest, EnvelopesAreExactlyTheDocumentedBytes) {
  auto platform = PlatformHandshake::from_recorded(init_, fixed_inputs(0x01, 0xA0, 0).ephemeral);
  auto keys = platform->finish(response_, gateway_trust(), E2eSettings{}, clock_);
  ASSERT_TRUE(keys);
  // The gateway's side of the same session seals sequence 1 of epoch 0 at verify_at.
  const SessionKeys gateway = gateway_side(*keys);
  EXPECT_EQ(hex(envelope(gateway, Suite::kAes256Gcm, clock_)), v_["envelope_aes_256_gcm"]);
  EXPECT_EQ(hex(envelope(gateway, Suite::kChaCha20Poly1305, clock_)),
            v_["envelope_chacha20_poly1305"]);
  Session session(*keys, E2eSettings{}, clock_);
  auto opened = session.open(kTopic, unhex(v_["envelope_aes_256_gcm"].get<std::string>()));
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, kPayload);
}

TEST_F(E2eVectorTest, RestartVectorsAreExactlyTheDocumentedBytes) {
  auto platform = PlatformHandshake::from_recorded(init_, fixed_inputs(0x01, 0xA0, 0).ephemeral);
  auto keys = platform->finish(response_, gateway_trust(), E2eSettings{}, clock_);
  ASSERT_TRUE(keys);
  const json v = restart_vectors(*keys, clock_);
  for (const char* name : {"envelope_message_id", "ack_payload", "ack_envelope"}) {
    EXPECT_EQ(v[name], v_[name]) << name;
  }
  // The engine opens the gateway's envelope and reads the ID; the gateway opens the ack.
  Session engine(*keys, E2eSettings{}, clock_);
  const std::string envelope = unhex(v_["envelope_message_id"].get<std::string>());
  ASSERT_TRUE(engine.open(kTopic, envelope));
  EXPECT_EQ(parse_envelope(envelope)->header.sequence, kMessageId);
  Session gateway(gateway_side(*keys), E2eSettings{}, clock_);
  auto ack = gateway.open("/r1/m1/keys", unhex(v_["ack_envelope"].get<std::string>()));
  ASSERT_TRUE(ack);
  EXPECT_EQ(hex(*ack), v_["ack_payload"]);
  auto parsed = parse_ack(*ack);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->highest, 1003U);
  EXPECT_FALSE(parsed->confirms(1002));
}

TEST_F(E2eVectorTest, TheDocumentShowsTheseVectors) {
  const std::string doc = read_file(fs::path(RECMESH_SOURCE_DIR) / "docs/protocol/e2e.md");
  for (const auto& [name, value] : v_.items()) {
    if (value.is_string()) {
      std::string text = value.get<std::string>();
      // Long values are printed wrapped at 64 hex digits per line.
      for (std::size_t i = 0; i < text.size(); i += 64) {
        EXPECT_NE(doc.find(text.substr(i, 64)), std::string::npos) << name;
      }
    }
  }
}

TEST_F(E2eVectorTest, AnyChangedByteOfTheVectorHandshakeIsRefused) {
  for (std::size_t i = 0; i < response_.size(); i += 13) {
    std::string bad = response_;
    bad[i] = static_cast<char>(bad[i] ^ 0x80);
    auto platform = PlatformHandshake::from_recorded(init_, fixed_inputs(0x01, 0xA0, 0).ephemeral);
    EXPECT_FALSE(platform->finish(bad, gateway_trust(), E2eSettings{}, clock_)) << i;
  }
}

}  // namespace
}  // namespace recmesh::e2e
