#include "test_community.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

#include "recmesh/broker/seed_policy.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/bundle_signing.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/guard_publisher.hpp"

#include "free_port.hpp"
#include "recmesh_cli.hpp"

namespace recmesh::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

void render(const std::vector<std::string>& args) {
  const auto result = run_recmesh(args);
  if (result.exit_code != 0) {
    throw std::runtime_error("recmesh broker-config failed: " + result.err);
  }
}

// Adds `topics` to `into` unless present.
void merge(std::vector<std::string>& into, const std::vector<std::string>& topics) {
  for (const auto& topic : topics) {
    if (std::find(into.begin(), into.end(), topic) == into.end()) {
      into.push_back(topic);
    }
  }
}

}  // namespace

std::string signed_policy(const fs::path& pki_dir, const policy::BrokerId& broker,
                          const std::vector<policy::MemberRegistration>& members,
                          const std::vector<policy::Grant>& extra, std::uint64_t sequence) {
  pki::Pki pki = pki::Pki::open(pki_dir, pki::Pki::Access::kReadWrite, Secret(kTestPassphrase));
  return broker::sign_derived_policy(pki, broker, members, extra, sequence);
}

std::string write_signed_policy(const fs::path& file, const fs::path& pki_dir,
                                const policy::BrokerId& broker,
                                const std::vector<policy::MemberRegistration>& members,
                                const std::vector<policy::Grant>& extra, std::uint64_t sequence) {
  write_file_atomic(file, signed_policy(pki_dir, broker, members, extra, sequence), 0600);
  return file.string();
}

policy::Grant grant_for(const std::string& common_name, std::vector<std::string> publish,
                        std::vector<std::string> subscribe) {
  const auto identity = pki::parse_common_name(common_name);
  if (!identity) {
    throw std::invalid_argument("not a recmesh common name: " + common_name);
  }
  return {
      policy::client_identity_of(*identity).key(), std::move(publish), std::move(subscribe), {}};
}

void TestCommunity::Broker::restart() {
  process.reset();
  process = std::make_unique<MosquittoBroker>(config, ports);
}

TestCommunity::TestCommunity(fs::path dir, std::string rec, std::vector<std::string> members)
    : dir_(std::move(dir)), rec_(std::move(rec)) {
  let_mosquitto_through(dir_);
  pki::Pki pki = pki::Pki::create(pki_dir(), Secret(kTestPassphrase));
  pki.add_rec(rec_);
  for (const auto& member : members) {
    pki.add_member(rec_, member);
    devices_[member];
  }
  members_ = std::move(members);
  broker::secmgr_files(pki);
}

TestCommunity::~TestCommunity() {
  locals_.clear();  // bridges first, so the central broker does not log their loss as a fault
  central_.reset();
}

pki::Pki TestCommunity::open_pki() const {
  return pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(kTestPassphrase));
}

ClientFiles TestCommunity::issue(pki::IdentityKind kind, const std::string& member,
                                 const std::string& name) {
  pki::Pki pki = open_pki();
  const bool service = kind == pki::IdentityKind::kService;
  pki::IssueRequest request;
  request.identity = pki::Identity::make(kind, service ? "" : rec_, service ? "" : member, name);
  const auto issued = pki.issue(request);
  if (kind == pki::IdentityKind::kDevice) {
    merge(devices_[member], {name});
    changed();
  }
  return {issued.record.common_name, issued.files.chain, issued.files.key, issued.files.cafile};
}

ClientFiles TestCommunity::gateway(const std::string& member) {
  return issue(pki::IdentityKind::kGateway, member, "");
}

ClientFiles TestCommunity::device(const std::string& name, const std::string& member) {
  return issue(pki::IdentityKind::kDevice, member, name);
}

ClientFiles TestCommunity::service(const std::string& name) {
  return issue(pki::IdentityKind::kService, "", name);
}

void TestCommunity::issue_devices(const std::string& member, const std::vector<std::string>& ids) {
  pki::Pki pki = open_pki();
  std::vector<pki::IssueRequest> requests;
  for (const auto& id : ids) {
    pki::IssueRequest request;
    request.identity = pki::Identity::make(pki::IdentityKind::kDevice, rec_, member, id);
    requests.push_back(request);
  }
  pki.issue_many(requests);
  merge(devices_[member], ids);
  changed();
}

void TestCommunity::allow(const ClientFiles& who, std::vector<std::string> publish,
                          std::vector<std::string> subscribe) {
  extra_.push_back(grant_for(who.common_name, std::move(publish), std::move(subscribe)));
  changed();
}

std::string TestCommunity::signed_policy(const policy::BrokerId& broker) {
  std::vector<policy::MemberRegistration> members;
  for (const auto& member : members_) {
    members.push_back({rec_, member, devices_[member]});
  }
  return testing::signed_policy(pki_dir(), broker, members, extra_, ++sequence_);
}

std::string TestCommunity::write_policy(const policy::BrokerId& broker, const std::string& name) {
  const fs::path file = dir_ / ("policy-" + name + ".jws");
  write_file_atomic(file, signed_policy(broker), 0600);
  return file.string();
}

