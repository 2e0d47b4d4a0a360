#include "secmgr/dynsec_connector.hpp"

#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

namespace recmesh::secmgr {
namespace {

using nlohmann::json;

// A dynsec ACL as we compare them.
using Acl = std::tuple<std::string, std::string, bool>;  // acltype, topic, allow

std::string common_name_of(const std::string& identity_key) {
  const std::size_t colon = identity_key.rfind(':');
  return colon == std::string::npos ? identity_key : identity_key.substr(colon + 1);
}

std::set<Acl> acls_of(const policy::Grant& grant) {
  std::set<Acl> out;
  for (const auto& topic : grant.publish) {
    out.emplace("publishClientSend", topic, true);
  }
  for (const auto& topic : grant.subscribe) {
    out.emplace("subscribePattern", topic, true);
    out.emplace("publishClientReceive", topic, true);
  }
  return out;
}

json admin_acl(std::string_view acltype) {
  return {{"acltype", acltype}, {"topic", "$CONTROL/dynamic-security/#"}, {"allow", true}};
}

json acl_command(std::string_view command, const std::string& role, const Acl& acl) {
  json out = {{"command", command},
              {"rolename", role},
              {"acltype", std::get<0>(acl)},
              {"topic", std::get<1>(acl)}};
  if (command == "addRoleACL") {
    out["allow"] = std::get<2>(acl);
    out["priority"] = 0;
  }
  return out;
}

}  // namespace

std::string dynsec_bootstrap_config(std::string_view admin) {
  const json config = {
      {"defaultACLAccess",
       {{"publishClientSend", false},
        {"publishClientReceive", false},
        {"subscribe", false},
        {"unsubscribe", true}}},
      {"clients", json::array({{{"username", admin},
                                {"textname", "recmesh Security Manager"},
                                {"roles", json::array({{{"rolename", kDynsecAdminRole}}})}}})},
      {"groups", json::array()},
      {"roles", json::array({{{"rolename", kDynsecAdminRole},
                              {"acls", json::array({admin_acl("publishClientSend"),
                                                    admin_acl("publishClientReceive"),
                                                    admin_acl("subscribePattern")})}}})},
  };
  return config.dump(2) + "\n";
}

json dynsec_commands(const policy::PolicyBundle& bundle, const json& clients, const json& roles,
                     std::string_view admin) {
  std::map<std::string, std::set<Acl>> wanted;  // CN -> ACLs
  for (const policy::Grant& grant : bundle.grants) {
    const std::string cn = common_name_of(grant.identity);
    if (cn == admin) {
      continue;
    }
    // dynsec knows names only: grants of one CN from two domains merge (the known weakness).
    wanted[cn].merge(acls_of(grant));
  }
  std::set<std::string> revoked;
  for (const auto& key : bundle.revocations.identities) {
    revoked.insert(common_name_of(key));
  }
  std::map<std::string, std::set<Acl>> existing_roles;
  for (const auto& role : roles) {
    std::set<Acl>& acls = existing_roles[role.value("rolename", "")];
    for (const auto& acl : role.value("acls", json::array())) {
      acls.emplace(acl.value("acltype", ""), acl.value("topic", ""), acl.value("allow", false));
    }
  }
  std::map<std::string, std::set<std::string>> existing_clients;  // username -> roles
  for (const auto& client : clients) {
    std::set<std::string>& held = existing_clients[client.value("username", "")];
    for (const auto& role : client.value("roles", json::array())) {
      held.insert(role.value("rolename", ""));
    }
  }

  json commands = json::array();
  commands.push_back({{"command", "setDefaultACLAccess"},
                      {"acls", json::array({{{"acltype", "publishClientSend"}, {"allow", false}},
                                            {{"acltype", "publishClientReceive"}, {"allow", false}},
                                            {{"acltype", "subscribe"}, {"allow", false}},
                                            {{"acltype", "unsubscribe"}, {"allow", true}}})}});
  // Deleting a client disconnects it: first those without a grant, or revoked.
  for (const auto& [username, held] : existing_clients) {
    if (username != admin && (!wanted.contains(username) || revoked.contains(username))) {
      commands.push_back({{"command", "deleteClient"}, {"username", username}});
    }
  }
  for (const auto& [role, acls] : existing_roles) {
    if (role != kDynsecAdminRole && !wanted.contains(role)) {
      commands.push_back({{"command", "deleteRole"}, {"rolename", role}});
    }
  }
  for (const auto& [cn, acls] : wanted) {
    if (revoked.contains(cn)) {
      continue;
    }
    const auto role = existing_roles.find(cn);
    if (role == existing_roles.end()) {
      commands.push_back({{"command", "createRole"}, {"rolename", cn}});
    }
    const std::set<Acl> none;
    const std::set<Acl>& have = role == existing_roles.end() ? none : role->second;
    for (const Acl& acl : have) {
      if (!acls.contains(acl)) {
        commands.push_back(acl_command("removeRoleACL", cn, acl));
      }
    }
    for (const Acl& acl : acls) {
      if (!have.contains(acl)) {
        commands.push_back(acl_command("addRoleACL", cn, acl));
      }
    }
    const auto client = existing_clients.find(cn);
    if (client == existing_clients.end()) {
      commands.push_back({{"command", "createClient"}, {"username", cn}});
    }
    if (client == existing_clients.end() || !client->second.contains(cn)) {
      commands.push_back({{"command", "addClientRole"}, {"username", cn}, {"rolename", cn}});
    }
  }
  return commands;
}

DynsecConnector::DynsecConnector(mqtt::MqttClientOptions options, std::string admin)
    : channel_(std::move(options), std::string(kDynsecTopic), std::string(kDynsecResponseTopic)),
      admin_(std::move(admin)) {}

Result<json> DynsecConnector::execute(const json& commands, std::chrono::milliseconds timeout) {
  auto answer = channel_.request(json{{"commands", commands}}.dump(), timeout);
  if (!answer) {
    return answer.status();
  }
  json parsed = json::parse(*answer, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("responses") || !parsed["responses"].is_array()) {
    return Status{ErrorCode::kInternal, "the dynamic security plugin answered malformed JSON"};
  }
  return parsed["responses"];
}

Result<std::size_t> DynsecConnector::sync(const policy::PolicyBundle& bundle,
                                          std::chrono::milliseconds timeout) {
  auto state = execute(json::array({{{"command", "listClients"}, {"verbose", true}},
                                    {{"command", "listRoles"}, {"verbose", true}}}),
                       timeout);
  if (!state) {
    return state.status();
  }
  json clients = json::array();
  json roles = json::array();
  for (const auto& response : *state) {
    if (response.contains("error")) {
      return Status{ErrorCode::kInternal,
                    fmt::format("dynamic security refused {}: {}", response.value("command", "?"),
                                response["error"].dump())};
    }
    const json data = response.value("data", json::object());
    if (response.value("command", "") == "listClients") {
      clients = data.value("clients", json::array());
    } else {
      roles = data.value("roles", json::array());
    }
  }
  const json commands = dynsec_commands(bundle, clients, roles, admin_);
  auto results = execute(commands, timeout);
  if (!results) {
    return results.status();
  }
  for (const auto& response : *results) {
    if (response.contains("error")) {
      return Status{ErrorCode::kInternal,
                    fmt::format("dynamic security refused {}: {}", response.value("command", "?"),
                                response["error"].dump())};
    }
  }
  return commands.size();
}

}  // namespace recmesh::secmgr
