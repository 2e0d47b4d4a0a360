#include "test_community.hpp"

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

#include "recmesh/core/secret.hpp"

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

}  // namespace

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
  }
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
          "--out", out.string()});
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
  const fs::path out = dir_ / ("local-" + member);
  std::vector<std::string> args{"broker-config",
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
                                "--out",
                                out.string()};
  render(args);
  broker->config = out / "mosquitto.conf";
  broker->ports = {broker->member_port, broker->bridge_port};
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
