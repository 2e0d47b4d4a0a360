// MqttClient without a broker: option checks, argument checks and the offline queue. The
// network behaviour is in tests/integration/mqtt_client_test.cpp, against real Mosquitto.
#include "recmesh/mqtt/mqtt_client.hpp"

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"
#include "recmesh/mqtt/event_loop.hpp"

#include "temp_dir.hpp"

namespace recmesh::mqtt {
namespace {

using namespace std::chrono_literals;

class MqttClientUnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // libmosquitto only checks at construction that the files can be opened.
    for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
      std::ofstream(tmp_ / name) << "placeholder\n";
    }
  }

  MqttClientOptions options() const {
    MqttClientOptions o;
    o.port = 1;  // never connected in these tests
    o.client_id = "unit-client";
    o.cafile = tmp_ / "ca.pem";
    o.certfile = tmp_ / "cert.pem";
    o.keyfile = tmp_ / "key.pem";
    return o;
  }

  std::string construction_error(const MqttClientOptions& o) {
    try {
      MqttClient client(loop_, o, {});
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return e.what();
    }
    return "";
  }

  testing::TempDir tmp_;
  EventLoop loop_;
};

TEST_F(MqttClientUnitTest, InvalidOptionsAreRefusedNamingTheField) {
  const auto with = [this](auto change) {
    MqttClientOptions o = options();
    change(o);
    return o;
  };
  EXPECT_NE(construction_error(with([](auto& o) { o.client_id.clear(); })).find("client_id"),
            std::string::npos);
  EXPECT_NE(construction_error(with([](auto& o) { o.port = 70000; })).find("port"),
            std::string::npos);
  EXPECT_NE(construction_error(with([](auto& o) { o.keepalive = 2s; })).find("keepalive"),
            std::string::npos);
  EXPECT_NE(construction_error(with([](auto& o) { o.default_qos = 3; })).find("default_qos"),
            std::string::npos);
  EXPECT_NE(construction_error(with([](auto& o) { o.cafile.clear(); })).find("cafile"),
            std::string::npos);
  EXPECT_NE(
      construction_error(with([](auto& o) { o.status_topic = "/a/+/status"; })).find("status"),
      std::string::npos);
  EXPECT_NE(construction_error(with([](auto& o) {
              o.max_pending_messages = 0;
            })).find("max_pending_messages"),
            std::string::npos);
  EXPECT_NE(construction_error(with([](auto& o) { o.reconnect.initial = 0ms; })).find("initial"),
            std::string::npos);
}

TEST_F(MqttClientUnitTest, UnreadableKeyFileIsRefusedWithItsPath) {
  MqttClientOptions o = options();
  o.keyfile = tmp_ / "missing.key";
  EXPECT_NE(construction_error(o).find("missing.key"), std::string::npos);
}

TEST_F(MqttClientUnitTest, RejectsInvalidTopicsFiltersAndQos) {
  MqttClient client(loop_, options(), {});
  for (const std::string& topic :
       {std::string(), std::string("/a/+/b"), std::string("/a/#"), std::string("a\0b", 3)}) {
    const Result<MessageId> id = client.publish(topic, "x");
    ASSERT_FALSE(id.ok()) << topic;
    EXPECT_EQ(id.status().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(client.publish("/a", "x", 3).ok());
  EXPECT_FALSE(client.subscribe("/a/#/b").ok());
  EXPECT_FALSE(client.subscribe("/a", -1).ok());
  EXPECT_TRUE(client.subscribe("/device/+/metrics/#").ok());
  EXPECT_EQ(client.stats().queued, 0U);
}

TEST_F(MqttClientUnitTest, QueueWhileDisconnectedIsBoundedAndEveryRefusalCounted) {
  MqttClientOptions o = options();
  o.max_pending_messages = 3;
  MqttClient client(loop_, o, {});
  std::vector<MessageId> ids;
  for (int i = 0; i < 3; ++i) {
    const Result<MessageId> id = client.publish("/device/d/metrics/p", std::to_string(i));
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);
  for (int i = 0; i < 2; ++i) {
    const Result<MessageId> refused = client.publish("/device/d/metrics/p", "late");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code, ErrorCode::kUnavailable);
  }
  EXPECT_EQ(client.pending_messages(), 3U);
  EXPECT_EQ(client.stats().queued, 3U);
  EXPECT_EQ(client.stats().dropped_queue_full, 2U);
}

TEST_F(MqttClientUnitTest, StopWithoutConnectionEndsAtOnceAndCountsTheQueue) {
  int stopped = 0;
  MqttClientCallbacks callbacks;
  callbacks.on_stopped = [&stopped] { ++stopped; };
  MqttClient client(loop_, options(), callbacks);
  ASSERT_TRUE(client.publish("/device/d/metrics/p", "1").ok());
  client.stop();
  EXPECT_EQ(client.state(), MqttClient::State::kStopped);
  EXPECT_EQ(client.stats().dropped_at_stop, 1U);
  loop_.run_once(0ms);  // on_stopped is posted
  EXPECT_EQ(stopped, 1);
  const Result<MessageId> after = client.publish("/device/d/metrics/p", "2");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code, ErrorCode::kFailedPrecondition);
  client.stop();  // idempotent
  loop_.run_once(0ms);
  EXPECT_EQ(stopped, 1);
}

TEST_F(MqttClientUnitTest, OnStoppedIsNotCalledForADestroyedClient) {
  int stopped = 0;
  MqttClientCallbacks callbacks;
  callbacks.on_stopped = [&stopped] { ++stopped; };
  auto client = std::make_unique<MqttClient>(loop_, options(), callbacks);
  client->stop();
  client.reset();
  loop_.run_once(0ms);
  EXPECT_EQ(stopped, 0);
}

}  // namespace
}  // namespace recmesh::mqtt