void TestCommunity::provision() {
  pki::Pki pki = open_pki();
  const auto files = broker::secmgr_files(pki);
  const auto push = [&](const policy::BrokerId& broker, int port) {
    mqtt::MqttClientOptions options;
    options.port = port;
    options.client_id = "ems_secmgr";
    options.cafile = pki.authority_cert_path("root");
    options.certfile = files.chain;
    options.keyfile = files.key;
    policy::GuardPublisher publisher(
        policy::BundleSigner(crypto::JwsSigner::from_files(files.chain, files.key)), options);
    auto answer = publisher.push_signed(signed_policy(broker), std::chrono::seconds(10));
    if (!answer || !answer->accepted) {
      throw std::runtime_error("policy push to " + broker.to_string() +
                               " failed: " + (answer ? answer->reason : answer.status().message));
    }
  };
  if (central_ && central_->process) {
    push(policy::BrokerId::central(), central_->ems_port);
  }
  for (const auto& [member, broker] : locals_) {
    if (broker->process) {
      push(policy::BrokerId::local(rec_, member), broker->management_port);
    }
  }
}

void TestCommunity::changed() {
  if (central_ || !locals_.empty()) {
    provision();
  }
}

TestCommunity::CentralBroker& TestCommunity::start_central() {
  if (central_) {
    return *central_;
  }
  auto broker = std::make_unique<CentralBroker>();
  broker->ems_port = free_tcp_port();
  broker->bridge_port = free_tcp_port();
  const fs::path out = dir_ / "central";
  render({"broker-config", "--pki", pki_dir().string(), "--central", "--ems-port",
          std::to_string(broker->ems_port), "--bridge-port", std::to_string(broker->bridge_port),
          "--out", out.string(), "--policy", write_policy(policy::BrokerId::central(), "central")});
  broker->config = out / "mosquitto.conf";
  broker->ports = {broker->ems_port, broker->bridge_port};
  broker->restart();
  central_ = std::move(broker);
  return *central_;
}

TestCommunity::LocalBroker& TestCommunity::start_local(const std::string& member, bool bridged) {
  if (const auto it = locals_.find(member); it != locals_.end()) {
    return *it->second;
  }
  auto broker = std::make_unique<LocalBroker>();
  broker->member_port = free_tcp_port();
  broker->bridge_port = free_tcp_port();
  broker->management_port = free_tcp_port();
  const fs::path out = dir_ / ("local-" + member);
  std::vector<std::string> args{
      "broker-config",
      "--pki",
      pki_dir().string(),
      "--local",
      "--rec",
      rec_,
      "--member",
      member,
      "--member-port",
      std::to_string(broker->member_port),
      "--bridge-port",
      std::to_string(broker->bridge_port),
      "--mgmt-port",
      std::to_string(broker->management_port),
      "--out",
      out.string(),
      "--policy",
      write_policy(policy::BrokerId::local(rec_, member), "local-" + member)};
  render(args);
  broker->config = out / "mosquitto.conf";
  broker->ports = {broker->member_port, broker->bridge_port, broker->management_port};
  broker->restart();
  if (bridged) {
    const ClientFiles files = issue(pki::IdentityKind::kBridge, member, "");
    const auto tls = [&files](int port) {
      return "  host: 127.0.0.1\n  port: " + std::to_string(port) +
             "\n  cafile: " + files.cafile.string() + "\n  certfile: " + files.chain.string() +
             "\n  keyfile: " + files.key.string() + "\n";
    };
    const fs::path config = dir_ / ("bridge-" + member + ".yaml");
    std::ofstream(config) << "rec: " << rec_ << "\nmember: " << member << "\nlocal:\n"
                          << tls(broker->bridge_port) << "central:\n"
                          << tls(start_central().bridge_port) << "store:\n  path: bridge-" << member
                          << ".db\nreconnect:\n  initial: 100ms\n  max: 1s\n";
    broker->bridge = std::make_unique<ChildProcess>(
        std::vector<std::string>{recmesh_binary(), "bridge", "--config", config.string()},
        dir_ / ("bridge-" + member + ".log"));
    const std::string bridge = " as bridge_" + rec_ + "_" + member + " ";
    if (!central_->process->wait_for_log(bridge, 15s)) {
      throw std::runtime_error("the bridge of " + member + " did not reach the central broker:\n" +
                               central_->process->log());
    }
  }
  auto& out_ref = *broker;
  locals_[member] = std::move(broker);
  return out_ref;
}

TestCommunity::CentralBroker& TestCommunity::central() {
  if (!central_) {
    throw std::logic_error("start_central() first");
  }
  return *central_;
}

TestCommunity::LocalBroker& TestCommunity::local(const std::string& member) {
  const auto it = locals_.find(member);
  if (it == locals_.end()) {
    throw std::logic_error("start_local(" + member + ") first");
  }
  return *it->second;
}

}  // namespace recmesh::testing
