#include "bench_community.hpp"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/broker/seed_policy.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/client_identity.hpp"

namespace recmesh::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPassphrase = "bench-community-passphrase";

}  // namespace

BenchCommunity::BenchCommunity(fs::path dir, int members,
                               const std::vector<std::string>& device_ids)
    : dir_(std::move(dir)), device_ids_(device_ids) {
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  if (::geteuid() == 0) {
    // Mosquitto drops to its own account, which must pass through the scratch directory.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  pki::Pki pki = pki::Pki::create(pki_dir(), Secret(kPassphrase));
  pki.add_rec("r1");
  std::vector<pki::IssueRequest> requests;
  const auto add = [&](pki::IdentityKind kind, const std::string& member, const std::string& name) {
    pki::IssueRequest request;
    const bool service = kind == pki::IdentityKind::kService;
    request.identity = pki::Identity::make(kind, service ? "" : "r1", service ? "" : member, name);
    requests.push_back(std::move(request));
  };
  add(pki::IdentityKind::kService, "", "engine");
  for (int i = 0; i < members; ++i) {
    members_.push_back(member_name(i));
    pki.add_member("r1", members_.back());
    add(pki::IdentityKind::kGateway, members_.back(), "");
    for (const auto& device : device_ids) {
      add(pki::IdentityKind::kDevice, members_.back(), device);
    }
  }
  pki.issue_many(requests);
}

broker::GuardPluginOptions BenchCommunity::seeded_guard(pki::Pki& pki,
                                                        const policy::BrokerId& broker) const {
  std::vector<policy::MemberRegistration> registrations;
  for (const auto& member : members_) {
    registrations.push_back({"r1", member, device_ids_});
  }
  broker::GuardPluginOptions guard;
  guard.plugin = RECMESH_GUARD_PLUGIN;
  guard.seed_bundle = broker::sign_derived_policy(pki, broker, registrations, extra_, 1);
  return guard;
}

void BenchCommunity::allow(const std::string& common_name, std::vector<std::string> publish,
                           std::vector<std::string> subscribe) {
  const std::optional<pki::Identity> identity = pki::parse_common_name(common_name);
  if (!identity) {
    throw std::invalid_argument("not a recmesh common name: " + common_name);
  }
  extra_.push_back(
      {policy::client_identity_of(*identity).key(), std::move(publish), std::move(subscribe), {}});
}

BenchCommunity::~BenchCommunity() {
  locals_.clear();
  central_.reset();
  std::error_code ignored;
  if (std::getenv("RECMESH_BENCH_KEEP") == nullptr) {
    fs::remove_all(dir_, ignored);
  }
}

void BenchCommunity::start_central() {
  pki::Pki pki = pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(kPassphrase));
  broker::CentralBrokerOptions options;
  options.ems_port = central_ems_port_ = free_tcp_port();
  options.bridge_port = central_bridge_port_ = free_tcp_port();
  options.guard = seeded_guard(pki, policy::BrokerId::central());
  const auto rendered = broker::render_central_broker(pki, options, dir_ / "central");
  central_ = std::make_unique<BrokerProcess>(
      rendered.config, std::vector<int>{options.ems_port, options.bridge_port});
}

void BenchCommunity::start_locals(bool bridged, const std::string& extra_config) {
  pki::Pki pki = pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(kPassphrase));
  for (const auto& member : members_) {
    broker::LocalBrokerOptions options;
    options.rec = "r1";
    options.member = member;
    options.member_port = free_tcp_port();
    options.bridge_port = free_tcp_port();
    options.management_port = free_tcp_port();
    options.guard = seeded_guard(pki, policy::BrokerId::local("r1", member));
    if (bridged) {
      options.bridge_to = broker::BuiltinBridge{"127.0.0.1", central_bridge_port_};
    }
    const auto rendered = broker::render_local_broker(pki, options, dir_ / ("local-" + member));
    if (!extra_config.empty()) {
      std::ofstream(rendered.config, std::ios::app) << "\n" << extra_config << "\n";
    }
    MemberBrokers brokers;
    brokers.member = member;
    brokers.member_port = options.member_port;
    brokers.bridge_port = options.bridge_port;
    brokers.process = std::make_unique<BrokerProcess>(
        rendered.config,
        std::vector<int>{options.member_port, options.bridge_port, *options.management_port});
    locals_.push_back(std::move(brokers));
  }
  if (!bridged) {
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (const auto& member : members_) {
    const std::string needle = " as bridge_r1_" + member + " ";
    while (central_->log().find(needle) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("bridge of " + member + " never reached the central broker");
      }
      std::this_thread::sleep_for(50ms);
    }
  }
}

fs::path BenchCommunity::chain(const std::string& common_name) const {
  return pki_dir() / "issued" / common_name / "chain.pem";
}

fs::path BenchCommunity::key(const std::string& common_name) const {
  return pki_dir() / "issued" / common_name / "key.pem";
}

fs::path BenchCommunity::member_cafile(const std::string& member) const {
  return pki_dir() / "ca" / ("member_r1_" + member) / "chain.pem";
}

fs::path BenchCommunity::ems_cafile() const {
  return pki_dir() / "ca" / "ems" / "chain.pem";
}

}  // namespace recmesh::bench
