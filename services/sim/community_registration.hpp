#pragma once

#include <map>
#include <string>
#include <vector>

#include "secmgr/api_client.hpp"
#include "sim/scenario.hpp"

namespace recmesh::sim {

// A broker the Security Manager pushes to: its server common name and the listener where
// ems_secmgr connects (a local broker's management listener, the central broker's EMS one).
struct BrokerRegistration {
  std::string id;
  int port = 0;
  std::string host = "127.0.0.1";
};

// Who is registered besides the community's own identities.
enum class SimulatorIdentities {
  kRegister,  // the attacks' insiders and the observer ems_sim (`sim run`)
  kLeaveOut,  // neither runs (`sim render-k8s`: the cluster has no timeline and no observer)
};

// Registers the scenario's community with the Security Manager through its API, as an operator
// would (docs/scenarios.md, "Access control"): every REC, member, gateway and device, the
// insiders of the timeline's attacks with a custom rule each, and the observer ems_sim with its
// read-only grants (unless `simulator` leaves them out). Throws Error naming the request the
// manager refused.
void register_community(secmgr::ApiClient& api, const Scenario& scenario,
                        SimulatorIdentities simulator = SimulatorIdentities::kRegister);

// Then the brokers (last: a broker's registration pushes to it, and none runs yet). Returns
// each broker's signed policy bundle, by broker ID, for broker-config's seed.
std::map<std::string, std::string> register_brokers(secmgr::ApiClient& api,
                                                    const std::vector<BrokerRegistration>& brokers);

}  // namespace recmesh::sim
