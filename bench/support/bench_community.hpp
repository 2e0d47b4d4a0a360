#pragma once

// The community a communication benchmark runs on: a PKI in a scratch directory, a central
// Mosquitto and one local Mosquitto per member linked to it by Mosquitto's built-in bridge with
// the member's bridge certificate, all rendered by the same code as `recmesh broker-config` and
// started as processes on free 127.0.0.1 ports. Every broker loads recmesh-guard seeded with the
// least-privilege policy of SPEC §6 for the community's identities, signed with ems_secmgr's
// key (broker::sign_derived_policy, as the integration tests' TestCommunity seeds its brokers):
// the access control of production, not an open broker. Shared by bench/control_rtt and
// bench/gateway_ingest.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/policy_bundle.hpp"

#include "bench_process.hpp"
#include "bench_stats.hpp"

namespace recmesh::bench {

struct MemberBrokers {
  std::string member;
  int member_port = 0;
  int bridge_port = 0;
  std::unique_ptr<BrokerProcess> process;
};

class BenchCommunity {
 public:
  // A PKI under `dir` (emptied first, removed at the end) with REC r1, `members` members m000, ...
  // each with a gateway and the devices `device_ids` (rec_r1_<m>_<d>), and ems_engine.
  BenchCommunity(std::filesystem::path dir, int members,
                 const std::vector<std::string>& device_ids);
  BenchCommunity(const BenchCommunity&) = delete;
  BenchCommunity& operator=(const BenchCommunity&) = delete;
  ~BenchCommunity();

  static std::string member_name(int index) { return fmt::format("m{:03}", index); }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path pki_dir() const { return dir_ / "pki"; }
  const std::vector<std::string>& members() const { return members_; }

  // Adds to the policy of every broker started after it the right of `common_name` to publish
  // and read these topics, as a custom allow rule would: for a benchmark's reference probes.
  void allow(const std::string& common_name, std::vector<std::string> publish,
             std::vector<std::string> subscribe);

  // The central broker (EMS and bridge listeners).
  void start_central();
  int central_ems_port() const { return central_ems_port_; }
  // The local brokers of every member (member, bridge and management listeners), bridged to
  // the central broker when `bridged`; returns once the central broker has logged every
  // bridge's connection. `extra_config` is appended to each rendered mosquitto.conf (a
  // benchmark's tuning, e.g. a larger queue per subscriber).
  void start_locals(bool bridged, const std::string& extra_config = {});
  const MemberBrokers& local(std::size_t index) const { return locals_.at(index); }

  std::filesystem::path chain(const std::string& common_name) const;
  std::filesystem::path key(const std::string& common_name) const;
  std::filesystem::path member_cafile(const std::string& member) const;
  std::filesystem::path ems_cafile() const;

 private:
  // recmesh-guard seeded with the derived policy of `broker` over every member and device.
  broker::GuardPluginOptions seeded_guard(pki::Pki& pki, const policy::BrokerId& broker) const;

  std::filesystem::path dir_;
  std::vector<std::string> members_;
  std::vector<std::string> device_ids_;
  std::vector<policy::Grant> extra_;
  int central_ems_port_ = 0;
  int central_bridge_port_ = 0;
  std::unique_ptr<BrokerProcess> central_;
  std::vector<MemberBrokers> locals_;
};

}  // namespace recmesh::bench
