#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "recmesh/pki/pki.hpp"
#include "recmesh/protocol/timestamp.hpp"

#include "sim/process_supervisor.hpp"
#include "sim/scenario.hpp"

namespace recmesh::sim {

// Where a run keeps its files and which programs it starts.
struct SimPaths {
  std::filesystem::path dir;        // the run's directory (PKI, configs, logs, databases)
  std::filesystem::path recmesh;    // the recmesh executable (devices, gateway, EMS)
  std::filesystem::path mosquitto;  // the broker
  std::filesystem::path pki() const { return dir / "pki"; }
  std::filesystem::path passphrase() const { return dir / "ca.passphrase"; }
  std::filesystem::path logs() const { return dir / "logs"; }
  std::filesystem::path member_dir(const MemberSpec& m) const {
    return dir / "members" / (m.rec + "-" + m.id);
  }
  std::filesystem::path ems_database() const { return dir / "ems" / "ems.db"; }
  std::filesystem::path secmgr_dir() const { return dir / "secmgr"; }
};

// The central broker's listeners.
struct CentralPorts {
  int ems = 0;
  int bridge = 0;
  int secmgr = 0;  // the Security Manager's HTTPS API
};

// A member's ports: the local broker's listeners and the backbone proxy through which its
// bridge reaches the central broker's bridge listener.
struct MemberPorts {
  int member = 0;
  int bridge = 0;
  int proxy = 0;
  int management = 0;  // the local broker's listener for the Security Manager (EMS CA)
};

// The device quota the simulator's Security Manager puts in every bundle (docs/scenarios.md):
// far above what a simulated device publishes, far below a flood.
inline constexpr int kDevicePublishPerSecond = 20;
inline constexpr int kDeviceMaxRetained = 8;

// One launcher per component kind: each renders its configuration under the run's directory
// and returns the command line. Changing how a component is run stays inside its launcher.
// The Security Manager comes first; the brokers load recmesh-guard seeded with `policy`, their
// bundle signed by the Security Manager (community_registration.hpp).
ProcessSpec launch_secmgr(const SimPaths& paths, const CentralPorts& ports);
ProcessSpec launch_central_broker(pki::Pki& pki, const SimPaths& paths, const CentralPorts& ports,
                                  const std::string& policy);
ProcessSpec launch_local_broker(pki::Pki& pki, const SimPaths& paths, const MemberSpec& member,
                                const MemberPorts& ports, const std::string& policy);
// `recmesh bridge` (docs/bridge.md) with the member's Bridge-CA certificate, from the local
// broker's bridge listener to the central broker's, dialled through the member's backbone proxy;
// its store-and-forward database is members/<rec>-<member>/bridge.db. It counts as up once it
// has connected to the local broker (and so holds its subscriptions there).
ProcessSpec launch_bridge(const pki::Pki& pki, const SimPaths& paths, const MemberSpec& member,
                          const MemberPorts& ports);
ProcessSpec launch_gateway(const SimPaths& paths, const Scenario& scenario,
                           const MemberSpec& member, const MemberPorts& ports);
// `crash_at`: devices that crash at that instant (the timeline's crash-device events).
ProcessSpec launch_devices(const SimPaths& paths, const Scenario& scenario,
                           const MemberSpec& member, const MemberPorts& ports, std::uint64_t seed,
                           const std::map<std::string, protocol::Timestamp>& crash_at = {});
ProcessSpec launch_ems(const SimPaths& paths, const Scenario& scenario, const CentralPorts& ports);

// The community's certificates: a REC and member CAs, every device, gateway and bridge, the EMS
// engine, the simulator's own observer identity (ems_sim), its operator identity for the
// Security Manager's API (ems_operator-sim) and the insiders of the timeline's attacks.
void issue_community(pki::Pki& pki, const Scenario& scenario);

// A fresh CA passphrase for a run's own PKI (32 hex digits from std::random_device).
std::string random_passphrase();

// The Mosquitto binary: `mosquitto` on PATH, else /usr/sbin/mosquitto.
std::filesystem::path find_mosquitto();

}  // namespace recmesh::sim
