#include "guard_engine.hpp"

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/protocol/topics.hpp"

namespace recmesh::guard {
namespace {

using policy::CaDomain;
using policy::ClientIdentity;
using json = nlohmann::json;

constexpr std::int64_t kNsPerSecond = 1'000'000'000;

std::string serial_of(X509* certificate) {
  crypto::BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr));
  char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
  std::string out = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  return out;
}

std::uint32_t parse_rate(const std::string& text) {
  std::size_t used = 0;
  const unsigned long value = std::stoul(text, &used);
  if (used != text.size() || value > 100000) {
    throw std::invalid_argument("range");
  }
  return static_cast<std::uint32_t>(value);
}

}  // namespace

struct GuardEngine::ClientState {
  ClientIdentity identity;
  std::string key;  // identity.key(), the connection's username
  std::string serial;
  std::string client_id;
  std::string address;
  const policy::CompiledGrant* grant = nullptr;
  policy::QuotaMeter quota;
  bool gone = false;  // disconnected: its next write check is its Will
  bool kicked = false;
};

GuardOptions GuardOptions::parse(const std::vector<std::pair<std::string, std::string>>& options) {
  GuardOptions out;
  std::optional<policy::BrokerId> broker;
  std::vector<std::pair<std::string, std::filesystem::path>> cas;
  for (const auto& option : options) {
    const std::string& key = option.first;
    const std::string& value = option.second;
    const auto path = [&]() {
      if (value.empty()) {
        throw Error(ErrorCode::kInvalidArgument, fmt::format("plugin_opt_{} needs a path", key));
      }
      return std::filesystem::path(value);
    };
    if (key == "broker") {
      auto parsed = policy::parse_broker_id(value);
      if (!parsed) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("plugin_opt_broker: {}", parsed.status().message));
      }
      broker = *parsed;
    } else if (key == "ca_ems" || key == "ca_bridge" || key == "ca_member") {
      cas.emplace_back(key, path());
    } else if (key == "ems_crl") {
      out.ems_crl = path();
    } else if (key == "secmgr_cert") {
      out.secmgr_cert = path();
    } else if (key == "policy_file") {
      out.policy_file = path();
    } else if (key == "key_file") {
      out.key_file = path();
    } else if (key == "events_per_second") {
      try {
        out.events_per_second = parse_rate(value);
      } catch (const std::exception&) {
        throw Error(ErrorCode::kInvalidArgument, "plugin_opt_events_per_second must be 0..100000");
      }
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("unknown option plugin_opt_{} (see docs/recmesh-guard.md)",
                              quote_untrusted(key)));
    }
  }
  if (!broker) {
    throw Error(ErrorCode::kInvalidArgument,
                "plugin_opt_broker is required (central or local/<rec>/<member>)");
  }
  out.broker = *broker;
  for (auto& [key, file] : cas) {
    if (key == "ca_ems") {
      out.ems_ca = file;
      out.client_cas.emplace_back(CaDomain::ems(), file);
    } else if (key == "ca_bridge") {
      out.client_cas.emplace_back(CaDomain::bridge(), file);
    } else if (out.broker.kind == policy::BrokerId::Kind::kLocal) {
      out.client_cas.emplace_back(CaDomain::of_member(out.broker.rec, out.broker.member), file);
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  "plugin_opt_ca_member is for a member's local broker only");
    }
  }
  for (const auto& [name, value] :
       {std::pair<const char*, const std::filesystem::path*>{"ca_ems", &out.ems_ca},
        {"ems_crl", &out.ems_crl},
        {"secmgr_cert", &out.secmgr_cert},
        {"policy_file", &out.policy_file},
        {"key_file", &out.key_file}}) {
    if (value->empty()) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("plugin_opt_{} is required", name));
    }
  }
  return out;
}

namespace {

policy::BundleTrust trust_of(const GuardOptions& options) {
  return {read_file(options.ems_ca), read_file(options.ems_crl), read_file(options.secmgr_cert)};
}

// The Security Manager's channel, exempt from every quota: a bundle's default quota (a payload
// limit smaller than a bundle, a publish rate) must never lock out the bundle that corrects it.
policy::Grant unlimited_secmgr_grant(std::string_view common_name) {
  policy::Grant grant = policy::secmgr_grant(common_name);
  grant.quota = policy::Quota{};
  return grant;
}

}  // namespace

