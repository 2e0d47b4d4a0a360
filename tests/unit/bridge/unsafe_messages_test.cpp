#include "bridge/unsafe_messages.hpp"

#include <chrono>
#include <vector>

#include <gtest/gtest.h>

namespace recmesh::bridge {
namespace {

using namespace std::chrono_literals;
using Ids = std::vector<mqtt::MessageId>;

UnsafeMessages::TimePoint at(std::chrono::milliseconds since_start) {
  return UnsafeMessages::TimePoint{} + since_start;
}

TEST(UnsafeMessagesTest, TheOldestUnsafeMessageIsTheOneToStoreFirst) {
  UnsafeMessages unsafe;
  EXPECT_TRUE(unsafe.empty());
  EXPECT_FALSE(unsafe.oldest().has_value());
  unsafe.add(1, at(10ms));
  unsafe.add(2, at(20ms));
  unsafe.add(3, at(30ms));
  EXPECT_EQ(unsafe.size(), 3U);
  EXPECT_EQ(unsafe.oldest(), at(10ms));
  unsafe.made_safe(2);  // out of order: the oldest stays
  EXPECT_EQ(unsafe.oldest(), at(10ms));
  unsafe.made_safe(1);  // the next unsafe one is now the oldest, not the safe 2
  EXPECT_EQ(unsafe.oldest(), at(30ms));
  EXPECT_EQ(unsafe.size(), 1U);
  unsafe.made_safe(3);
  EXPECT_TRUE(unsafe.empty());
  EXPECT_FALSE(unsafe.oldest().has_value());
}

TEST(UnsafeMessagesTest, TakingUpToATimeReturnsThoseForwardedByThenOldestFirst) {
  UnsafeMessages unsafe;
  for (mqtt::MessageId id = 1; id <= 5; ++id) {
    unsafe.add(id, at(std::chrono::milliseconds(10 * id)));
  }
  unsafe.made_safe(2);
  EXPECT_EQ(unsafe.take(at(35ms)), (Ids{1, 3}));
  EXPECT_EQ(unsafe.oldest(), at(40ms));
  EXPECT_EQ(unsafe.take(at(35ms)), Ids{});
  unsafe.made_safe(3);  // taken (stored) already: nothing changes
  EXPECT_EQ(unsafe.size(), 2U);
  EXPECT_EQ(unsafe.take(), (Ids{4, 5}));
  EXPECT_TRUE(unsafe.empty());
}

// The client hands out an ID again once its message is acknowledged: the entry of the first
// message must neither make the second one older than it is nor make it safe.
TEST(UnsafeMessagesTest, AnIdUsedAgainAfterItsMessageWasMadeSafeCountsAsTheNewMessage) {
  UnsafeMessages unsafe;
  unsafe.add(7, at(10ms));
  unsafe.add(8, at(20ms));
  unsafe.made_safe(8);
  unsafe.add(8, at(30ms));  // 8 again, while the first 8's entry waits behind 7
  unsafe.made_safe(7);
  EXPECT_EQ(unsafe.oldest(), at(30ms));
  EXPECT_EQ(unsafe.take(at(25ms)), Ids{});
  EXPECT_EQ(unsafe.size(), 1U);
  EXPECT_EQ(unsafe.take(at(30ms)), Ids{8});
  EXPECT_TRUE(unsafe.empty());
}

TEST(UnsafeMessagesTest, MakingSafeAnIdNeverAddedChangesNothing) {
  UnsafeMessages unsafe;
  unsafe.made_safe(4);
  EXPECT_TRUE(unsafe.empty());
  unsafe.add(5, at(10ms));
  unsafe.made_safe(4);
  EXPECT_EQ(unsafe.size(), 1U);
  EXPECT_EQ(unsafe.oldest(), at(10ms));
}

}  // namespace
}  // namespace recmesh::bridge
