#include "recmesh/policy/quota_meter.hpp"

#include <gtest/gtest.h>

namespace recmesh::policy {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

TEST(QuotaMeterTest, RateLimitsRefillOverTime) {
  Quota q;
  q.publish_per_second = 3;
  QuotaMeter meter(q, 0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(meter.check_publish("/t", 1, false, 0).has_value());
  }
  EXPECT_EQ(meter.check_publish("/t", 1, false, 0), "publish rate");
  EXPECT_FALSE(meter.check_publish("/t", 1, false, kSecond / 2).has_value());  // 1.5 tokens
  EXPECT_EQ(meter.check_publish("/t", 1, false, kSecond / 2), "publish rate");
}

TEST(QuotaMeterTest, BytesPayloadRetainedSubscriptionsAndWill) {
  Quota q;
  q.bytes_per_second = 100;
  q.max_payload_bytes = 60;
  q.max_retained = 2;
  q.max_subscriptions = 3;
  q.max_will_bytes = 10;
  QuotaMeter meter(q, 0);
  EXPECT_EQ(meter.check_publish("/t", 61, false, 0), "payload size");
  EXPECT_FALSE(meter.check_publish("/t", 60, false, 0).has_value());
  EXPECT_EQ(meter.check_publish("/t", 60, false, 0), "byte rate");
  EXPECT_FALSE(meter.check_publish("/a", 1, true, 10 * kSecond).has_value());
  EXPECT_FALSE(meter.check_publish("/b", 1, true, 10 * kSecond).has_value());
  EXPECT_FALSE(meter.check_publish("/a", 1, true, 10 * kSecond).has_value());  // same topic
  EXPECT_EQ(meter.check_publish("/c", 1, true, 10 * kSecond), "retained messages");
  EXPECT_FALSE(meter.check_publish("/a", 0, true, 10 * kSecond).has_value());  // cleared
  EXPECT_FALSE(meter.check_publish("/c", 1, true, 10 * kSecond).has_value());
  EXPECT_FALSE(meter.check_subscribe(2).has_value());
  EXPECT_EQ(meter.check_subscribe(3), "subscriptions");
  EXPECT_FALSE(meter.check_will(10).has_value());
  EXPECT_EQ(meter.check_will(11), "will size");
}

TEST(QuotaMeterTest, ZeroMeansUnlimited) {
  QuotaMeter meter(Quota{}, 0);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_FALSE(meter.check_publish("/t", 100000, true, 0).has_value());
  }
  EXPECT_FALSE(meter.check_subscribe(100000).has_value());
  EXPECT_FALSE(meter.record_violation(0));
}

// A policy swap keeps a limited bucket's level (no fresh burst by pushing bundles), but a bucket
// that had no limit starts full: a client within the new rate is not throttled by the swap.
TEST(QuotaMeterTest, APolicySwapNeitherRefillsNorEmptiesTheBuckets) {
  Quota limited;
  limited.publish_per_second = 1000;
  limited.bytes_per_second = 128000;
  limited.disconnect_after_violations = 3;
  QuotaMeter meter(Quota{}, 0);
  for (int i = 0; i < 50; ++i) {
    ASSERT_FALSE(meter.check_publish("/t", 64, false, i * kSecond / 1000).has_value());
  }
  meter.set_quota(limited);
  // Every millisecond, right after the swap: within 1,000/s, never a violation.
  for (int i = 50; i < 3050; ++i) {
    ASSERT_FALSE(meter.check_publish("/t", 64, false, i * kSecond / 1000).has_value()) << i;
  }
  // A drained bucket stays drained across a swap to the same limits.
  const std::int64_t t = 4 * kSecond;
  int allowed = 0;
  while (!meter.check_publish("/t", 1, false, t).has_value()) {
    ++allowed;
  }
  EXPECT_LE(allowed, 1000);
  meter.set_quota(limited);
  EXPECT_EQ(meter.check_publish("/t", 1, false, t), "publish rate");
  // A lower limit caps the level.
  Quota lower = limited;
  lower.publish_per_second = 10;
  meter.set_quota(lower);
  int after = 0;
  while (!meter.check_publish("/t", 1, false, t + kSecond).has_value()) {
    ++after;
  }
  EXPECT_EQ(after, 10);
}

TEST(QuotaMeterTest, SustainedViolationsDisconnect) {
  Quota q;
  q.disconnect_after_violations = 3;
  QuotaMeter meter(q, 0);
  EXPECT_FALSE(meter.record_violation(0));
  EXPECT_FALSE(meter.record_violation(kSecond));
  EXPECT_FALSE(meter.record_violation(20 * kSecond));  // the first two left the window
  EXPECT_FALSE(meter.record_violation(21 * kSecond));
  EXPECT_TRUE(meter.record_violation(22 * kSecond));
  EXPECT_EQ(meter.violations(), 5u);
}

TEST(QuotaMeterTest, ConnectChecks) {
  Quota q;
  q.keepalive_min_s = 10;
  q.keepalive_max_s = 120;
  EXPECT_FALSE(connect_violation(q, 60).has_value());
  EXPECT_TRUE(connect_violation(q, 5).has_value());
  EXPECT_TRUE(connect_violation(q, 0).has_value());
  EXPECT_TRUE(connect_violation(q, 600).has_value());
  EXPECT_FALSE(connect_violation(Quota{}, 0).has_value());
  q.will_allowed = false;
  EXPECT_EQ(QuotaMeter(q, 0).check_will(0), "will not allowed");
}

}  // namespace
}  // namespace recmesh::policy
