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
// Brokers are rendered by `recmesh broker-config` (persistence on) into <dir>/local-<member> and
// <dir>/central, on free 127.0.0.1 ports; `restart()` stops one by PID (SIGTERM: it saves its
// sessions) and starts it again on the same ports. When the tests run as root, the directory is
// opened to the `mosquitto` account that the broker drops to before it reads its certificates.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "recmesh/pki/identity.hpp"
#include "recmesh/pki/pki.hpp"

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
    int member_port = 0;  // devices and the gateway (member CA)
    int bridge_port = 0;  // bridge modules (Bridge CA)
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

  // Renders and starts the central broker (once; later calls return it).
  CentralBroker& start_central();
  // Renders and starts `member`'s local broker (once per member); `bridged` links it to the
  // central broker (started first if needed) and waits until the central broker has it.
  LocalBroker& start_local(const std::string& member = "m1", bool bridged = false);
  CentralBroker& central();
  LocalBroker& local(const std::string& member = "m1");

 private:
  std::filesystem::path dir_;
  std::string rec_;
  std::unique_ptr<CentralBroker> central_;
  std::map<std::string, std::unique_ptr<LocalBroker>> locals_;
};

}  // namespace recmesh::testing
