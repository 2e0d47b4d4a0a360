#include "recmesh/policy/policy_bundle.hpp"

#include <initializer_list>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/protocol/topics.hpp"

namespace recmesh::policy {
namespace {

using json = nlohmann::json;

constexpr std::string_view kLocalPrefix = "local/";
constexpr std::string_view kCentral = "central";
constexpr std::uint64_t kMaxWireInteger = (std::uint64_t{1} << 53) - 1;  // exact in JSON

// A refusal that carries the JSON path of the offending field.
class Invalid {
 public:
  explicit Invalid(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

void require(bool ok, const std::string& path, std::string_view what) {
  if (!ok) {
    throw Invalid(fmt::format("{}: {}", path, what));
  }
}

void require_keys(const json& object, const std::string& path,
                  std::initializer_list<std::string_view> required,
                  std::initializer_list<std::string_view> optional = {}) {
  require(object.is_object(), path, "must be an object");
  for (auto key : required) {
    require(object.contains(std::string(key)), fmt::format("{}.{}", path, key), "is missing");
  }
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (auto k : required) {
      known = known || key == k;
    }
    for (auto k : optional) {
      known = known || key == k;
    }
    require(known, path, fmt::format("unknown key {}", quote_untrusted(key)));
  }
}

std::uint64_t read_unsigned(const json& object, std::string_view key, const std::string& path,
                            std::uint64_t max = kMaxWireInteger) {
  const json& value = object.at(std::string(key));
  const std::string where = fmt::format("{}.{}", path, key);
  require(value.is_number_unsigned() || (value.is_number_integer() && value.get<long long>() >= 0),
          where, "must be a non-negative integer");
  const auto number = value.get<std::uint64_t>();
  require(number <= max, where, fmt::format("must be at most {}", max));
  return number;
}

std::string read_string(const json& object, std::string_view key, const std::string& path) {
  const json& value = object.at(std::string(key));
  require(value.is_string(), fmt::format("{}.{}", path, key), "must be a string");
  return value.get<std::string>();
}

constexpr std::uint64_t kU32 = std::numeric_limits<std::uint32_t>::max();

Quota read_quota(const json& object, const std::string& path) {
  require_keys(object, path, {},
               {"publish_per_second", "bytes_per_second", "max_payload_bytes", "max_retained",
                "max_subscriptions", "max_will_bytes", "will_allowed", "keepalive_min_s",
                "keepalive_max_s", "disconnect_after_violations"});
  Quota q;
  const auto u32 = [&](std::string_view key, std::uint32_t& field) {
    if (object.contains(std::string(key))) {
      field = static_cast<std::uint32_t>(read_unsigned(object, key, path, kU32));
    }
  };
  u32("publish_per_second", q.publish_per_second);
  if (object.contains("bytes_per_second")) {
    q.bytes_per_second = read_unsigned(object, "bytes_per_second", path);
  }
  u32("max_payload_bytes", q.max_payload_bytes);
  u32("max_retained", q.max_retained);
  u32("max_subscriptions", q.max_subscriptions);
  u32("max_will_bytes", q.max_will_bytes);
  u32("keepalive_min_s", q.keepalive_min_s);
  u32("keepalive_max_s", q.keepalive_max_s);
  u32("disconnect_after_violations", q.disconnect_after_violations);
  if (object.contains("will_allowed")) {
    require(object.at("will_allowed").is_boolean(), path + ".will_allowed", "must be a boolean");
    q.will_allowed = object.at("will_allowed").get<bool>();
  }
  require(q.keepalive_max_s == 0 || q.keepalive_min_s <= q.keepalive_max_s, path,
          "keepalive_min_s exceeds keepalive_max_s");
  return q;
}

json quota_json(const Quota& q) {
  return json{{"publish_per_second", q.publish_per_second},
              {"bytes_per_second", q.bytes_per_second},
              {"max_payload_bytes", q.max_payload_bytes},
              {"max_retained", q.max_retained},
              {"max_subscriptions", q.max_subscriptions},
              {"max_will_bytes", q.max_will_bytes},
              {"will_allowed", q.will_allowed},
              {"keepalive_min_s", q.keepalive_min_s},
              {"keepalive_max_s", q.keepalive_max_s},
              {"disconnect_after_violations", q.disconnect_after_violations}};
}

std::vector<std::string> read_filters(const json& object, std::string_view key,
                                      const std::string& path) {
  const std::string where = fmt::format("{}.{}", path, key);
  const json& list = object.at(std::string(key));
  require(list.is_array(), where, "must be an array");
  require(list.size() <= kMaxTopicsPerGrant, where,
          fmt::format("more than {} entries", kMaxTopicsPerGrant));
  std::vector<std::string> out;
  out.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string item = fmt::format("{}[{}]", where, i);
    require(list[i].is_string(), item, "must be a string");
    auto filter = list[i].get<std::string>();
    require(protocol::is_valid_topic_filter(filter), item,
            fmt::format("{} is not a valid MQTT topic filter", quote_untrusted(filter)));
    out.push_back(std::move(filter));
  }
  return out;
}

std::vector<std::string> read_string_list(const json& object, std::string_view key,
                                          const std::string& path) {
  const std::string where = fmt::format("{}.{}", path, key);
  const json& list = object.at(std::string(key));
  require(list.is_array(), where, "must be an array");
  require(list.size() <= kMaxRevocations, where,
          fmt::format("more than {} entries", kMaxRevocations));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    require(list[i].is_string(), fmt::format("{}[{}]", where, i), "must be a string");
    out.push_back(list[i].get<std::string>());
  }
  return out;
}

void require_identity(const std::string& key, const std::string& path) {
  auto identity = parse_identity_key(key);
  require(identity.ok(), path, identity.ok() ? "" : identity.status().message);
}

PolicyBundle read_bundle(const json& doc) {
  const std::string root = "bundle";
  require_keys(
      doc, root,
      {"version", "broker", "sequence", "issued_at", "default_quota", "grants", "revocations"});
  require(read_unsigned(doc, "version", root) == kBundleFormatVersion, root + ".version",
          fmt::format("only version {} is understood", kBundleFormatVersion));
  PolicyBundle bundle;
  bundle.broker = read_string(doc, "broker", root);
  auto broker = parse_broker_id(bundle.broker);
  require(broker.ok(), root + ".broker", broker.ok() ? "" : broker.status().message);
  bundle.sequence = read_unsigned(doc, "sequence", root);
  require(bundle.sequence > 0, root + ".sequence", "must be at least 1");
  bundle.issued_at = static_cast<std::int64_t>(read_unsigned(doc, "issued_at", root));
  bundle.default_quota = read_quota(doc.at("default_quota"), root + ".default_quota");

  const json& grants = doc.at("grants");
  require(grants.is_array(), root + ".grants", "must be an array");
  require(grants.size() <= kMaxGrants, root + ".grants",
          fmt::format("more than {} grants", kMaxGrants));
  bundle.grants.reserve(grants.size());
  for (std::size_t i = 0; i < grants.size(); ++i) {
    const std::string path = fmt::format("bundle.grants[{}]", i);
    const json& g = grants[i];
    require_keys(g, path, {"identity", "publish", "subscribe"}, {"quota"});
    Grant grant;
    grant.identity = read_string(g, "identity", path);
    require_identity(grant.identity, path + ".identity");
    grant.publish = read_filters(g, "publish", path);
    grant.subscribe = read_filters(g, "subscribe", path);
    if (g.contains("quota")) {
      grant.quota = read_quota(g.at("quota"), path + ".quota");
    }
    bundle.grants.push_back(std::move(grant));
  }

  const std::string rpath = root + ".revocations";
  const json& r = doc.at("revocations");
  require_keys(r, rpath, {"serials", "identities", "domains"});
  const json& serials = r.at("serials");
  require(serials.is_array() && serials.size() <= kMaxRevocations, rpath + ".serials",
          "must be an array of at most 100000 entries");
  for (std::size_t i = 0; i < serials.size(); ++i) {
    const std::string path = fmt::format("{}.serials[{}]", rpath, i);
    require_keys(serials[i], path, {"domain", "serial"});
    SerialRevocation s{read_string(serials[i], "domain", path),
                       read_string(serials[i], "serial", path)};
    auto domain = parse_ca_domain(s.domain);
    require(domain.ok(), path + ".domain", domain.ok() ? "" : domain.status().message);
    auto serial = normalise_serial(s.serial);
    require(serial.ok(), path + ".serial", serial.ok() ? "" : serial.status().message);
    s.serial = *serial;
    bundle.revocations.serials.push_back(std::move(s));
  }
  bundle.revocations.identities = read_string_list(r, "identities", rpath);
  for (std::size_t i = 0; i < bundle.revocations.identities.size(); ++i) {
    require_identity(bundle.revocations.identities[i], fmt::format("{}.identities[{}]", rpath, i));
  }
  bundle.revocations.domains = read_string_list(r, "domains", rpath);
  for (std::size_t i = 0; i < bundle.revocations.domains.size(); ++i) {
    auto domain = parse_ca_domain(bundle.revocations.domains[i]);
    require(domain.ok(), fmt::format("{}.domains[{}]", rpath, i),
            domain.ok() ? "" : domain.status().message);
  }
  return bundle;
}

// Bundles nest four levels deep; bounding depth before nlohmann's recursive parser runs keeps a
// hostile `[[[[...` from exhausting the stack.
bool nesting_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return false;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

json parse_object(std::string_view text, std::size_t limit, std::string_view what) {
  constexpr int kMaxDepth = 6;
  if (text.size() > limit) {
    throw Invalid(fmt::format("{} of {} bytes exceeds the limit of {}", what, text.size(), limit));
  }
  if (!nesting_within(text, kMaxDepth)) {
    throw Invalid(fmt::format("{} nests deeper than {} levels", what, kMaxDepth));
  }
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    throw Invalid(fmt::format("{} is not valid JSON", what));
  }
  return doc;
}

}  // namespace

