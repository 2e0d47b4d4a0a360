// `recmesh bridge` under a steady QoS 1 stream while things fail: every message the local
// broker acknowledged to the publisher reaches the EMS-side subscriber on the central broker,
// counted by the sequence number in its payload. Delivery is at least once: duplicates may
// cross (the subscriber's set of sequence numbers absorbs them; docs/bridge.md says how a
// consumer dedupes). The store's overflow policies are shown with a small store.
#include <csignal>
#include <string>

#include "bridge_fixture.hpp"

namespace recmesh::testing {
namespace {

constexpr int kRate = 200;  // messages per second

class BridgeDurabilityTest : public ::testing::Test {
 protected:
  void start(const BridgeOptions& options = {}) {
    world_.start_bridge(options);
    ASSERT_TRUE(eventually([&] {
      return world_.metric("recmesh_bridge_connected{broker=\"central\"}").value_or(0) == 1 &&
             world_.metric("recmesh_bridge_connected{broker=\"local\"}").value_or(0) == 1;
    })) << world_.bridge_log();
    std::this_thread::sleep_for(300ms);  // its subscriptions follow the CONNACKs
    stream_ = std::make_unique<SequenceStream>(world_, kRate);
    ASSERT_TRUE(stream_->ready());
    stream_->start();
  }

  void expect_every_acknowledged_message_crossed() {
    stream_->stop();
    const bool all = stream_->all_acked_received(40s);
    const auto missing = stream_->missing();
    EXPECT_TRUE(all) << missing.size() << " acknowledged message(s) lost, first "
                     << (missing.empty() ? -1 : missing.front()) << "; log:\n"
                     << world_.bridge_log().substr(0, 20000);
    EXPECT_GT(stream_->acked().size(), static_cast<std::size_t>(kRate));
  }

  BridgeWorld world_;
  std::unique_ptr<SequenceStream> stream_;
};

TEST_F(BridgeDurabilityTest, CentralBrokerRestart) {
  start();
  std::this_thread::sleep_for(1500ms);
  world_.restart_central(1500ms);
  std::this_thread::sleep_for(1500ms);
  expect_every_acknowledged_message_crossed();
  EXPECT_GE(world_.metric_or_zero(R"(recmesh_bridge_reconnects_total{broker="central"})"), 1.0);
}

TEST_F(BridgeDurabilityTest, LocalBrokerRestart) {
  start();
  std::this_thread::sleep_for(1500ms);
  world_.restart_local(1500ms);
  std::this_thread::sleep_for(2000ms);
  expect_every_acknowledged_message_crossed();
  EXPECT_GE(world_.metric_or_zero(R"(recmesh_bridge_reconnects_total{broker="local"})"), 1.0);
}

TEST_F(BridgeDurabilityTest, BridgeKilledWithSigkill) {
  BridgeOptions options;
  options.through_proxy = true;
  start(options);
  std::this_thread::sleep_for(1000ms);
  // Messages pile up in the store while the backbone is cut; then the bridge crashes.
  world_.backbone().cut();
  std::this_thread::sleep_for(1000ms);
  world_.kill_bridge();
  std::this_thread::sleep_for(1000ms);
  world_.backbone().restore();
  world_.start_bridge(options);
  std::this_thread::sleep_for(1500ms);
  world_.kill_bridge();  // once more, while it replays the store
  world_.start_bridge(options);
  std::this_thread::sleep_for(1500ms);
  expect_every_acknowledged_message_crossed();
}

TEST_F(BridgeDurabilityTest, BackboneCut) {
  BridgeOptions options;
  options.through_proxy = true;
  start(options);
  std::this_thread::sleep_for(1000ms);
  world_.backbone().cut(TcpProxy::Cut::kReset);
  std::this_thread::sleep_for(3000ms);
  EXPECT_GT(world_.metric_or_zero("recmesh_bridge_queue_depth"), 0.0);
  world_.backbone().cut(TcpProxy::Cut::kBlackhole);  // the route dies silently for a while too
  std::this_thread::sleep_for(3000ms);
  world_.backbone().restore();
  std::this_thread::sleep_for(2000ms);
  expect_every_acknowledged_message_crossed();
  EXPECT_TRUE(eventually([&] { return world_.metric_or_zero("recmesh_bridge_queue_depth") == 0; }));
  EXPECT_EQ(world_.metric_or_zero(R"(recmesh_bridge_dropped_total{reason="overflow"})"), 0.0);
}

TEST_F(BridgeDurabilityTest, FullStoreBlocksReadingAndLosesNothing) {
  BridgeOptions options;
  options.through_proxy = true;
  options.store_max_messages = 100;
  start(options);
  world_.backbone().cut();
  ASSERT_TRUE(eventually([&] { return world_.metric_or_zero("recmesh_bridge_blocked") == 1; }))
      << world_.bridge_log();
  std::this_thread::sleep_for(1000ms);
  // Reading stopped near the limit: the rest waits in the local broker's session.
  EXPECT_LE(world_.metric_or_zero("recmesh_bridge_queue_depth"), 100.0 + 50.0);
  world_.backbone().restore();
  std::this_thread::sleep_for(1000ms);
  expect_every_acknowledged_message_crossed();
  EXPECT_EQ(world_.metric_or_zero(R"(recmesh_bridge_dropped_total{reason="overflow"})"), 0.0);
}

TEST_F(BridgeDurabilityTest, DropNewestCountsWhatItDrops) {
  BridgeOptions options;
  options.through_proxy = true;
  options.store_max_messages = 100;
  options.overflow = "drop-newest";
  start(options);
  std::this_thread::sleep_for(300ms);
  world_.backbone().cut();
  std::this_thread::sleep_for(2000ms);
  world_.backbone().restore();
  std::this_thread::sleep_for(500ms);
  stream_->stop();
  const std::size_t acked = stream_->acked().size();
  const auto dropped = [&] {
    return world_.metric_or_zero(R"(recmesh_bridge_dropped_total{reason="overflow"})");
  };
  ASSERT_TRUE(eventually([&] {
    return stream_->received().size() + static_cast<std::size_t>(dropped()) == acked;
  })) << "received "
      << stream_->received().size() << " + dropped " << dropped() << " != acknowledged " << acked;
  EXPECT_GT(dropped(), 0.0);
  // The newest were dropped: the oldest of the outage crossed.
  EXPECT_TRUE(stream_->received().contains(*stream_->acked().begin()));
}

TEST_F(BridgeDurabilityTest, DropOldestCountsWhatItDropsAndKeepsTheNewest) {
  BridgeOptions options;
  options.through_proxy = true;
  options.store_max_messages = 100;
  options.overflow = "drop-oldest";
  start(options);
  std::this_thread::sleep_for(300ms);
  world_.backbone().cut();
  std::this_thread::sleep_for(2000ms);
  stream_->stop();
  std::this_thread::sleep_for(300ms);
  world_.backbone().restore();
  const std::size_t acked = stream_->acked().size();
  const auto dropped = [&] {
    return world_.metric_or_zero(R"(recmesh_bridge_dropped_total{reason="overflow"})");
  };
  ASSERT_TRUE(eventually([&] {
    return stream_->received().size() + static_cast<std::size_t>(dropped()) == acked;
  })) << "received "
      << stream_->received().size() << " + dropped " << dropped() << " != acknowledged " << acked;
  EXPECT_GT(dropped(), 0.0);
  EXPECT_TRUE(stream_->received().contains(*stream_->acked().rbegin()));
}

}  // namespace
}  // namespace recmesh::testing
