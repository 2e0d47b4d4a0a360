#include "recmesh/e2e/delivery.hpp"

#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/clock.hpp"
#include "recmesh/e2e/key_schedule.hpp"
#include "recmesh/e2e/session.hpp"

namespace recmesh::e2e {
namespace {

TEST(SequenceWindow, RemembersAcceptedNumbersAndRoundTripsThroughItsBitmap) {
  SequenceWindow w(64);
  EXPECT_FALSE(w.check(5));
  w.accept(5);
  w.accept(7);
  w.accept(3);
  EXPECT_EQ(w.check(5), Failure::kReplayed);
  EXPECT_FALSE(w.check(6));
  EXPECT_FALSE(w.check(8));
  const std::string bits = w.bitmap();
  ASSERT_EQ(bits.size(), 8U);
  EXPECT_EQ(static_cast<unsigned char>(bits[0]), 0b10101U);  // 7, 5 and 3: offsets 0, 2, 4
  auto restored = SequenceWindow::restore(w.highest(), bits);
  ASSERT_TRUE(restored) << restored.error().detail;
  EXPECT_EQ(restored->highest(), 7U);
  EXPECT_TRUE(restored->delivered(3));
  EXPECT_FALSE(restored->delivered(4));
  EXPECT_TRUE(restored->delivered(7));
  EXPECT_EQ(restored->bitmap(), bits);
  // Far ahead: the window moves, everything below it counts as delivered.
  w.accept(1000);
  EXPECT_EQ(w.check(7), Failure::kOutsideWindow);
  EXPECT_FALSE(w.check(999));
}

TEST(SequenceWindow, RestoreRefusesWhatNoWindowCouldHaveWritten) {
  EXPECT_TRUE(SequenceWindow::restore(0, std::string(8, '\0')));
  EXPECT_FALSE(SequenceWindow::restore(0, std::string(7, '\0')));    // 56 bits
  EXPECT_FALSE(SequenceWindow::restore(0, std::string(520, '\0')));  // 4160 bits
  EXPECT_FALSE(SequenceWindow::restore(0, std::string()));
  EXPECT_FALSE(SequenceWindow::restore(0, std::string("\x01") + std::string(7, '\0')));
  EXPECT_FALSE(SequenceWindow::restore(9, std::string(8, '\0')));  // highest not marked
  EXPECT_FALSE(SequenceWindow::restore(9, std::string("\x02") + std::string(7, '\0')));
  // Bit 3 is number 0: below the first sequence number.
  EXPECT_FALSE(SequenceWindow::restore(3, std::string("\x09") + std::string(7, '\0')));
  EXPECT_TRUE(SequenceWindow::restore(3, std::string("\x05") + std::string(7, '\0')));
}

TEST(Ack, RoundTripsAndConfirmsExactlyWhatWasStored) {
  SequenceWindow w(64);
  for (const std::uint64_t n : {100U, 101U, 103U}) {
    w.accept(n);
  }
  const std::string bytes = encode_ack(w);
  EXPECT_EQ(bytes.size(), 3U + 8 + 2 + 8);
  EXPECT_TRUE(looks_like_ack(bytes));
  auto ack = parse_ack(bytes);
  ASSERT_TRUE(ack) << ack.error().detail;
  EXPECT_EQ(ack->highest, 103U);
  EXPECT_EQ(ack->window, 64U);
  EXPECT_TRUE(ack->confirms(100));
  EXPECT_TRUE(ack->confirms(101));
  EXPECT_FALSE(ack->confirms(102));  // still on its way: the gateway keeps it
  EXPECT_TRUE(ack->confirms(103));
  EXPECT_FALSE(ack->confirms(104));
  EXPECT_FALSE(ack->confirms(0));
  EXPECT_TRUE(ack->confirms(39));  // below the window: taken as delivered
  EXPECT_FALSE(ack->confirms(40));
}

TEST(Ack, MalformedTruncatedAndOversizeAcksAreRefused) {
  SequenceWindow w(128);
  w.accept(42);
  const std::string good = encode_ack(w);
  ASSERT_TRUE(parse_ack(good));
  EXPECT_EQ(parse_ack("").error().failure, Failure::kTruncated);
  EXPECT_EQ(parse_ack("ack").error().failure, Failure::kTruncated);
  EXPECT_EQ(parse_ack(good.substr(0, good.size() - 1)).error().failure, Failure::kTruncated);
  EXPECT_EQ(parse_ack(good + "x").error().failure, Failure::kMalformed);
  EXPECT_EQ(parse_ack("nak" + good.substr(3)).error().failure, Failure::kMalformed);
  // A window size outside 64..4096 or not a multiple of 64.
  for (const unsigned size : {0U, 8U, 100U, 4160U, 65535U}) {
    std::string bad = good.substr(0, 11);
    bad.push_back(static_cast<char>(size >> 8));
    bad.push_back(static_cast<char>(size & 0xFFU));
    bad.append(size / 8, '\xff');
    EXPECT_EQ(parse_ack(bad).error().failure, Failure::kMalformed) << size;
  }
  // A forged bitmap claiming numbers below 1, or not marking its own highest.
  std::string below = good;
  below.back() = '\x80';  // offset 127 of highest 42
  EXPECT_EQ(parse_ack(below).error().failure, Failure::kMalformed);
  std::string unmarked = good;
  unmarked[13] = '\0';
  EXPECT_EQ(parse_ack(unmarked).error().failure, Failure::kMalformed);
}

Session make_session(Direction d) {
  return Session(
      derive_session_keys(std::string(32, '\x17'), "init", "response", 7, Suite::kAes256Gcm, d),
      E2eSettings{}, SystemClock::instance());
}

TEST(SessionSequence, AGivenSequenceNumberIsUsedOnceAndOnlyGoesUp) {
  Session sender = make_session(Direction::kMemberToPlatform);
  Session receiver = make_session(Direction::kPlatformToMember);
  auto first = sender.seal("/r1/m1/metrics/aggregate", "a", 500);
  ASSERT_TRUE(first);
  auto view = parse_envelope(*first);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->header.sequence, 500U);
  ASSERT_TRUE(receiver.open("/r1/m1/metrics/aggregate", *first));
  // Never the same nonce twice in one session: a number not above the last is refused.
  EXPECT_EQ(sender.seal("/r1/m1/metrics/aggregate", "b", 500).error().failure, Failure::kReplayed);
  EXPECT_EQ(sender.seal("/r1/m1/metrics/aggregate", "b", 499).error().failure, Failure::kReplayed);
  EXPECT_EQ(sender.seal("/r1/m1/metrics/aggregate", "b", 0).error().failure, Failure::kMalformed);
  EXPECT_EQ(sender.seal("/r1/m1/metrics/aggregate", "b", ~std::uint64_t{0}).error().failure,
            Failure::kMalformed);
  // Gaps are fine; a number-less seal continues after the last one.
  ASSERT_TRUE(sender.seal("/r1/m1/metrics/aggregate", "c", 900));
  EXPECT_EQ(sender.next_sequence(), 901U);
  auto next = sender.seal("/r1/m1/metrics/aggregate", "d");
  ASSERT_TRUE(next);
  EXPECT_EQ(parse_envelope(*next)->header.sequence, 901U);
}

}  // namespace
}  // namespace recmesh::e2e
