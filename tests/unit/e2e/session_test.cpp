#include "recmesh/e2e/session.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/clock.hpp"

namespace recmesh::e2e {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kTopic = "/r1/m1/metrics/aggregate";

// Two ends of one session from a fixed shared secret, as a handshake would leave them.
class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { make(Suite::kAes256Gcm); }

  void make(Suite suite) {
    const std::string shared(32, '\x42');
    const auto platform_keys = derive_session_keys(shared, "init", "response", 0x01020304, suite,
                                                   Direction::kPlatformToMember);
    const auto member_keys = derive_session_keys(shared, "init", "response", 0x01020304, suite,
                                                 Direction::kMemberToPlatform);
    platform_.emplace(platform_keys, settings_, clock_);
    member_.emplace(member_keys, settings_, clock_);
  }

  std::string seal(std::string_view payload = "payload", std::string_view topic = kTopic) {
    auto sealed = member_->seal(topic, payload);
    EXPECT_TRUE(sealed);
    return sealed ? *sealed : std::string();
  }
  Failure refusal(std::string_view envelope, std::string_view topic = kTopic) {
    auto opened = platform_->open(topic, envelope);
    EXPECT_FALSE(opened);
    return opened ? Failure::kInternal : opened.error().failure;
  }

  E2eSettings settings_;
  FixedClock clock_{Clock::TimePoint(1795305600s)};
  std::optional<Session> platform_;
  std::optional<Session> member_;
};

TEST_F(SessionTest, SealedPayloadOpensOnTheOtherSideWithExactlyTheOverhead) {
  const std::string envelope = seal("{\"x\":1}");
  EXPECT_EQ(envelope.size(), 7 + kEnvelopeOverhead);
  EXPECT_EQ(envelope.find("\"x\""), std::string::npos);
  auto opened = platform_->open(kTopic, envelope);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_EQ(*opened, "{\"x\":1}");
  auto empty = platform_->open(kTopic, seal(""));
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
}

TEST_F(SessionTest, ChaChaSuiteWorksToo) {
  make(Suite::kChaCha20Poly1305);
  const std::string envelope = seal("hello");
  EXPECT_EQ(static_cast<std::uint8_t>(envelope[2]), 2);
  auto opened = platform_->open(kTopic, envelope);
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, "hello");
}

TEST_F(SessionTest, EveryFlippedBitIsRefusedAndClassified) {
  const std::string envelope = seal("a payload of some length");
  for (std::size_t i = 0; i < envelope.size(); ++i) {
    std::string bad = envelope;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    const Failure f = refusal(bad);
    switch (i) {
      case 0:
      case 1:
        EXPECT_EQ(f, Failure::kMalformed) << i;
        break;
      case 2:
        EXPECT_EQ(f, Failure::kUnsupportedSuite) << i;
        break;
      case 3:
        EXPECT_EQ(f, Failure::kWrongDirection) << i;
        break;
      case 4:
        EXPECT_EQ(f, Failure::kTampered) << i;  // epoch 1 is derived, and its key does not fit
        break;
      case 5:
      case 6:
      case 7:
      case 8:
        EXPECT_EQ(f, Failure::kUnknownSession) << i;
        break;
      default:
        // The sequence (0 is malformed), the timestamp (far off: stale), ciphertext and tag.
        EXPECT_TRUE(f == Failure::kTampered || f == Failure::kStale || f == Failure::kMalformed)
            << i;
    }
  }
  // Nothing above moved the session: the genuine envelope still opens.
  EXPECT_TRUE(platform_->open(kTopic, envelope));
}

TEST_F(SessionTest, AnotherTopicIsTampering) {
  EXPECT_EQ(refusal(seal(), "/r1/m2/metrics/aggregate"), Failure::kTampered);
}

TEST_F(SessionTest, TruncatedEnvelopesAreRefused) {
  const std::string envelope = seal();
  for (std::size_t n = 0; n < kEnvelopeOverhead; ++n) {
    EXPECT_EQ(refusal(envelope.substr(0, n)), Failure::kTruncated) << n;
  }
  EXPECT_EQ(refusal(envelope.substr(0, envelope.size() - 1)), Failure::kTampered);
}

TEST_F(SessionTest, ReplayIsRefusedAndReorderWithinTheWindowIsAccepted) {
  const std::string first = seal("1");
  const std::string second = seal("2");
  ASSERT_TRUE(platform_->open(kTopic, second));
  ASSERT_TRUE(platform_->open(kTopic, first));  // late but inside the window
  EXPECT_EQ(refusal(first), Failure::kReplayed);
  EXPECT_EQ(refusal(second), Failure::kReplayed);
}

