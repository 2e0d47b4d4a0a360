#include "recmesh/policy/guard_publisher.hpp"

namespace recmesh::policy {

GuardPublisher::GuardPublisher(BundleSigner signer, mqtt::MqttClientOptions client)
    : signer_(std::move(signer)),
      channel_(std::move(client), std::string(kGuardControlTopic),
               std::string(kGuardResponseTopic)) {}

GuardPublisher::~GuardPublisher() = default;

Result<GuardResponse> GuardPublisher::push(const PolicyBundle& bundle,
                                           std::chrono::milliseconds timeout) {
  return push_signed(signer_.sign(bundle), timeout);
}

Result<GuardResponse> GuardPublisher::push_signed(std::string_view signed_bundle,
                                                  std::chrono::milliseconds timeout) {
  auto answer = channel_.request(signed_bundle, timeout);
  if (!answer) {
    return answer.status();
  }
  return parse_guard_response(*answer);
}

}  // namespace recmesh::policy
