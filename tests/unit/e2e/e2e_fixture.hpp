#pragma once

// A PKI with one REC of two members, the EMS engine and both gateways, and an in-memory wire
// between a PlatformEndpoint and MemberEndpoints, so tests can drop, replay or tamper.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "recmesh/core/clock.hpp"
#include "recmesh/e2e/endpoint.hpp"
#include "recmesh/pki/pki.hpp"

#include "temp_dir.hpp"

namespace recmesh::e2e {

struct Wire {
  struct Message {
    std::string topic;
    std::string payload;
    bool retain = false;
  };
  std::deque<Message> messages;
  RawPublish publisher() {
    return [this](const std::string& topic, std::string payload, bool retain) {
      messages.push_back({topic, std::move(payload), retain});
      return true;
    };
  }
  std::optional<Message> take() {
    if (messages.empty()) {
      return std::nullopt;
    }
    Message m = std::move(messages.front());
    messages.pop_front();
    return m;
  }
};

class E2eFixture : public ::testing::Test {
 protected:
  static constexpr std::chrono::seconds kStart{1795305600};  // 2026-11-22T00:00:00Z

  void SetUp() override {
    pki_.emplace(pki::Pki::create(dir_ / "pki", Secret("e2e test passphrase 0123"), issue_clock_));
    pki_->add_rec("r1");
    pki_->add_member("r1", "m1");
    pki_->add_member("r1", "m2");
    issue(pki::IdentityKind::kService, "", "", "engine");
    issue(pki::IdentityKind::kService, "", "", "lms");
    issue(pki::IdentityKind::kGateway, "r1", "m1", "");
    issue(pki::IdentityKind::kGateway, "r1", "m2", "");
    issue(pki::IdentityKind::kDevice, "r1", "m1", "pv1");
    settings_.handshake_timeout = std::chrono::seconds(5);
  }

  void issue(pki::IdentityKind kind, std::string rec, std::string member, std::string name) {
    pki::IssueRequest request;
    request.identity =
        pki::Identity::make(kind, std::move(rec), std::move(member), std::move(name));
    pki_->issue(request);
  }

  Credentials credentials(const std::string& cn) const {
    const auto dir = dir_ / "pki" / "issued" / cn;
    return Credentials::from_files(dir / "chain.pem", dir / "key.pem");
  }

  std::function<PeerTrust()> ems_trust() const {
    return [dir = dir_ / "pki"] { return PeerTrust::from_pki_dir(dir, "ems", "ems_engine"); };
  }
  PlatformEndpoint::TrustLoader gateway_trust() const {
    return [dir = dir_ / "pki"](const std::string& rec, const std::string& member) {
      return PeerTrust::from_pki_dir(dir, "member_" + rec + "_" + member,
                                     "rec_" + rec + "_" + member + "_gateway");
    };
  }

  std::unique_ptr<PlatformEndpoint> make_platform(const std::string& cn = "ems_engine") {
    return std::make_unique<PlatformEndpoint>(credentials(cn), gateway_trust(), settings_,
                                              to_members_.publisher(), clock_);
  }
  std::unique_ptr<MemberEndpoint> make_member(const std::string& member = "m1",
                                              const std::string& cn = "") {
    return std::make_unique<MemberEndpoint>(
        credentials(cn.empty() ? "rec_r1_" + member + "_gateway" : cn), "r1", member, ems_trust(),
        settings_, to_platform_.publisher(), clock_);
  }

  // Runs the handshake: init from the engine, response from the gateway.
  void handshake(PlatformEndpoint& platform, MemberEndpoint& gateway,
                 const std::string& member = "m1") {
    advance(std::chrono::milliseconds(1));  // a gateway refuses an init not newer than the last
    platform.connect("r1", member);
    auto init = to_members_.take();
    ASSERT_TRUE(init);
    ASSERT_EQ(init->topic, "/r1/" + member + "/keys");
    auto answered = gateway.on_keys(init->payload);
    ASSERT_TRUE(answered) << answered.error().detail;
    auto response = to_platform_.take();
    ASSERT_TRUE(response);
    ASSERT_EQ(response->topic, "/platform/keys/response");
    auto finished = platform.on_keys_response("r1", member, response->payload);
    ASSERT_TRUE(finished) << finished.error().detail;
  }

  void advance(std::chrono::milliseconds by) { clock_.set(clock_.now() + by); }

  recmesh::testing::TempDir dir_;
  FixedClock issue_clock_{Clock::TimePoint(kStart - std::chrono::hours(1))};
  FixedClock clock_{Clock::TimePoint(kStart)};
  std::optional<pki::Pki> pki_;
  E2eSettings settings_;
  Wire to_members_;   // what the engine publishes
  Wire to_platform_;  // what the gateways publish
};

}  // namespace recmesh::e2e
