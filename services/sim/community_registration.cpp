#include "sim/community_registration.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/error.hpp"
#include "recmesh/pki/identity.hpp"

#include "sim/attack_runner.hpp"
#include "sim/community_observer.hpp"

namespace recmesh::sim {
namespace {

using Json = nlohmann::json;

// One request; a refusal (other than "already registered", so that a REC shared by two entries
// or a re-run is harmless) stops the registration.
Json call(secmgr::ApiClient& api, const std::string& method, const std::string& path,
          const Json& body = {}) {
  const secmgr::ApiResponse response =
      method == "GET" ? api.get(path) : api.post(path, body.dump());
  if (!response.ok() && response.status != 409) {
    throw Error(ErrorCode::kUnavailable,
                fmt::format("Security Manager: {} {}: {}", method, path,
                            response.status == 0
                                ? response.error
                                : fmt::format("HTTP {} {}", response.status, response.body)));
  }
  return Json::parse(response.body, nullptr, false);
}

void add_rule(secmgr::ApiClient& api, const std::string& identity, const std::string& broker,
              const std::string& permission, const std::string& topic, const std::string& note) {
  call(api, "POST", "/v1/rules",
       {{"identity", identity},
        {"broker", broker},
        {"permission", permission},
        {"topic", topic},
        {"note", note}});
}

// The attacks' insiders: registered devices (so the device quota is theirs) allowed to publish
// where their attack aims, so that the quota, not the ACL, is what stops them. The observer
// reads the platform side of every member's flows and the central broker's security events;
// it publishes nothing.
void register_simulator(secmgr::ApiClient& api, const Scenario& scenario) {
  for (const InsiderIdentity& insider : insider_identities(scenario)) {
    call(api, "POST",
         fmt::format("/v1/recs/{}/members/{}/devices", secmgr::url_encode(insider.rec),
                     secmgr::url_encode(insider.member)),
         {{"id", insider.device}});
    const std::string cn =
        pki::Identity::make(pki::IdentityKind::kDevice, insider.rec, insider.member, insider.device)
            .common_name();
    add_rule(api, cn, "*", "write", insider.topic,
             "simulated insider attack (publish within the device quota)");
  }
  call(api, "POST", "/v1/services", {{"id", "sim"}});
  for (const std::string& filter : CommunityObserver::read_filters()) {
    add_rule(api, "ems_sim", "*", "read", filter, "simulation observer (read only)");
  }
}

}  // namespace

std::map<std::string, std::string> register_community(
    secmgr::ApiClient& api, const Scenario& scenario,
    const std::vector<BrokerRegistration>& brokers, SimulatorIdentities simulator) {
  for (const auto& rec : scenario.recs) {
    call(api, "POST", "/v1/recs", {{"id", rec.id}});
    const std::string members = fmt::format("/v1/recs/{}/members", secmgr::url_encode(rec.id));
    for (const auto& member : rec.members) {
      call(api, "POST", members, {{"id", member.id}});
      const std::string devices =
          fmt::format("{}/{}/devices", members, secmgr::url_encode(member.id));
      call(api, "POST", devices, {{"id", "gateway"}});
      for (const auto& device : member.device_list()) {
        call(api, "POST", devices, {{"id", device.id}});
      }
    }
  }
  if (simulator == SimulatorIdentities::kRegister) {
    register_simulator(api, scenario);
  }
  for (const BrokerRegistration& broker : brokers) {
    call(api, "POST", "/v1/brokers",
         {{"id", broker.id}, {"host", broker.host}, {"port", broker.port}, {"connector", "guard"}});
  }
  std::map<std::string, std::string> bundles;
  for (const BrokerRegistration& broker : brokers) {
    const Json answer =
        call(api, "GET", fmt::format("/v1/brokers/{}/bundle", secmgr::url_encode(broker.id)));
    if (!answer.is_object() || !answer.contains("bundle") || !answer["bundle"].is_string()) {
      throw Error(ErrorCode::kUnavailable,
                  fmt::format("Security Manager: no bundle for broker {}", broker.id));
    }
    bundles[broker.id] = answer["bundle"].get<std::string>();
  }
  return bundles;
}

}  // namespace recmesh::sim
