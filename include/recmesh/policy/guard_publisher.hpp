#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "recmesh/core/result.hpp"
#include "recmesh/mqtt/control_channel.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::policy {

// Pushes policy bundles to one broker's recmesh-guard, as the Security Manager: signs a bundle,
// publishes it on kGuardControlTopic over its own MQTT connection (the management listener of a
// local broker, the EMS listener of the central one) and waits for the broker's answer.
//
// Blocking, over an mqtt::ControlChannel (a private event loop driven by the calling thread):
// every call must come from the same thread. The connection is opened on the first push and
// kept.
class GuardPublisher {
 public:
  // `client` connects with the Security Manager's certificate (ems_secmgr of the EMS CA).
  GuardPublisher(BundleSigner signer, mqtt::MqttClientOptions client);
  GuardPublisher(const GuardPublisher&) = delete;
  GuardPublisher& operator=(const GuardPublisher&) = delete;
  ~GuardPublisher();

  // Signs and pushes `bundle`; the broker's verdict (accepted or refused with its reason), or
  // kUnavailable when no connection or answer came within `timeout`, at once when the
  // connection attempt fails ("not reachable". The next push tries to connect again.
  Result<GuardResponse> push(const PolicyBundle& bundle,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Pushes bytes as they are (an already signed bundle, or anything a test wants to try).
  Result<GuardResponse> push_signed(std::string_view signed_bundle,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));

  const BundleSigner& signer() const { return signer_; }

 private:
  BundleSigner signer_;
  mqtt::ControlChannel channel_;
};

}  // namespace recmesh::policy
