#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "recmesh/core/result.hpp"
#include "recmesh/mqtt/control_channel.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::secmgr {

// Mosquitto's Dynamic Security plugin (stock Mosquitto 2.0), configured over
// `$CONTROL/dynamic-security/v1`. The broker's listeners must set `use_identity_as_username
// true`, so that the certificate CN is the dynsec username.
//
// Known weakness (thesis §3.5.2, mosquitto#2423): dynsec keys clients by username alone, so it
// cannot tell two CAs apart; a member-CA certificate named like a bridge gets the bridge's
// rights on a broker whose listeners trust both CAs. recmesh-guard closes that gap; use dynsec
// only where each listener's CA domain cannot issue another domain's names.
inline constexpr std::string_view kDynsecTopic = "$CONTROL/dynamic-security/v1";
inline constexpr std::string_view kDynsecResponseTopic = "$CONTROL/dynamic-security/v1/response";
// The role the manager's own client holds: the dynsec control topic and nothing else.
inline constexpr std::string_view kDynsecAdminRole = "recmesh-secmgr";

// The initial dynamic-security.json of a broker: default deny, and `admin` (the manager's
// common name) allowed on the control topic, so that the first synchronisation can arrive.
std::string dynsec_bootstrap_config(std::string_view admin);

// The commands that bring a plugin whose state is `clients` and `roles` (listClients and
// listRoles with verbose true) in line with `bundle`: one role per identity named after its
// CN, holding exactly the grant's topics; clients without a grant, or revoked, are deleted
// (which disconnects them); `admin` and its role are left alone.
nlohmann::json dynsec_commands(const policy::PolicyBundle& bundle, const nlohmann::json& clients,
                               const nlohmann::json& roles, std::string_view admin);

// One broker's plugin.
class DynsecConnector {
 public:
  DynsecConnector(mqtt::MqttClientOptions options, std::string admin);

  // Reads the plugin's state, sends the difference; "ok" or why not.
  Result<std::size_t> sync(const policy::PolicyBundle& bundle, std::chrono::milliseconds timeout);

 private:
  Result<nlohmann::json> execute(const nlohmann::json& commands, std::chrono::milliseconds timeout);

  mqtt::ControlChannel channel_;
  std::string admin_;
};

}  // namespace recmesh::secmgr