TEST_F(SessionTest, ReorderBeyondTheWindowIsRefused) {
  const std::string old = seal("old");
  for (std::uint32_t i = 0; i < settings_.replay_window; ++i) {
    ASSERT_TRUE(platform_->open(kTopic, seal("x")));
  }
  EXPECT_EQ(refusal(old), Failure::kOutsideWindow);
}

TEST_F(SessionTest, StaleAndFutureTimestampsAreRefused) {
  const std::string envelope = seal();
  clock_.set(clock_.now() + settings_.max_age + 1s);
  EXPECT_EQ(refusal(envelope), Failure::kStale);
  const std::string future = seal();
  clock_.set(clock_.now() - settings_.max_skew - 1s);
  EXPECT_EQ(refusal(future), Failure::kStale);
}

TEST_F(SessionTest, OwnDirectionIsAReflection) {
  auto own = platform_->seal(kTopic, "control");
  ASSERT_TRUE(own);
  auto reflected = platform_->open(kTopic, *own);
  ASSERT_FALSE(reflected);
  EXPECT_EQ(reflected.error().failure, Failure::kWrongDirection);
}

TEST_F(SessionTest, KeysRotateByMessageCountAndTheReceiverFollows) {
  settings_.rotate_after_messages = 3;
  make(Suite::kAes256Gcm);
  for (int i = 0; i < 10; ++i) {
    const std::string envelope = seal();
    EXPECT_EQ(static_cast<std::uint8_t>(envelope[4]), i / 3);
    ASSERT_TRUE(platform_->open(kTopic, envelope)) << i;
  }
  EXPECT_EQ(member_->stats().send_epoch, 3U);
  EXPECT_EQ(platform_->stats().receive_epoch, 3U);
}

TEST_F(SessionTest, KeysRotateByTimeAndTheOldEpochIsOpenOnlyDuringItsGrace) {
  settings_.rotate_after = 60s;
  settings_.epoch_grace = 30s;
  make(Suite::kAes256Gcm);
  const std::string in_epoch_0 = seal("a");
  const std::string late_epoch_0 = seal("b");
  ASSERT_TRUE(platform_->open(kTopic, in_epoch_0));
  clock_.set(clock_.now() + 61s);
  const std::string in_epoch_1 = seal("c");
  EXPECT_EQ(in_epoch_1[4], 1);
  ASSERT_TRUE(platform_->open(kTopic, in_epoch_1));
  // Still within the grace: a late message of epoch 0 opens.
  ASSERT_TRUE(platform_->open(kTopic, late_epoch_0));
  const std::string another_epoch_0 = std::string(late_epoch_0);
  EXPECT_EQ(refusal(another_epoch_0), Failure::kReplayed);
}

TEST_F(SessionTest, AnEpochTooFarAheadOrPastItsGraceIsRefused) {
  settings_.rotate_after_messages = 1;
  settings_.epoch_grace = 0s;
  make(Suite::kAes256Gcm);
  std::vector<std::string> sealed;
  for (int i = 0; i < 8; ++i) {
    sealed.push_back(seal());
  }
  EXPECT_EQ(refusal(sealed[6]), Failure::kWrongEpoch);  // 6 epochs ahead
  ASSERT_TRUE(platform_->open(kTopic, sealed[2]));
  clock_.set(clock_.now() + 1s);
  ASSERT_TRUE(platform_->open(kTopic, sealed[3]));
  clock_.set(clock_.now() + 1s);
  // Epoch 0's messages are inside the replay window but their keys are gone.
  EXPECT_EQ(refusal(sealed[0]), Failure::kWrongEpoch);
}

TEST_F(SessionTest, ATamperedEnvelopeNeverAdvancesTheEpoch) {
  settings_.rotate_after_messages = 1;
  make(Suite::kAes256Gcm);
  const std::string first = seal();
  std::string forged = seal();
  forged.back() = static_cast<char>(forged.back() ^ 1);
  EXPECT_EQ(refusal(forged), Failure::kTampered);
  EXPECT_EQ(platform_->stats().receive_epoch, 0U);
  EXPECT_TRUE(platform_->open(kTopic, first));
}

TEST_F(SessionTest, OversizePayloadIsRefusedOnBothSides) {
  const std::string big(kMaxPayloadBytes + 1, 'x');
  auto sealed = member_->seal(kTopic, big);
  ASSERT_FALSE(sealed);
  EXPECT_EQ(sealed.error().failure, Failure::kMalformed);
  std::string forged = seal();
  forged.append(big);
  EXPECT_EQ(refusal(forged), Failure::kMalformed);
}

}  // namespace
}  // namespace recmesh::e2e
