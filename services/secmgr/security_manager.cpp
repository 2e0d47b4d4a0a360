#include "secmgr/security_manager.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <set>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/protocol/limits.hpp"
#include "recmesh/protocol/topics.hpp"

#include "secmgr/api_error.hpp"

namespace recmesh::secmgr {
namespace {

using nlohmann::json;

constexpr std::string_view kWildcardBroker = "*";
constexpr std::size_t kMaxHostLength = 253;
constexpr std::size_t kMaxNoteBytes = 256;
constexpr int kMaxPort = 65535;

std::string csr_common_name(const std::string& csr_pem) {
  const crypto::X509ReqPtr csr = crypto::csr_from_pem(csr_pem);
  X509_NAME* subject = X509_REQ_get_subject_name(csr.get());
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) {
    return {};
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
          static_cast<std::size_t>(ASN1_STRING_length(data))};
}

// The CN is the manager's choice; a CSR may leave it out or repeat it, never ask for another.
void check_csr(const std::string& csr_pem, const std::string& common_name) {
  if (csr_pem.empty()) {
    throw ApiError::bad_request("request body: csr is required (PEM PKCS#10)");
  }
  const std::string requested = csr_common_name(csr_pem);
  if (!requested.empty() && requested != common_name) {
    throw ApiError::bad_request(
        fmt::format("the CSR asks for CN {} but this identity is {}; the manager chooses the CN",
                    quote_untrusted(requested), common_name));
  }
}

pki::Identity pki_identity(const IdentityRecord& identity) {
  return pki::Identity::make(pki::parse_identity_kind(identity.kind), identity.rec, identity.member,
                             identity.name);
}

pki::RevocationReason reason_of(const std::string& text) {
  if (text.empty()) {
    return pki::RevocationReason::kCessationOfOperation;
  }
  return pki::parse_revocation_reason(text);
}

void require_host(const std::string& host) {
  const bool valid = !host.empty() && host.size() <= kMaxHostLength &&
                     host.find_first_not_of(
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789.-:") == std::string::npos;
  if (!valid) {
    throw ApiError::bad_request(
        fmt::format("host {} is not a host name or IP address", quote_untrusted(host)));
  }
}

void check_broker(const RegistrationBatch::Broker& broker) {
  const std::optional<pki::Identity> server = pki::parse_common_name(broker.id);
  if (!server || (server->kind != pki::IdentityKind::kLocalBroker &&
                  server->kind != pki::IdentityKind::kCentralBroker)) {
    throw ApiError::bad_request(
        fmt::format("broker id {} must be a broker's server common name: broker_<rec>_<member> "
                    "(local) or ems_<name> (central)",
                    quote_untrusted(broker.id)));
  }
  require_host(broker.host);
  if (broker.port < 1 || broker.port > kMaxPort) {
    throw ApiError::bad_request("port must be between 1 and 65535");
  }
  const std::string& connector = broker.connector;
  if (connector != "guard" && connector != "dynsec" && connector != "rabbitmq" &&
      connector != "none") {
    throw ApiError::bad_request(fmt::format(
        "connector {} is not one of guard, dynsec, rabbitmq, none", quote_untrusted(connector)));
  }
  if (server->kind == pki::IdentityKind::kLocalBroker && connector == "rabbitmq") {
    throw ApiError::bad_request("the rabbitmq connector serves central brokers only");
  }
}

pki::Identity device_identity(const RegistrationBatch::Device& device) {
  return pki::Identity::make(
      device.id == "gateway" ? pki::IdentityKind::kGateway : pki::IdentityKind::kDevice, device.rec,
      device.member, device.id);
}

// What needs no registry: identifiers, broker names and addresses, size, entries listed twice.
void check_entries(const RegistrationBatch& batch) {
  if (batch.size() > kMaxBatchEntries) {
    throw ApiError::bad_request(fmt::format("a batch holds at most {} entries, this one {}",
                                            kMaxBatchEntries, batch.size()));
  }
  std::set<std::string> seen;
  const auto once = [&seen](const std::string& key) {
    if (!seen.insert(key).second) {
      throw ApiError::bad_request(fmt::format("{} is listed twice in the batch", key));
    }
  };
  for (const std::string& rec : batch.recs) {
    require_identifier("REC", rec);
    once("REC " + rec);
  }
  for (const auto& member : batch.members) {
    require_identifier("REC", member.rec);
    require_identifier("member", member.id);
    once(fmt::format("member {}/{}", member.rec, member.id));
  }
  for (const auto& device : batch.devices) {
    require_identifier("REC", device.rec);
    require_identifier("member", device.member);
    require_identifier("device", device.id);
    once(device_identity(device).common_name());
  }
  for (const std::string& service : batch.services) {
    require_identifier("service", service);
    once(pki::Identity::make(pki::IdentityKind::kService, "", "", service).common_name());
  }
  for (const auto& broker : batch.brokers) {
    check_broker(broker);
    once("broker " + broker.id);
  }
}

json certificate_json(const pki::CertificateRecord& record) {
  return {{"serial", record.serial},
          {"issuer", record.issuer},
          {"status", std::string(pki::to_string(record.status))},
          {"not_before", record.not_before},
          {"not_after", record.not_after}};
}

}  // namespace

json to_json(const IdentityRecord& identity) {
  return {
      {"common_name", identity.common_name}, {"kind", identity.kind}, {"rec", identity.rec},
      {"member", identity.member},           {"name", identity.name}, {"status", identity.status},
      {"created_at", identity.created_at}};
}

json to_json(const BrokerRecord& broker) {
  json out = {{"id", broker.id},
              {"role", broker.role},
              {"rec", broker.rec},
              {"member", broker.member},
              {"host", broker.host},
              {"port", broker.port},
              {"connector", broker.connector},
              {"created_at", broker.created_at},
              {"last_push_result", broker.last_push_result}};
  out["last_push_at"] = broker.last_push_at ? json(*broker.last_push_at) : json(nullptr);
  return out;
}

json to_json(const RuleRecord& rule) {
  return {{"id", rule.id},
          {"identity", rule.identity},
          {"broker", rule.broker},
          {"permission", rule.permission},
          {"topic", rule.topic},
          {"allow", rule.allow},
          {"note", rule.note},
          {"created_by", rule.created_by},
          {"created_at", rule.created_at}};
}

json to_json(const AuditEntry& entry) {
  return {{"id", entry.id},         {"at_ms", entry.at_ms},     {"actor", entry.actor},
          {"role", entry.role},     {"method", entry.method},   {"path", entry.path},
          {"action", entry.action}, {"outcome", entry.outcome}, {"status", entry.status},
          {"detail", entry.detail}};
}

SecurityManager::SecurityManager(const std::filesystem::path& database, pki::Pki pki,
                                 log::Logger logger, const Clock& clock)
    : registry_(database),
      pki_(std::move(pki)),
      pki_dir_(pki_.directory()),
      log_(std::move(logger)),
      clock_(clock) {}

void SecurityManager::set_pusher(PolicyPusher* pusher) {
  std::lock_guard lock(mutex_);
  pusher_ = pusher;
}

Outcome SecurityManager::whoami(const Actor& actor) const {
  json permissions = json::array();
  for (Permission permission : permissions_of(actor.role)) {
    permissions.push_back(std::string(to_string(permission)));
  }
  return {200,
          {{"common_name", actor.common_name},
           {"role", std::string(to_string(actor.role))},
           {"permissions", permissions}},
          ""};
}

// ---- RECs and members ----

Outcome SecurityManager::add_rec(const std::string& id) {
  RegistrationBatch batch;
  batch.recs = {id};
  (void)register_all(batch);
  return {201, {{"id", id}, {"status", kActive}}, "added REC " + id};
}

Outcome SecurityManager::list_recs() {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (const auto& rec : registry_.recs()) {
    out.push_back({{"id", rec.id}, {"status", rec.status}, {"created_at", rec.created_at}});
  }
  return {200, {{"recs", out}}, ""};
}

Outcome SecurityManager::show_rec(const std::string& id) {
  require_identifier("REC", id);
  std::lock_guard lock(mutex_);
  const auto rec = registry_.rec(id);
  if (!rec) {
    throw ApiError::not_found(fmt::format("REC {} is not registered", id));
  }
  json members = json::array();
  for (const auto& member : registry_.members(id)) {
    members.push_back(member.id);
  }
  return {200,
          {{"id", rec->id},
           {"status", rec->status},
           {"created_at", rec->created_at},
           {"members", members}},
          ""};
}

Outcome SecurityManager::add_member(const std::string& rec, const std::string& id) {
  RegistrationBatch batch;
  batch.members = {{rec, id}};
  const std::string bridge = register_all(batch).identities.at(0).common_name;
  return {201,
          {{"rec", rec}, {"id", id}, {"status", kActive}, {"bridge", bridge}},
          fmt::format("added member {}/{} and {}", rec, id, bridge)};
}

Outcome SecurityManager::list_members(const std::string& rec) {
  require_identifier("REC", rec);
  std::lock_guard lock(mutex_);
  if (!registry_.rec(rec)) {
    throw ApiError::not_found(fmt::format("REC {} is not registered", rec));
  }
  json out = json::array();
  for (const auto& member : registry_.members(rec)) {
    out.push_back({{"rec", member.rec},
                   {"id", member.id},
                   {"status", member.status},
                   {"created_at", member.created_at}});
  }
  return {200, {{"members", out}}, ""};
}

Outcome SecurityManager::show_member(const std::string& rec, const std::string& id) {
  require_identifier("REC", rec);
  require_identifier("member", id);
  std::lock_guard lock(mutex_);
  const MemberRecord member = require_member(rec, id);
  json identities = json::array();
  for (const auto& identity : registry_.identities(rec, id)) {
    identities.push_back(to_json(identity));
  }
  json brokers = json::array();
  for (const auto& broker : registry_.brokers()) {
    if (broker.rec == rec && broker.member == id) {
      brokers.push_back(broker.id);
    }
  }
  return {200,
          {{"rec", member.rec},
           {"id", member.id},
           {"status", member.status},
           {"created_at", member.created_at},
           {"identities", identities},
           {"brokers", brokers}},
          ""};
}

MemberRecord SecurityManager::require_member(const std::string& rec, const std::string& member) {
  auto found = registry_.member(rec, member);
  if (!found) {
    throw ApiError::not_found(fmt::format("member {}/{} is not registered", rec, member));
  }
  return *found;
}

IdentityRecord SecurityManager::require_identity(const std::string& common_name) {
  auto found = registry_.identity(common_name);
  if (!found) {
    throw ApiError::not_found(
        fmt::format("identity {} is not registered", quote_untrusted(common_name)));
  }
  return *found;
}

// ---- identities ----

Outcome SecurityManager::add_device(const std::string& rec, const std::string& member,
                                    const std::string& id) {
  RegistrationBatch batch;
  batch.devices = {{rec, member, id}};
  const Registered done = register_all(batch);
  const IdentityRecord& identity = done.identities.at(0);
  return pushed({201,
                 {{"common_name", identity.common_name},
                  {"kind", identity.kind},
                  {"rec", rec},
                  {"member", member},
                  {"name", id},
                  {"status", kActive}},
                 "added " + identity.kind + " " + identity.common_name},
                done.change);
}

Outcome SecurityManager::list_devices(const std::string& rec, const std::string& member) {
  require_identifier("REC", rec);
  require_identifier("member", member);
  std::lock_guard lock(mutex_);
  require_member(rec, member);
  json out = json::array();
  for (const auto& identity : registry_.identities(rec, member)) {
    if (identity.kind == "device" || identity.kind == "gateway") {
      out.push_back(to_json(identity));
    }
  }
  return {200, {{"devices", out}}, ""};
}

Outcome SecurityManager::add_service(const std::string& id) {
  RegistrationBatch batch;
  batch.services = {id};
  const Registered done = register_all(batch);
  const std::string& common_name = done.identities.at(0).common_name;
  return pushed(
      {201,
       {{"common_name", common_name}, {"kind", "service"}, {"name", id}, {"status", kActive}},
       "added service " + common_name},
      done.change);
}

Outcome SecurityManager::list_services() {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (const auto& identity : registry_.identities({}, {}, "service")) {
    out.push_back(to_json(identity));
  }
  return {200, {{"services", out}}, ""};
}

Outcome SecurityManager::list_identities(const std::string& rec, const std::string& member,
                                         const std::string& kind) {
  if (!rec.empty()) {
    require_identifier("REC", rec);
  }
  if (!member.empty()) {
    require_identifier("member", member);
  }
  if (!kind.empty() && kind != "device" && kind != "gateway" && kind != "bridge" &&
      kind != "service") {
    throw ApiError::bad_request(fmt::format(
        "kind {} is not one of device, gateway, bridge, service", quote_untrusted(kind)));
  }
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (const auto& identity : registry_.identities(rec, member, kind)) {
    out.push_back(to_json(identity));
  }
  return {200, {{"identities", out}}, ""};
}

Outcome SecurityManager::show_identity(const std::string& common_name) {
  std::lock_guard lock(mutex_);
  const IdentityRecord identity = require_identity(common_name);
  json out = to_json(identity);
  json certificates = json::array();
  for (const auto& record : pki_.certificates()) {
    if (record.common_name == common_name) {
      certificates.push_back(certificate_json(record));
    }
  }
  out["certificates"] = certificates;
  json rules = json::array();
  for (const auto& rule : registry_.rules(common_name)) {
    rules.push_back(to_json(rule));
  }
  out["rules"] = rules;
  return {200, out, ""};
}

// ---- certificates ----

Outcome SecurityManager::issue(const std::string& common_name, const std::string& csr_pem,
                               std::optional<int> days) {
  return sign(common_name, csr_pem, days, false);
}

Outcome SecurityManager::renew(const std::string& common_name, const std::string& csr_pem,
                               std::optional<int> days) {
  return sign(common_name, csr_pem, days, true);
}

Outcome SecurityManager::sign(const std::string& common_name, const std::string& csr_pem,
                              std::optional<int> days, bool renewal) {
  std::lock_guard lock(mutex_);
  const IdentityRecord identity = require_identity(common_name);
  if (identity.status != kActive) {
    throw ApiError::conflict(fmt::format("{} is revoked; register a new identity", common_name));
  }
  check_csr(csr_pem, common_name);
  pki::IssuedCertificate issued;
  if (renewal) {
    issued = pki_.renew(common_name, days, csr_pem);
  } else {
    pki::IssueRequest request;
    request.identity = pki_identity(identity);
    request.csr_pem = csr_pem;
    request.days = days;
    issued = pki_.issue(request);
  }
  return {201,
          {{"common_name", common_name},
           {"serial", issued.record.serial},
           {"not_after", issued.record.not_after},
           {"chain_pem", issued.chain_pem},
           {"cafile_pem", read_file(issued.files.cafile)}},
          fmt::format("{} {} serial {}", renewal ? "renewed" : "issued", common_name,
                      issued.record.serial)};
}

Outcome SecurityManager::revoke_identity(const std::string& common_name,
                                         const std::string& reason) {
  const pki::RevocationReason why = reason_of(reason);
  std::unique_lock lock(mutex_);
  const IdentityRecord identity = require_identity(common_name);
  if (identity.status != kActive) {
    throw ApiError::conflict(fmt::format("{} is already revoked", common_name));
  }
  std::vector<std::string> serials;
  try {
    serials = pki_.revoke(pki::RevocationTarget::certificate(common_name), why).revoked_serials;
  } catch (const Error& e) {
    // An identity without a valid certificate is still revoked in the registry.
    if (e.code() != ErrorCode::kNotFound && e.code() != ErrorCode::kFailedPrecondition) {
      throw;
    }
  }
  registry_.set_identity_status(common_name, kRevoked);
  lock.unlock();
  PolicyChange change;
  change.all_brokers = true;
  change.revoked = {common_name};
  change.reason = "revoked " + common_name;
  return pushed({200,
                 {{"common_name", common_name}, {"status", kRevoked}, {"revoked_serials", serials}},
                 fmt::format("revoked {} ({} certificates)", common_name, serials.size())},
                change);
}

Outcome SecurityManager::revoke_member(const std::string& rec, const std::string& id,
                                       const std::string& reason) {
  require_identifier("REC", rec);
  require_identifier("member", id);
  const pki::RevocationReason why = reason_of(reason);
  std::unique_lock lock(mutex_);
  const MemberRecord member = require_member(rec, id);
  if (member.status != kActive) {
    throw ApiError::conflict(fmt::format("member {}/{} is already revoked", rec, id));
  }
  const pki::RevocationResult result =
      pki_.revoke(pki::RevocationTarget::whole_member(rec, id), why);
  PolicyChange change;
  change.all_brokers = true;
  for (const auto& identity : registry_.identities(rec, id)) {
    change.revoked.push_back(identity.common_name);
  }
  SqliteTransaction transaction(registry_.database());
  registry_.set_member_status(rec, id, kRevoked);
  registry_.revoke_identities_of(rec, id);
  transaction.commit();
  lock.unlock();
  change.reason = fmt::format("revoked member {}/{}", rec, id);
  return pushed({200,
                 {{"rec", rec},
                  {"id", id},
                  {"status", kRevoked},
                  {"revoked_identities", change.revoked},
                  {"revoked_serials", result.revoked_serials}},
                 fmt::format("revoked member {}/{} ({} identities, {} certificates)", rec, id,
                             change.revoked.size(), result.revoked_serials.size())},
                change);
}

Outcome SecurityManager::revoke_rec(const std::string& id, const std::string& reason) {
  require_identifier("REC", id);
  const pki::RevocationReason why = reason_of(reason);
  std::unique_lock lock(mutex_);
  const auto rec = registry_.rec(id);
  if (!rec) {
    throw ApiError::not_found(fmt::format("REC {} is not registered", id));
  }
  if (rec->status != kActive) {
    throw ApiError::conflict(fmt::format("REC {} is already revoked", id));
  }
  const pki::RevocationResult result = pki_.revoke(pki::RevocationTarget::whole_rec(id), why);
  PolicyChange change;
  change.all_brokers = true;
  for (const auto& identity : registry_.identities(id)) {
    change.revoked.push_back(identity.common_name);
  }
  SqliteTransaction transaction(registry_.database());
  registry_.set_rec_status(id, kRevoked);
  for (const auto& member : registry_.members(id)) {
    registry_.set_member_status(id, member.id, kRevoked);
  }
  registry_.revoke_identities_of(id, "");
  transaction.commit();
  lock.unlock();
  change.reason = "revoked REC " + id;
  return pushed({200,
                 {{"id", id},
                  {"status", kRevoked},
                  {"revoked_identities", change.revoked},
                  {"revoked_serials", result.revoked_serials}},
                 fmt::format("revoked REC {} ({} identities, {} certificates)", id,
                             change.revoked.size(), result.revoked_serials.size())},
                change);
}

bool SecurityManager::is_valid_certificate(const std::string& serial,
                                           const std::string& common_name) {
  std::lock_guard lock(mutex_);
  try {
    const pki::CertificateRecord record = pki_.find_by_serial(serial);
    return record.common_name == common_name && record.status == pki::CertificateStatus::kValid;
  } catch (const Error&) {
    return false;
  }
}

// ---- brokers ----

Outcome SecurityManager::add_broker(const std::string& id, const std::string& host,
                                    std::int64_t port, const std::string& connector) {
  RegistrationBatch batch;
  batch.brokers = {{id, host, port, connector}};
  const Registered done = register_all(batch);
  const BrokerRecord& broker = done.brokers.at(0);
  return pushed(
      {201, to_json(broker),
       fmt::format("added {} broker {} ({}:{}, {})", broker.role, id, host, port, connector)},
      done.change);
}

Outcome SecurityManager::register_batch(const RegistrationBatch& batch) {
  const Registered done = register_all(batch);
  json identities = json::array();
  for (const auto& identity : done.identities) {
    identities.push_back(identity.common_name);
  }
  json brokers = json::array();
  for (const auto& broker : done.brokers) {
    brokers.push_back(broker.id);
  }
  Outcome outcome{
      201,
      {{"recs", batch.recs.size()},
       {"members", batch.members.size()},
       {"identities", identities},
       {"brokers", brokers}},
      fmt::format("registered {} RECs, {} members, {} identities, {} brokers", batch.recs.size(),
                  batch.members.size(), identities.size(), brokers.size())};
  if (!done.change.all_brokers && done.change.brokers.empty()) {
    outcome.body["pushed"] = json::object();
    return outcome;
  }
  return pushed(std::move(outcome), done.change);
}

SecurityManager::Registered SecurityManager::register_all(const RegistrationBatch& batch) {
  check_entries(batch);
  Registered out;
  std::lock_guard lock(mutex_);
  // Which authorities the PKI holds already (enrolled with `recmesh pki`): those are adopted.
  std::map<std::string, bool> revoked_authorities;
  if (!batch.recs.empty() || !batch.members.empty()) {
    for (const auto& authority : pki_.authorities()) {
      revoked_authorities[authority.id] = authority.revoked;
    }
  }
  std::vector<std::string> new_recs;
  std::map<std::string, std::vector<std::string>> new_members;  // by REC
  const std::int64_t at = now();
  const auto add_identity = [&](IdentityRecord identity) {
    if (registry_.identity(identity.common_name)) {
      throw ApiError::conflict(fmt::format("{} is already registered", identity.common_name));
    }
    registry_.add_identity(identity);
    out.identities.push_back(std::move(identity));
  };
  SqliteTransaction transaction(registry_.database());
  for (const std::string& rec : batch.recs) {
    if (registry_.rec(rec)) {
      throw ApiError::conflict(fmt::format("REC {} is already registered", rec));
    }
    if (!revoked_authorities.contains(pki::authority_id(pki::AuthorityKind::kRec, rec))) {
      new_recs.push_back(rec);
    }
    registry_.add_rec(rec, at);
  }
  for (const auto& member : batch.members) {
    const auto rec = registry_.rec(member.rec);
    if (!rec) {
      throw ApiError::not_found(fmt::format("REC {} is not registered", member.rec));
    }
    if (rec->status != kActive) {
      throw ApiError::conflict(fmt::format("REC {} is revoked", member.rec));
    }
    if (registry_.member(member.rec, member.id)) {
      throw ApiError::conflict(
          fmt::format("member {}/{} is already registered", member.rec, member.id));
    }
    const auto ca = revoked_authorities.find(
        pki::authority_id(pki::AuthorityKind::kMember, member.rec, member.id));
    if (ca != revoked_authorities.end() && ca->second) {
      throw ApiError::conflict(
          fmt::format("member {}/{} was revoked in the PKI", member.rec, member.id));
    }
    if (ca == revoked_authorities.end()) {
      new_members[member.rec].push_back(member.id);
    }
    registry_.add_member(member.rec, member.id, at);
    // Every member has exactly one bridging module.
    const pki::Identity bridge =
        pki::Identity::make(pki::IdentityKind::kBridge, member.rec, member.id, "");
    add_identity(
        {bridge.common_name(), "bridge", member.rec, member.id, "", std::string(kActive), at});
  }
  // Active devices per member (rec/member), counted once per batch.
  std::map<std::string, std::size_t> devices_of;
  for (const auto& device : batch.devices) {
    const MemberRecord record = require_member(device.rec, device.member);
    if (record.status != kActive) {
      throw ApiError::conflict(fmt::format("member {}/{} is revoked", device.rec, device.member));
    }
    const pki::Identity identity = device_identity(device);
    if (identity.kind == pki::IdentityKind::kDevice) {
      // The member's grants grow with its devices; past the bound its brokers would refuse them.
      const auto [count, first] = devices_of.try_emplace(device.rec + "/" + device.member, 0);
      if (first) {
        const auto registered = registry_.identities(device.rec, device.member, "device");
        count->second = static_cast<std::size_t>(
            std::count_if(registered.begin(), registered.end(),
                          [](const IdentityRecord& d) { return d.status == kActive; }));
      }
      if (count->second >= policy::kMaxDevicesPerMember) {
        throw ApiError::conflict(
            fmt::format("member {}/{} has {} devices, the most one member may register", device.rec,
                        device.member, policy::kMaxDevicesPerMember));
      }
      ++count->second;
    }
    add_identity({identity.common_name(),
                  identity.kind == pki::IdentityKind::kGateway ? "gateway" : "device", device.rec,
                  device.member, device.id, std::string(kActive), at});
    out.change.all_brokers = true;
  }
  for (const std::string& service : batch.services) {
    const pki::Identity identity =
        pki::Identity::make(pki::IdentityKind::kService, "", "", service);
    add_identity({identity.common_name(), "service", "", "", service, std::string(kActive), at});
    out.change.all_brokers = true;
  }
  for (const auto& entry : batch.brokers) {
    const pki::Identity server = *pki::parse_common_name(entry.id);
    const bool local = server.kind == pki::IdentityKind::kLocalBroker;
    if (local) {
      require_member(server.rec, server.member);
    }
    if (registry_.broker(entry.id)) {
      throw ApiError::conflict(fmt::format("broker {} is already registered", entry.id));
    }
    BrokerRecord broker;
    broker.id = entry.id;
    broker.role = local ? "local" : "central";
    broker.rec = server.rec;
    broker.member = server.member;
    broker.host = entry.host;
    broker.port = static_cast<std::int32_t>(entry.port);
    broker.connector = entry.connector;
    broker.created_at = at;
    registry_.add_broker(broker);
    out.change.brokers.push_back(broker.id);
    out.brokers.push_back(std::move(broker));
  }
  // The CAs last, so that a refused entry creates none; a CA created for a batch whose commit
  // then fails stays in the PKI and is adopted by the next registration of its REC or member.
  for (const std::string& rec : new_recs) {
    pki_.add_rec(rec);
  }
  for (const auto& [rec, members] : new_members) {
    pki_.add_members(rec, members);
  }
  transaction.commit();
  if (batch.size() == 1) {
    out.change.reason =
        out.brokers.empty()
            ? (out.identities.empty() ? std::string("registered")
                                      : "registered " + out.identities.front().common_name)
            : "registered broker " + out.brokers.front().id;
  } else {
    out.change.reason = fmt::format("registered {} identities and {} brokers",
                                    out.identities.size(), out.brokers.size());
  }
  return out;
}

Outcome SecurityManager::list_brokers() {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (const auto& broker : registry_.brokers()) {
    out.push_back(to_json(broker));
  }
  return {200, {{"brokers", out}}, ""};
}

Outcome SecurityManager::show_broker(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto broker = registry_.broker(id);
  if (!broker) {
    throw ApiError::not_found(fmt::format("broker {} is not registered", quote_untrusted(id)));
  }
  return {200, to_json(*broker), ""};
}

// ---- rules ----

Outcome SecurityManager::add_rule(const Actor& actor, RuleRecord rule) {
  if (rule.permission != "read" && rule.permission != "write") {
    throw ApiError::bad_request(
        fmt::format("permission {} is not one of read, write", quote_untrusted(rule.permission)));
  }
  if (rule.topic.size() > protocol::kMaxTopicBytes ||
      !protocol::is_valid_topic_filter(rule.topic)) {
    throw ApiError::bad_request(
        fmt::format("topic {} is not a valid MQTT topic filter", quote_untrusted(rule.topic)));
  }
  if (rule.note.size() > kMaxNoteBytes) {
    throw ApiError::bad_request(fmt::format("note is longer than {} bytes", kMaxNoteBytes));
  }
  if (rule.broker.empty()) {
    rule.broker = kWildcardBroker;
  }
  std::unique_lock lock(mutex_);
  const IdentityRecord identity = require_identity(rule.identity);
  if (identity.status != kActive) {
    throw ApiError::conflict(fmt::format("{} is revoked", rule.identity));
  }
  if (rule.broker != kWildcardBroker && !registry_.broker(rule.broker)) {
    throw ApiError::not_found(
        fmt::format("broker {} is not registered", quote_untrusted(rule.broker)));
  }
  rule.created_by = actor.common_name;
  rule.created_at = now();
  rule.id = registry_.add_rule(rule);
  lock.unlock();
  PolicyChange change;
  if (rule.broker == kWildcardBroker) {
    change.all_brokers = true;
  } else {
    change.brokers = {rule.broker};
  }
  change.reason = fmt::format("rule {} added", rule.id);
  return pushed(
      {201, to_json(rule),
       fmt::format("added rule {}: {} {} {} {} on {}", rule.id, rule.allow ? "allow" : "deny",
                   rule.identity, rule.permission, rule.topic, rule.broker)},
      change);
}

Outcome SecurityManager::list_rules(const std::string& identity) {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (const auto& rule : registry_.rules(identity)) {
    out.push_back(to_json(rule));
  }
  return {200, {{"rules", out}}, ""};
}

Outcome SecurityManager::remove_rule(std::int64_t id) {
  std::unique_lock lock(mutex_);
  const auto rule = registry_.rule(id);
  if (!rule) {
    throw ApiError::not_found(fmt::format("rule {} does not exist", id));
  }
  registry_.remove_rule(id);
  lock.unlock();
  PolicyChange change;
  if (rule->broker == kWildcardBroker) {
    change.all_brokers = true;
  } else {
    change.brokers = {rule->broker};
  }
  change.reason = fmt::format("rule {} removed", id);
  return pushed({200, to_json(*rule), fmt::format("removed rule {}", id)}, change);
}

Outcome SecurityManager::push(const std::string& broker) {
  PolicyChange change;
  if (broker.empty()) {
    change.all_brokers = true;
  } else {
    std::lock_guard lock(mutex_);
    if (!registry_.broker(broker)) {
      throw ApiError::not_found(
          fmt::format("broker {} is not registered", quote_untrusted(broker)));
    }
    change.brokers = {broker};
  }
  change.reason = "push requested";
  return pushed(
      {200, json::object(), broker.empty() ? "pushed to every broker" : "pushed to " + broker},
      change);
}

Outcome SecurityManager::broker_bundle(const std::string& broker) {
  PolicyPusher* pusher = nullptr;
  {
    std::lock_guard lock(mutex_);
    const auto record = registry_.broker(broker);
    if (!record) {
      throw ApiError::not_found(
          fmt::format("broker {} is not registered", quote_untrusted(broker)));
    }
    if (record->connector != "guard") {
      throw ApiError::bad_request(
          fmt::format("broker {} uses the {} connector; only guard brokers take a signed bundle",
                      broker, record->connector));
    }
    pusher = pusher_;
  }
  std::optional<std::string> bundle;
  if (pusher != nullptr) {
    std::lock_guard push_lock(push_mutex_);
    bundle = pusher->signed_bundle(broker);
  }
  if (!bundle) {
    throw ApiError(503, "no signing key for policy bundles is configured");
  }
  return {200, json{{"broker", broker}, {"bundle", *bundle}},
          "signed the policy bundle of " + broker};
}

Outcome SecurityManager::pushed(Outcome outcome, const PolicyChange& change) {
  PolicyPusher* pusher = nullptr;
  {
    std::lock_guard lock(mutex_);
    pusher = pusher_;
  }
  json results = json::object();
  if (pusher != nullptr) {
    std::lock_guard push_lock(push_mutex_);
    for (const auto& [broker, result] : pusher->push(change)) {
      results[broker] = result;
    }
  }
  outcome.body["pushed"] = results;
  return outcome;
}

// ---- audit and snapshots ----

Outcome SecurityManager::audit(const AuditQuery& query) {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (const auto& entry : registry_.audit(query)) {
    out.push_back(to_json(entry));
  }
  return {200, {{"entries", out}}, ""};
}

void SecurityManager::append_audit(const AuditEntry& entry) {
  std::lock_guard lock(mutex_);
  registry_.append_audit(entry);
}

PolicySnapshot SecurityManager::policy_snapshot() {
  std::lock_guard lock(mutex_);
  PolicySnapshot out{
      registry_.members({}), registry_.identities(), registry_.brokers(), registry_.rules(), {}};
  for (const auto& record : pki_.revoked_leaf_certificates()) {
    out.revoked_certificates.push_back({record.issuer, record.serial});
  }
  return out;
}

std::uint64_t SecurityManager::next_bundle_sequence(const std::string& broker) {
  std::lock_guard lock(mutex_);
  // Milliseconds since the epoch as a floor: a manager whose database was rebuilt still pushes
  // sequences above what the brokers hold.
  const auto floor =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
          .count();
  return registry_.next_sequence(broker, static_cast<std::uint64_t>(floor));
}

void SecurityManager::record_push(const std::string& broker, const std::string& result) {
  std::lock_guard lock(mutex_);
  registry_.record_push(broker, now(), result);
}

}  // namespace recmesh::secmgr
