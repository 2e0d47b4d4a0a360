#include "bridge/topic_map_cache.hpp"

#include <string>

#include <gtest/gtest.h>

#include "recmesh/protocol/bridge_mapping.hpp"

namespace recmesh::bridge {
namespace {

const protocol::BridgeRule* metrics_rule() {
  return protocol::find_local_rule("/platform/metrics/pv1");
}

TEST(TopicMapCacheTest, AMappedTopicIsFoundWithItsRuleAndTarget) {
  TopicMapCache cache(8);
  ASSERT_NE(metrics_rule(), nullptr);
  EXPECT_EQ(cache.find("/platform/metrics/pv1"), nullptr);
  cache.insert("/platform/metrics/pv1", {metrics_rule(), "/r1/m1/metrics/pv1"});
  const TopicMapCache::Entry* entry = cache.find("/platform/metrics/pv1");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->rule, metrics_rule());
  EXPECT_EQ(entry->target, "/r1/m1/metrics/pv1");
  EXPECT_EQ(cache.find("/platform/metrics/pv2"), nullptr);
  EXPECT_EQ(cache.find("/platform/metrics/pv"), nullptr);  // no prefix match
}

// A source sending ever new topics cannot make it grow without bound.
TEST(TopicMapCacheTest, ItHoldsAtMostItsCapacityAndStartsOverWhenFull) {
  TopicMapCache cache(4);
  for (int i = 0; i < 1000; ++i) {
    const std::string topic = "/platform/metrics/d" + std::to_string(i);
    const TopicMapCache::Entry& entry = cache.insert(topic, {metrics_rule(), "/r1/m1" + topic});
    EXPECT_EQ(entry.target, "/r1/m1" + topic);
    EXPECT_LE(cache.size(), 4u);
    EXPECT_NE(cache.find(topic), nullptr);  // the newest is always kept
  }
}

}  // namespace
}  // namespace recmesh::bridge
