#pragma once

// TestCommunity: the PKI and the Mosquitto brokers of a community for integration tests and
// benchmarks that run against real brokers. One place for what every such test needs, so that a
// new test starts from a working community instead of copying the setup.
//
// Use:
//   testing::TempDir tmp;
//   testing::TestCommunity community(tmp.path());          // PKI in tmp/pki: REC r1, member m1
//   const auto gw = community.gateway();                    // rec_r1_m1_gateway's files
//   community.issue_devices("m1", {"pv1", "bat1"});        // rec_r1_m1_<d>, one transaction
//   auto& local = community.start_local();                  // m1's broker, no bridge
//   testing::MqttTestClient probe("probe");
//   probe.connect(local.member_port, gw.cafile, gw.chain, gw.key);
//
// With the platform side:
//   auto& central = community.start_central();              // EMS and bridge listeners
//   auto& local = community.start_local("m1", true);        // bridged to it by `recmesh bridge`
//                                                           // with bridge_r1_m1's certificate
//   const auto engine = community.service("engine");        // ems_engine's files
//   ... connect to central.ems_port ...
//
// Brokers are rendered by `recmesh broker-config` (persistence on, recmesh-guard loaded) into
// <dir>/local-<member> and <dir>/central, on free 127.0.0.1 ports; `restart()` stops one by PID
// (SIGTERM: it saves its sessions) and starts it again on the same ports. When the tests run as
// root, the directory is opened to the `mosquitto` account that the broker drops to before it
// reads its certificates.
//
// Access control as in production: each broker starts with the least-privilege policy of SPEC §6
// (policy::derive_access_matrix over the devices issued here, signed with ems_secmgr's key) seeded
// through `broker-config --policy`, and every later change (a device issued, a grant added) is
// pushed to the running brokers over $CONTROL/recmesh-guard/v1 as the Security Manager does. A
// test whose probe needs more than its identity's row adds it with allow(), like a custom rule.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "recmesh/pki/identity.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/policy_bundle.hpp"

#include "child_process.hpp"
#include "mosquitto_broker.hpp"

namespace recmesh::testing {

// The files an identity connects with.
struct ClientFiles {
  std::string common_name;
  std::filesystem::path chain;   // leaf, then intermediates
  std::filesystem::path key;     // PEM private key, plain
  std::filesystem::path cafile;  // the bundle that verifies the broker this identity talks to
};

// The least-privilege policy of `broker` (policy::derive_access_matrix over `members`) with
// `extra` grants merged in (test observers, as custom allow rules), signed with ems_secmgr's key
// from the PKI at `pki_dir` (issued when missing), as the Security Manager signs it.
std::string signed_policy(const std::filesystem::path& pki_dir, const policy::BrokerId& broker,
                          const std::vector<policy::MemberRegistration>& members,
                          const std::vector<policy::Grant>& extra, std::uint64_t sequence);
// The same, written to `file` (0600) for `broker-config --policy`; returns the path as text.
std::string write_signed_policy(const std::filesystem::path& file,
                                const std::filesystem::path& pki_dir,
                                const policy::BrokerId& broker,
                                const std::vector<policy::MemberRegistration>& members,
                                const std::vector<policy::Grant>& extra = {},
                                std::uint64_t sequence = 1);
// A grant for the identity a PKI common name names (`rec_r1_m1_gateway` → member/r1/m1:…).
policy::Grant grant_for(const std::string& common_name, std::vector<std::string> publish,
                        std::vector<std::string> subscribe);

class TestCommunity {
 public:
  struct Broker {
    std::filesystem::path config;
    std::vector<int> ports;
    std::unique_ptr<MosquittoBroker> process;

    MosquittoBroker* operator->() const { return process.get(); }
    // Stops the broker by PID and starts it again with the same config and ports.
    void restart();
    // Stops it (SIGTERM); `restart()` brings it back.
    void stop() { process.reset(); }
  };
  struct LocalBroker : Broker {
    int member_port = 0;      // devices and the gateway (member CA)
    int bridge_port = 0;      // bridge modules (Bridge CA)
    int management_port = 0;  // the Security Manager (EMS CA): policy pushes
    // `recmesh bridge` to the central broker when started bridged (docs/bridge.md); its log is
    // <dir>/bridge-<member>.log. Destroyed (SIGTERM by PID) before the broker.
    std::unique_ptr<ChildProcess> bridge;
  };
  struct CentralBroker : Broker {
    int ems_port = 0;     // EMS services (EMS CA)
    int bridge_port = 0;  // the members' bridges (Bridge CA)
  };

  // Creates a PKI in <dir>/pki with `rec` and its `members`.
  explicit TestCommunity(std::filesystem::path dir, std::string rec = "r1",
                         std::vector<std::string> members = {"m1"});
  TestCommunity(const TestCommunity&) = delete;
  TestCommunity& operator=(const TestCommunity&) = delete;
  ~TestCommunity();

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path pki_dir() const { return dir_ / "pki"; }
  const std::string& rec() const { return rec_; }
  // The PKI opened for writing (signing with the test passphrase).
  pki::Pki open_pki() const;

  ClientFiles issue(pki::IdentityKind kind, const std::string& member, const std::string& name);
  ClientFiles gateway(const std::string& member = "m1");
  ClientFiles device(const std::string& name, const std::string& member = "m1");
  ClientFiles service(const std::string& name);  // ems_<name>, EMS CA
  // Issues rec_<rec>_<member>_<id> for each id in one transaction.
  void issue_devices(const std::string& member, const std::vector<std::string>& ids);

  // Grants `who` more than its row of the matrix on every broker (a custom allow rule); in force
  // on running brokers when this returns.
  void allow(const ClientFiles& who, std::vector<std::string> publish,
             std::vector<std::string> subscribe);
  // The signed policy bundle of a broker as it stands (derived rows plus allow()s), with a new
  // sequence number.
  std::string signed_policy(const policy::BrokerId& broker);
  // Pushes the current policy to every running broker; throws when one does not accept it.
  void provision();

  // Renders and starts the central broker (once; later calls return it).
  CentralBroker& start_central();
  // Renders and starts `member`'s local broker (once per member); `bridged` links it to the
  // central broker (started first if needed) and waits until the central broker has it.
  LocalBroker& start_local(const std::string& member = "m1", bool bridged = false);
  CentralBroker& central();
  LocalBroker& local(const std::string& member = "m1");

 private:
  void changed();  // provision() when a broker runs
  std::string write_policy(const policy::BrokerId& broker, const std::string& name);

  std::filesystem::path dir_;
  std::string rec_;
  std::vector<std::string> members_;
  std::map<std::string, std::vector<std::string>> devices_;  // per member, as issued
  std::vector<policy::Grant> extra_;
  std::uint64_t sequence_ = 0;
  std::unique_ptr<CentralBroker> central_;
  std::map<std::string, std::unique_ptr<LocalBroker>> locals_;
};

}  // namespace recmesh::testing
