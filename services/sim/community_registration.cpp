#include "sim/community_registration.hpp"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/error.hpp"
#include "recmesh/pki/identity.hpp"

#include "sim/attack_runner.hpp"
#include "sim/community_observer.hpp"

namespace recmesh::sim {
namespace {

using Json = nlohmann::json;

// One request; a refusal stops the registration (a batch refused is registered in nothing).
Json call(secmgr::ApiClient& api, const std::string& method, const std::string& path,
          const Json& body = {}) {
  const secmgr::ApiResponse response =
      method == "GET" ? api.get(path) : api.post(path, body.dump());
  if (!response.ok()) {
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

// Registrations sent as POST /v1/registrations/batch, each batch well within the manager's
// limits (secmgr::kMaxBatchEntries entries, api.max_body bytes).
class BatchWriter {
 public:
  explicit BatchWriter(secmgr::ApiClient& api) : api_(api) {}
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  void add(const char* list, Json entry) {
    body_[list].push_back(std::move(entry));
    ++entries_;
  }
  // Sends what is pending unless `more` entries still fit.
  void flush_if_full(std::size_t more) {
    if (entries_ + more > kEntriesPerBatch) {
      flush();
    }
  }
  void flush() {
    if (entries_ > 0) {
      call(api_, "POST", "/v1/registrations/batch", body_);
    }
    body_ = Json::object();
    entries_ = 0;
  }

 private:
  // About 100 KiB of JSON: below the default api.max_body (256 KiB).
  static constexpr std::size_t kEntriesPerBatch = 2000;
  secmgr::ApiClient& api_;
  Json body_ = Json::object();
  std::size_t entries_ = 0;
};

}  // namespace

void register_community(secmgr::ApiClient& api, const Scenario& scenario,
                        SimulatorIdentities simulator) {
  BatchWriter batch(api);
  std::set<std::string> recs;
  for (const auto& rec : scenario.recs) {
    if (recs.insert(rec.id).second) {
      batch.add("recs", {{"id", rec.id}});
    }
  }
  for (const auto& rec : scenario.recs) {
    for (const auto& member : rec.members) {
      // A member and its devices travel in one batch.
      batch.flush_if_full(member.device_list().size() + 2);
      batch.add("members", {{"rec", rec.id}, {"id", member.id}});
      batch.add("devices", {{"rec", rec.id}, {"member", member.id}, {"id", "gateway"}});
      for (const auto& device : member.device_list()) {
        batch.add("devices", {{"rec", rec.id}, {"member", member.id}, {"id", device.id}});
      }
    }
  }
  if (simulator == SimulatorIdentities::kLeaveOut) {
    batch.flush();
    return;
  }
  // The attacks' insiders: registered devices (so the device quota is theirs) allowed to
  // publish where their attack aims, so that the quota, not the ACL, is what stops them.
  const std::vector<InsiderIdentity> insiders = insider_identities(scenario);
  std::set<std::string> insider_devices;
  for (const InsiderIdentity& insider : insiders) {
    if (insider_devices.insert(insider.rec + "/" + insider.member + "/" + insider.device).second) {
      batch.add("devices",
                {{"rec", insider.rec}, {"member", insider.member}, {"id", insider.device}});
    }
  }
  // The observer reads the platform side of every member's flows and the central broker's
  // security events; it publishes nothing.
  batch.add("services", {{"id", "sim"}});
  batch.flush();
  for (const InsiderIdentity& insider : insiders) {
    const std::string cn =
        pki::Identity::make(pki::IdentityKind::kDevice, insider.rec, insider.member, insider.device)
            .common_name();
    add_rule(api, cn, "*", "write", insider.topic,
             "simulated insider attack (publish within the device quota)");
  }
  for (const std::string& filter : CommunityObserver::read_filters()) {
    add_rule(api, "ems_sim", "*", "read", filter, "simulation observer (read only)");
  }
}

std::map<std::string, std::string> register_brokers(
    secmgr::ApiClient& api, const std::vector<BrokerRegistration>& brokers) {
  BatchWriter batch(api);
  for (const BrokerRegistration& broker : brokers) {
    batch.flush_if_full(1);
    batch.add(
        "brokers",
        {{"id", broker.id}, {"host", broker.host}, {"port", broker.port}, {"connector", "guard"}});
  }
  batch.flush();
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
