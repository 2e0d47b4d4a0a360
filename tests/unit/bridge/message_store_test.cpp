#include "bridge/message_store.hpp"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

#include "temp_dir.hpp"

namespace recmesh::bridge {
namespace {

using protocol::BridgeDirection;

StoredMessage message(BridgeDirection direction, std::string topic, std::string payload) {
  StoredMessage m;
  m.direction = direction;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  return m;
}

TEST(MessageStoreTest, CommittedMessagesComeBackInOrderWithEveryField) {
  testing::TempDir dir;
  {
    MessageStore store(dir / "s.db", StoreSync::kProcess);
    StoredMessage a = message(BridgeDirection::kOut, "/r/m/metrics/x", std::string("\0\xff", 2));
    StoredMessage b = message(BridgeDirection::kIn, "/platform/control", "");
    b.retain = true;
    const std::int64_t first = store.append(a);
    const std::int64_t second = store.append(b);
    EXPECT_LT(first, second);
    EXPECT_TRUE(store.has_staged());
    store.commit();
    EXPECT_FALSE(store.has_staged());
  }
  MessageStore reopened(dir / "s.db", StoreSync::kProcess);
  const auto all = reopened.load_all();
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].direction, BridgeDirection::kOut);
  EXPECT_EQ(all[0].payload, std::string("\0\xff", 2));
  EXPECT_EQ(all[0].qos, 1);
  EXPECT_FALSE(all[0].retain);
  EXPECT_EQ(all[1].direction, BridgeDirection::kIn);
  EXPECT_EQ(all[1].topic, "/platform/control");
  EXPECT_TRUE(all[1].retain);
}

TEST(MessageStoreTest, RemovedMessagesStayRemoved) {
  testing::TempDir dir;
  {
    MessageStore store(dir / "s.db", StoreSync::kPower);
    StoredMessage a = message(BridgeDirection::kOut, "/a", "1");
    StoredMessage b = message(BridgeDirection::kOut, "/b", "2");
    store.append(a);
    store.append(b);
    store.commit();
    store.remove(a.id);
    store.commit();
  }
  MessageStore reopened(dir / "s.db", StoreSync::kPower);
  const auto all = reopened.load_all();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].topic, "/b");
}

TEST(MessageStoreTest, StagedRemovalsAloneAreNotStagedAppends) {
  testing::TempDir dir;
  MessageStore store(dir / "s.db", StoreSync::kProcess);
  StoredMessage a = message(BridgeDirection::kOut, "/a", "1");
  store.append(a);
  EXPECT_TRUE(store.has_staged_appends());
  store.commit();
  EXPECT_FALSE(store.has_staged_appends());
  store.remove(a.id);
  EXPECT_TRUE(store.has_staged());
  EXPECT_FALSE(store.has_staged_appends());  // the bridge may forward without committing this
  StoredMessage b = message(BridgeDirection::kOut, "/b", "2");
  store.append(b);
  EXPECT_TRUE(store.has_staged_appends());
  store.commit();
  EXPECT_FALSE(store.has_staged());
  EXPECT_FALSE(store.has_staged_appends());
  const auto all = store.load_all();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].topic, "/b");
}

TEST(MessageStoreTest, AFileThatIsNotADatabaseIsRefused) {
  testing::TempDir dir;
  std::ofstream(dir / "s.db") << std::string(4096, 'x');
  EXPECT_THROW(MessageStore(dir / "s.db", StoreSync::kProcess), Error);
}

}  // namespace
}  // namespace recmesh::bridge
