#include "recmesh/mqtt/reconnect_backoff.hpp"

#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh::mqtt {
namespace {

using std::chrono::milliseconds;

BackoffPolicy policy(milliseconds initial, milliseconds max, double jitter = 0.5) {
  BackoffPolicy p;
  p.initial = initial;
  p.max = max;
  p.multiplier = 2.0;
  p.jitter = jitter;
  return p;
}

UniformRandom constant(double value) {
  return [value] { return value; };
}

std::vector<long long> draw(ReconnectBackoff& backoff, int count) {
  std::vector<long long> delays;
  for (int i = 0; i < count; ++i) {
    delays.push_back(backoff.next().count());
  }
  return delays;
}

TEST(ReconnectBackoffTest, WithoutJitterDoublesFromInitialUpToMax) {
  ReconnectBackoff backoff(policy(milliseconds(100), milliseconds(1000), 0.0), constant(0.7));
  EXPECT_EQ(draw(backoff, 7), (std::vector<long long>{100, 200, 400, 800, 1000, 1000, 1000}));
  EXPECT_EQ(backoff.failures(), 7);
}

TEST(ReconnectBackoffTest, JitterTakesAtMostItsFractionOffTheNominalDelay) {
  // u = 0 keeps the nominal delay; u -> 1 takes the full jitter fraction off it.
  ReconnectBackoff longest(policy(milliseconds(100), milliseconds(800)), constant(0.0));
  EXPECT_EQ(draw(longest, 5), (std::vector<long long>{100, 200, 400, 800, 800}));
  ReconnectBackoff shortest(policy(milliseconds(100), milliseconds(800)), constant(1.0));
  EXPECT_EQ(draw(shortest, 5), (std::vector<long long>{50, 100, 200, 400, 400}));
  ReconnectBackoff middle(policy(milliseconds(100), milliseconds(800)), constant(0.5));
  EXPECT_EQ(draw(middle, 3), (std::vector<long long>{75, 150, 300}));
}

TEST(ReconnectBackoffTest, RandomDelaysStayWithinTheJitterBand) {
  ReconnectBackoff backoff(policy(milliseconds(1000), milliseconds(60000)), make_uniform_random());
  long long nominal = 1000;
  for (int i = 0; i < 200; ++i) {
    const long long delay = backoff.next().count();
    EXPECT_GE(delay, nominal / 2) << "attempt " << i;
    EXPECT_LE(delay, nominal) << "attempt " << i;
    nominal = std::min<long long>(nominal * 2, 60000);
  }
}

TEST(ReconnectBackoffTest, ResetStartsOverAtInitial) {
  ReconnectBackoff backoff(policy(milliseconds(10), milliseconds(1000), 0.0), constant(0.0));
  draw(backoff, 5);
  EXPECT_EQ(backoff.nominal(), milliseconds(320));
  backoff.reset();
  EXPECT_EQ(backoff.failures(), 0);
  EXPECT_EQ(backoff.next(), milliseconds(10));
}

TEST(ReconnectBackoffTest, ManyFailuresNeitherOverflowNorExceedMax) {
  ReconnectBackoff backoff(policy(milliseconds(1), milliseconds(30000), 0.0), constant(0.0));
  for (int i = 0; i < 10000; ++i) {
    const auto delay = backoff.next();
    ASSERT_GE(delay.count(), 1);
    ASSERT_LE(delay.count(), 30000);
  }
  EXPECT_EQ(backoff.next(), milliseconds(30000));
}

TEST(ReconnectBackoffTest, FaultyRandomSourceIsClamped) {
  ReconnectBackoff high(policy(milliseconds(100), milliseconds(100)), constant(7.0));
  EXPECT_EQ(high.next(), milliseconds(50));
  ReconnectBackoff low(policy(milliseconds(100), milliseconds(100)), constant(-3.0));
  EXPECT_EQ(low.next(), milliseconds(100));
}

TEST(ReconnectBackoffTest, RejectsPoliciesThatWouldSpinOrNeverGrow) {
  EXPECT_THROW(ReconnectBackoff(policy(milliseconds(0), milliseconds(10)), constant(0)), Error);
  EXPECT_THROW(ReconnectBackoff(policy(milliseconds(100), milliseconds(10)), constant(0)), Error);
  EXPECT_THROW(ReconnectBackoff(policy(milliseconds(1), milliseconds(10), 1.0), constant(0)),
               Error);
  BackoffPolicy shrinking = policy(milliseconds(10), milliseconds(100));
  shrinking.multiplier = 0.5;
  EXPECT_THROW(ReconnectBackoff(shrinking, constant(0)), Error);
}

}  // namespace
}  // namespace recmesh::mqtt
