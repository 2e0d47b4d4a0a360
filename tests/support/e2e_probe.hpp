#pragma once

#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "recmesh/e2e/endpoint.hpp"
#include "recmesh/e2e/failure.hpp"

#include "mqtt_probe.hpp"

namespace recmesh::testing {

// Plays one end of the end-to-end protection over a connected MqttTestClient, so integration
// tests can stand in for the EMS engine or a gateway and still see plaintext:
// - kPlatform: the EMS engine's end on a member's local broker (as if through the bridge):
//   publishes on /platform/control and /platform/keys, reads /platform/# and answers hellos.
// - kMember: a gateway's end on its local broker: publishes /platform/... sealed, opens
//   /platform/control and answers /platform/keys.
// Credentials and trust come from a PKI directory (ems_engine / rec_<r>_<m>_gateway).
class E2eProbe {
 public:
  enum class Side { kPlatform, kMember };

  E2eProbe(Side side, MqttTestClient& client, const std::filesystem::path& pki_dir, std::string rec,
           std::string member, e2e::E2eSettings settings = {});
  ~E2eProbe();

  // Subscribes to what this side reads (the keys topic and `extra` filters).
  bool subscribe(const std::vector<std::string>& extra);
  // Seals `payload` for local `topic` and publishes it, running a handshake first if needed.
  bool publish(const std::string& topic, const std::string& payload,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The next message, opened when protected; handshake messages are handled on the way.
  // Messages that fail to open are counted in refusals() and skipped.
  std::optional<ReceivedMessage> wait_for_message(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Runs the handshake now (kPlatform) or waits for the peer's (kMember).
  bool establish(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool established() const;
  const e2e::EndpointStats& stats() const;
  // The raw envelope bytes of the last protected message received (to replay or tamper).
  const ReceivedMessage& last_raw() const { return last_raw_; }

 private:
  void drain();
  // Handles one raw message; returns it (opened) when it is for the application.
  std::optional<ReceivedMessage> handle(ReceivedMessage m);

  Side side_;
  MqttTestClient& client_;
  std::string rec_, member_;
  std::unique_ptr<e2e::PlatformEndpoint> platform_;
  std::unique_ptr<e2e::MemberEndpoint> gateway_;
  std::deque<std::pair<std::string, std::string>> outgoing_;  // topic, payload
  std::deque<ReceivedMessage> held_;
  ReceivedMessage last_raw_;
  e2e::SequenceWindow stored_{1024};  // kPlatform: the gateway's message IDs taken
};

}  // namespace recmesh::testing