GuardEngine::GuardEngine(GuardOptions options, BrokerHooks& hooks)
    : options_(std::move(options)),
      hooks_(hooks),
      verifier_(trust_of(options_)),
      store_(options_.policy_file, options_.key_file),
      secmgr_(unlimited_secmgr_grant(verifier_.signer_common_name())),
      secmgr_key_(secmgr_.identity),
      matcher_(policy::PolicyBundle{}, std::span<const policy::Grant>(&secmgr_, 1)),
      events_topic_(options_.broker.kind == policy::BrokerId::Kind::kLocal
                        ? protocol::kSecurityEventsTopic
                        : protocol::kPlatformSecurityEventsTopic) {
  for (const auto& [domain, file] : options_.client_cas) {
    cas_.emplace_back(domain, crypto::certificate_from_pem(read_file(file), file.string()));
  }
  event_tokens_ = options_.events_per_second;
  event_refill_ns_ = now_ns();
  auto stored = store_.load();
  if (!stored) {
    hooks_.log(true, fmt::format("recmesh-guard: {}; starting with no policy (deny all)",
                                 stored.status().message));
    return;
  }
  if (!stored->has_value()) {
    hooks_.log(false, "recmesh-guard: no stored policy yet; waiting for the Security Manager");
    return;
  }
  auto bundle = verifier_.verify(**stored, options_.broker, 0);
  if (!bundle) {
    hooks_.log(true, fmt::format("recmesh-guard: stored policy refused: {}; deny all",
                                 bundle.status().message));
    return;
  }
  const std::uint64_t sequence = bundle->sequence;
  install(*bundle);
  hooks_.log(false, fmt::format("recmesh-guard: policy {} loaded for {}", sequence,
                                options_.broker.to_string()));
}

GuardEngine::~GuardEngine() = default;

std::int64_t GuardEngine::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::optional<CaDomain> GuardEngine::domain_of(X509* certificate) const {
  for (const auto& [domain, ca] : cas_) {
    if (X509_NAME_cmp(X509_get_issuer_name(certificate), X509_get_subject_name(ca.get())) != 0) {
      continue;
    }
    crypto::PkeyPtr key(X509_get_pubkey(ca.get()));
    if (key && X509_verify(certificate, key.get()) == 1) {
      return domain;
    }
  }
  return std::nullopt;
}

Verdict GuardEngine::on_connect(const Connect& connect, std::string& username) {
  ClientState refused{{}, {}, {}, connect.client_id, connect.address, nullptr, {{}, 0}};
  const auto refuse = [&](const std::string& reason) {
    event("connect-refused", &refused, reason);
    return Verdict::kRefuseConnect;
  };
  if (connect.certificate == nullptr) {
    return refuse("no client certificate");
  }
  const std::string cn = crypto::subject_common_name(connect.certificate);
  refused.key = cn;
  const auto domain = domain_of(connect.certificate);
  if (!domain) {
    return refuse("the certificate's issuer is not a client CA of this broker");
  }
  auto identity = policy::make_client_identity(*domain, cn);
  if (!identity) {
    return refuse(identity.status().message);
  }
  refused.identity = *identity;
  refused.key = identity->key();
  refused.serial = serial_of(connect.certificate);
  if (auto revoked = matcher_.revocation_of(*identity, refused.serial)) {
    return refuse(*revoked);
  }
  const policy::CompiledGrant* grant = matcher_.grant_of(refused.key);
  if (grant == nullptr) {
    return refuse("the policy grants this identity nothing");
  }
  if (auto violation = policy::connect_violation(grant->quota, connect.keepalive_s)) {
    return refuse(*violation);
  }
  auto state = std::make_unique<ClientState>(
      ClientState{*identity, refused.key, refused.serial, connect.client_id, connect.address, grant,
                  policy::QuotaMeter(grant->quota, now_ns())});
  username = state->key;
  clients_[connect.client] = std::move(state);
  return Verdict::kAllow;
}

Verdict GuardEngine::on_acl(const void* client, Access access, std::string_view topic,
                            std::size_t payload_bytes, bool retain, int subscriptions_held,
                            std::string_view username) {
  auto it = clients_.find(client);
  if (it == clients_.end()) {
    // A persistent session whose client is offline (it disconnected, or the session was
    // restored from the broker's persistence after a restart): a message queued for it is
    // decided by the identity key this engine gave the connection at connect and the policy in
    // force now; anything else (no key, a plain CN from a configuration without the guard, a
    // revoked identity) is denied.
    if (access != Access::kRead) {
      return Verdict::kDeny;
    }
    auto identity = policy::parse_identity_key(username);
    if (!identity || matcher_.revocation_of(*identity)) {
      return Verdict::kDeny;
    }
    const policy::CompiledGrant* grant = matcher_.grant_of(username);
    return grant != nullptr && grant->receive.matches(topic) ? Verdict::kAllow : Verdict::kDeny;
  }
  ClientState& state = *it->second;
  const policy::CompiledGrant* grant = state.grant;
  const auto deny = [&](std::string_view type, std::string_view reason) {
    event(type, &state, reason, "topic", topic);
    return Verdict::kDeny;
  };
  if (grant == nullptr) {
    return deny("acl-denied", "the policy grants this identity nothing");
  }
  switch (access) {
    case Access::kRead:
      return grant->receive.matches(topic) ? Verdict::kAllow : Verdict::kDeny;
    case Access::kSubscribe:
      if (!grant->receive.intersects(topic)) {
        return deny("acl-denied", "subscribe outside the grant");
      }
      if (auto quota = state.quota.check_subscribe(subscriptions_held)) {
        if (state.quota.record_violation(now_ns()) && !state.kicked) {
          state.kicked = true;
          to_kick_.push_back(state.client_id);
        }
        return deny("quota-exceeded", *quota);
      }
      return Verdict::kAllow;
    case Access::kWrite: {
      if (!grant->publish.matches(topic)) {
        return deny("acl-denied",
                    state.gone ? "will outside the grant" : "publish outside the grant");
      }
      std::optional<std::string_view> quota =
          state.gone ? state.quota.check_will(payload_bytes)
                     : state.quota.check_publish(topic, payload_bytes, retain, now_ns());
      if (quota) {
        if (!state.gone && state.quota.record_violation(now_ns()) && !state.kicked) {
          state.kicked = true;
          to_kick_.push_back(state.client_id);
        }
        return deny("quota-exceeded", *quota);
      }
      return Verdict::kAllow;
    }
    case Access::kOther:
      break;
  }
  return Verdict::kDeny;
}