std::string to_json(const PolicyBundle& bundle) {
  json grants = json::array();
  for (const auto& g : bundle.grants) {
    json grant{{"identity", g.identity}, {"publish", g.publish}, {"subscribe", g.subscribe}};
    if (g.quota) {
      grant["quota"] = quota_json(*g.quota);
    }
    grants.push_back(std::move(grant));
  }
  json serials = json::array();
  for (const auto& s : bundle.revocations.serials) {
    serials.push_back(json{{"domain", s.domain}, {"serial", s.serial}});
  }
  const json doc{{"version", kBundleFormatVersion},
                 {"broker", bundle.broker},
                 {"sequence", bundle.sequence},
                 {"issued_at", bundle.issued_at},
                 {"default_quota", quota_json(bundle.default_quota)},
                 {"grants", std::move(grants)},
                 {"revocations", json{{"serials", std::move(serials)},
                                      {"identities", bundle.revocations.identities},
                                      {"domains", bundle.revocations.domains}}}};
  return doc.dump();
}

Result<PolicyBundle> parse_policy_bundle(std::string_view text) {
  try {
    return read_bundle(parse_object(text, kMaxBundleBytes, "the bundle"));
  } catch (const Invalid& e) {
    return Status{ErrorCode::kInvalidArgument, e.message()};
  } catch (const json::exception& e) {
    return Status{ErrorCode::kInvalidArgument, fmt::format("the bundle: {}", e.what())};
  }
}

