#include "e2e_probe.hpp"

#include <fmt/format.h>

#include "recmesh/protocol/bridge_mapping.hpp"

namespace recmesh::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

E2eProbe::E2eProbe(Side side, MqttTestClient& client, const fs::path& pki_dir, std::string rec,
                   std::string member, e2e::E2eSettings settings)
    : side_(side), client_(client), rec_(std::move(rec)), member_(std::move(member)) {
  auto sink = [this](const std::string& topic, std::string payload, bool) {
    outgoing_.emplace_back(topic, std::move(payload));
    return true;
  };
  const std::string gateway_cn = fmt::format("rec_{}_{}_gateway", rec_, member_);
  if (side_ == Side::kPlatform) {
    platform_ = std::make_unique<e2e::PlatformEndpoint>(
        e2e::Credentials::from_files(pki_dir / "issued/ems_engine/chain.pem",
                                     pki_dir / "issued/ems_engine/key.pem"),
        [pki_dir](const std::string& r, const std::string& m) {
          return e2e::PeerTrust::from_pki_dir(pki_dir, fmt::format("member_{}_{}", r, m),
                                              fmt::format("rec_{}_{}_gateway", r, m));
        },
        settings, sink);
  } else {
    gateway_ = std::make_unique<e2e::MemberEndpoint>(
        e2e::Credentials::from_files(pki_dir / "issued" / gateway_cn / "chain.pem",
                                     pki_dir / "issued" / gateway_cn / "key.pem"),
        rec_, member_,
        [pki_dir] { return e2e::PeerTrust::from_pki_dir(pki_dir, "ems", "ems_engine"); }, settings,
        sink);
  }
}

E2eProbe::~E2eProbe() = default;

bool E2eProbe::subscribe(const std::vector<std::string>& extra) {
  std::vector<std::string> filters = extra;
  filters.emplace_back(side_ == Side::kPlatform ? "/platform/keys/response" : "/platform/keys");
  for (const auto& filter : filters) {
    if (!client_.subscribe(filter)) {
      return false;
    }
  }
  return true;
}

bool E2eProbe::established() const {
  return side_ == Side::kPlatform ? platform_->established(rec_, member_) : gateway_->established();
}

const e2e::EndpointStats& E2eProbe::stats() const {
  return side_ == Side::kPlatform ? platform_->stats() : gateway_->stats();
}

void E2eProbe::drain() {
  while (!outgoing_.empty()) {
    auto [topic, payload] = std::move(outgoing_.front());
    outgoing_.pop_front();
    // The engine's end speaks central names; on the local broker they are what the bridge
    // would deliver.
    if (side_ == Side::kPlatform) {
      if (auto local = protocol::map_central_to_local(rec_, member_, topic)) {
        topic = *local;
      }
    }
    client_.publish(topic, payload);
  }
}

std::optional<ReceivedMessage> E2eProbe::handle(ReceivedMessage m) {
  if (side_ == Side::kPlatform && m.topic == "/platform/keys/response") {
    (void)platform_->on_keys_response(rec_, member_, m.payload);
    drain();
    return std::nullopt;
  }
  if (side_ == Side::kMember && m.topic == "/platform/keys") {
    (void)gateway_->on_keys(m.payload);
    drain();
    return std::nullopt;
  }
  const std::string bound = e2e::bound_topic(rec_, member_, m.topic);
  if (bound.empty() || m.payload.empty()) {
    return m;  // not protected (status flags, device topics) or a cleared retained message
  }
  last_raw_ = m;
  if (side_ == Side::kPlatform) {
    // As the engine does: a gateway message ID stored before is a duplicate, and an ack
    // confirms what was taken (docs/protocol/e2e.md §6.1).
    auto opened = platform_->open_message(rec_, member_, bound, m.payload);
    if (opened && !stored_.delivered(opened->sequence)) {
      stored_.accept(opened->sequence);
      (void)platform_->acknowledge(rec_, member_, stored_);
      m.payload = std::move(opened->payload);
      drain();
      return m;
    }
    drain();
    return std::nullopt;
  }
  auto opened = gateway_->open(m.topic, m.payload);
  drain();
  if (!opened) {
    return std::nullopt;
  }
  m.payload = std::move(opened).value();
  return m;
}

bool E2eProbe::establish(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (side_ == Side::kPlatform) {
    platform_->connect(rec_, member_);
    drain();
  } else {
    gateway_->start();
    drain();
  }
  while (!established() && Clock::now() < deadline) {
    auto m = client_.wait_for_message(std::chrono::milliseconds(200));
    if (m) {
      if (auto app = handle(std::move(*m))) {
        held_.push_back(std::move(*app));
      }
    }
    if (side_ == Side::kPlatform) {
      platform_->poll();
    } else {
      gateway_->poll();
    }
    drain();
  }
  return established();
}

bool E2eProbe::publish(const std::string& topic, const std::string& payload,
                       std::chrono::milliseconds timeout) {
  if (!established() && !establish(timeout)) {
    return false;
  }
  const auto sealed =
      side_ == Side::kPlatform
          ? platform_->publish(rec_, member_, e2e::bound_topic(rec_, member_, topic), payload)
          : gateway_->publish(topic, payload);
  drain();
  return sealed.ok();
}

std::optional<ReceivedMessage> E2eProbe::wait_for_message(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (!held_.empty()) {
      ReceivedMessage m = std::move(held_.front());
      held_.pop_front();
      return m;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    auto m = client_.wait_for_message(left);
    if (!m) {
      return std::nullopt;
    }
    if (auto app = handle(std::move(*m))) {
      return app;
    }
  }
}

}  // namespace recmesh::testing