void GuardEngine::respond(const std::string& client_id, bool accepted, std::uint64_t sequence,
                          const std::string& reason) {
  policy::GuardResponse response{accepted, options_.broker.to_string(), sequence,
                                 matcher_.sequence(), reason};
  hooks_.publish(client_id, policy::kGuardResponseTopic, policy::to_json(response), 1);
}

void GuardEngine::on_control(const void* client, std::string_view payload) {
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second->key != secmgr_key_) {
    return;  // only the Security Manager's identity reaches here through the ACL
  }
  const std::string client_id = it->second->client_id;
  auto bundle = verifier_.verify(payload, options_.broker, matcher_.sequence());
  if (!bundle) {
    event("policy-refused", it->second.get(), bundle.status().message);
    respond(client_id, false, 0, bundle.status().message);
    return;
  }
  const std::uint64_t sequence = bundle->sequence;
  std::string persisted_problem;
  try {
    store_.save(payload);
  } catch (const std::exception& e) {
    persisted_problem = e.what();
  }
  install(*bundle);
  event("policy-updated", clients_.at(client).get(),
        persisted_problem.empty() ? "" : "not persisted: " + persisted_problem, "sequence",
        std::to_string(sequence));
  respond(client_id, true, sequence, persisted_problem);
}

void GuardEngine::install(const policy::PolicyBundle& bundle) {
  matcher_ = policy::PolicyMatcher(bundle, std::span<const policy::Grant>(&secmgr_, 1));
  std::vector<std::string> kicks;
  for (auto& [client, state] : clients_) {
    // Every state, a disconnected one awaiting its Will check included: the old grants are gone.
    state->grant = matcher_.grant_of(state->key);
    if (state->grant != nullptr) {
      state->quota.set_quota(state->grant->quota);
    }
    if (state->gone) {
      continue;
    }
    if (auto revoked = matcher_.revocation_of(state->identity, state->serial)) {
      if (!state->kicked) {
        state->kicked = true;
        event("revocation-kick", state.get(), *revoked);
        kicks.push_back(state->client_id);
      }
    }
  }
  // Kicked now, not at the next tick: the broker closes the connections before it reads more.
  for (const auto& client_id : kicks) {
    hooks_.kick(client_id);
  }
}

void GuardEngine::on_disconnect(const void* client) {
  auto it = clients_.find(client);
  if (it != clients_.end() && !it->second->gone) {
    it->second->gone = true;
    gone_.push_back(client);
  }
}

void GuardEngine::on_tick() {
  // The Will was checked right after the disconnect event; the state can go.
  for (const void* client : gone_) {
    auto it = clients_.find(client);
    if (it != clients_.end() && it->second->gone) {
      clients_.erase(it);
    }
  }
  gone_.clear();
  std::vector<std::string> kicks;
  kicks.swap(to_kick_);
  for (const auto& client_id : kicks) {
    hooks_.kick(client_id);
  }
}

void GuardEngine::event(std::string_view type, const ClientState* client, std::string_view reason,
                        std::string_view extra_key, std::string_view extra_value) {
  const std::int64_t now = now_ns();
  if (options_.events_per_second == 0) {
    return;
  }
  event_tokens_ = std::min<double>(options_.events_per_second,
                                   event_tokens_ + static_cast<double>(now - event_refill_ns_) /
                                                       kNsPerSecond * options_.events_per_second);
  event_refill_ns_ = now;
  if (event_tokens_ < 1.0) {
    ++events_suppressed_;
    return;
  }
  event_tokens_ -= 1.0;
  json doc{{"type", type},
           {"broker", options_.broker.to_string()},
           {"time", std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()},
           {"reason", reason}};
  if (client != nullptr) {
    doc["identity"] = client->key;
    doc["client_id"] = client->client_id;
    doc["address"] = client->address;
  }
  if (!extra_key.empty()) {
    doc[std::string(extra_key)] = extra_value;
  }
  if (events_suppressed_ > 0) {
    doc["suppressed"] = events_suppressed_;
    events_suppressed_ = 0;
  }
  const std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  hooks_.publish({}, events_topic_, text, 0);
  if (type != "acl-denied") {
    hooks_.log(false, "recmesh-guard: " + text);
  }
}

}  // namespace recmesh::guard