BrokerId BrokerId::local(std::string rec, std::string member) {
  require_identifier("REC", rec);
  require_identifier("member", member);
  return {Kind::kLocal, std::move(rec), std::move(member)};
}

std::string BrokerId::to_string() const {
  return kind == Kind::kCentral ? std::string(kCentral)
                                : fmt::format("{}{}/{}", kLocalPrefix, rec, member);
}

Result<BrokerId> parse_broker_id(std::string_view text) {
  if (text == kCentral) {
    return BrokerId::central();
  }
  if (text.starts_with(kLocalPrefix)) {
    const std::string_view rest = text.substr(kLocalPrefix.size());
    const std::size_t slash = rest.find('/');
    if (slash != std::string_view::npos && is_valid_identifier(rest.substr(0, slash)) &&
        is_valid_identifier(rest.substr(slash + 1))) {
      return BrokerId{BrokerId::Kind::kLocal, std::string(rest.substr(0, slash)),
                      std::string(rest.substr(slash + 1))};
    }
  }
  return Status{
      ErrorCode::kInvalidArgument,
      fmt::format("broker {} is not central or local/<rec>/<member>", quote_untrusted(text))};
}

std::string to_json(const GuardResponse& response) {
  return json{{"accepted", response.accepted},
              {"broker", response.broker},
              {"sequence", response.sequence},
              {"current_sequence", response.current_sequence},
              {"reason", response.reason}}
      .dump();
}

Result<GuardResponse> parse_guard_response(std::string_view text) {
  constexpr std::size_t kMaxResponseBytes = 4096;
  try {
    const json doc = parse_object(text, kMaxResponseBytes, "the response");
    const std::string root = "response";
    require_keys(doc, root, {"accepted", "broker", "sequence", "current_sequence", "reason"});
    require(doc.at("accepted").is_boolean(), root + ".accepted", "must be a boolean");
    GuardResponse out;
    out.accepted = doc.at("accepted").get<bool>();
    out.broker = read_string(doc, "broker", root);
    out.sequence = read_unsigned(doc, "sequence", root);
    out.current_sequence = read_unsigned(doc, "current_sequence", root);
    out.reason = read_string(doc, "reason", root);
    return out;
  } catch (const Invalid& e) {
    return Status{ErrorCode::kInvalidArgument, e.message()};
  } catch (const json::exception& e) {
    return Status{ErrorCode::kInvalidArgument, fmt::format("the response: {}", e.what())};
  }
}

}  // namespace recmesh::policy
