#include "recmesh/policy/access_matrix.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/core/text.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/protocol/bridge_mapping.hpp"
#include "recmesh/protocol/log_level.hpp"
#include "recmesh/protocol/topics.hpp"

namespace recmesh::policy {
namespace {

using protocol::BridgeDirection;
using protocol::Channel;
using protocol::TopicForm;
using Topics = std::vector<std::string>;

// Placeholders of the central side of a §4.5 rule (protocol/bridge_mapping.hpp).
constexpr std::string_view kRecPlaceholder = "<rec>";
constexpr std::string_view kMemberPlaceholder = "<member>";

class Derivation {
 public:
  // Thrown on a failed protocol builder; turned into the Result at the boundary.
  struct Failure {
    Status status;
  };

  template <typename T>
  static T take(Result<T> result) {
    if (!result) {
      throw Failure{result.status()};
    }
    return std::move(result).value();
  }
};

std::string central_side(const protocol::BridgeRule& rule, std::string_view rec,
                         std::string_view member) {
  return replace_all(replace_all(std::string(rule.central), kRecPlaceholder, rec),
                     kMemberPlaceholder, member);
}

// The channel an ACL filter covers, found by filling its wildcards with sample levels until the
// topic grammar reads it: `/platform/logs/+` is a member-logs filter.
std::optional<Channel> channel_of(TopicForm form, std::string_view filter) {
  const std::string info(protocol::to_string(protocol::LogLevel::kInfo));
  for (std::string_view sample : {std::string_view("x0"), std::string_view(info)}) {
    std::string name = replace_all(replace_all(std::string(filter), "+", sample), "#", sample);
    if (auto topic = protocol::parse_topic(form, name)) {
      return topic->channel;
    }
  }
  return std::nullopt;
}

bool is_device_filter(TopicForm form, std::string_view filter) {
  auto channel = channel_of(form, filter);
  return channel && protocol::is_device_channel(*channel);
}

// A device-scoped filter once per device: its first '+' is the device level.
void add_per_device(Topics& out, TopicForm form, const std::string& filter,
                    std::span<const std::string> devices) {
  if (!is_device_filter(form, filter)) {
    out.push_back(filter);
    return;
  }
  const std::size_t plus = filter.find('+');
  for (const auto& device : devices) {
    std::string exact = filter;
    exact.replace(plus, 1, device);
    out.push_back(std::move(exact));
  }
}

void append(Topics& out, const Topics& more) {
  out.insert(out.end(), more.begin(), more.end());
}

Grant grant_for(const pki::Identity& identity, Topics publish, Topics subscribe) {
  return {client_identity_of(identity).key(), std::move(publish), std::move(subscribe), {}};
}

bool is_out(const protocol::BridgeRule& rule) {
  return rule.direction == BridgeDirection::kOut;
}
bool is_in(const protocol::BridgeRule& rule) {
  return rule.direction == BridgeDirection::kIn;
}

void require_devices(const MemberRegistration& m) {
  if (m.devices.size() > kMaxDevicesPerMember) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("member {}/{} registers {} devices, more than {}", m.rec, m.member,
                            m.devices.size(), kMaxDevicesPerMember));
  }
  for (const auto& device : m.devices) {
    pki::Identity::make(pki::IdentityKind::kDevice, "r", "m", device);  // same rule as the PKI
  }
}

std::vector<DerivedGrant> local_rows(const MemberRegistration& m) {
  const auto& devices = m.devices;
  std::vector<DerivedGrant> rows;
  Topics gateway_publish;
  for (const auto& device : devices) {
    // The device writes what the gateway reads of it, plus its diagnostic (read by the bridge).
    const std::string one[] = {device};
    Topics publish;
    for (const auto& filter : Derivation::take(protocol::gateway_subscriptions(one))) {
      if (is_device_filter(TopicForm::kLocal, filter)) {
        publish.push_back(filter);
      }
    }
    publish.push_back(
        Derivation::take(protocol::local_device_topic(Channel::kDeviceDiagnostic, device)));
    Topics subscribe = Derivation::take(protocol::device_subscriptions(device));
    append(gateway_publish, subscribe);  // the device's command topic has the gateway as writer
    rows.push_back({MatrixRow::kDevice, grant_for(pki::Identity::make(pki::IdentityKind::kDevice,
                                                                      m.rec, m.member, device),
                                                  std::move(publish), std::move(subscribe))});
  }
  // The gateway writes the member-level flows the bridge carries out (not the device ones, and
  // not the security events, which the broker itself reports).
  Topics bridge_publish;
  for (const auto& rule : protocol::bridge_rules()) {
    const std::string local(rule.local);
    if (is_out(rule)) {
      const auto channel = channel_of(TopicForm::kLocal, local);
      if (!is_device_filter(TopicForm::kLocal, local) && channel != Channel::kSecurityEvents) {
        gateway_publish.push_back(local);
      }
    } else {
      bridge_publish.push_back(local);
    }
  }
  rows.push_back({MatrixRow::kGateway,
                  grant_for(pki::Identity::make(pki::IdentityKind::kGateway, m.rec, m.member, ""),
                            std::move(gateway_publish),
                            Derivation::take(protocol::gateway_subscriptions(devices)))});
  // The bridge reads what it carries out as §4.5 writes it, `/device/+/…` included: it
  // subscribes with those filters once, whatever devices the member has then, and keeps them as
  // devices come and go. On the member's own broker they cover that member's devices only, each
  // device the one writer of its flows.
  rows.push_back({MatrixRow::kBridgeLocal,
                  grant_for(pki::Identity::make(pki::IdentityKind::kBridge, m.rec, m.member, ""),
                            std::move(bridge_publish), protocol::bridge_local_subscriptions())});
  return rows;
}

// What the bridge of `m` writes on the central broker: the central side of every out and both
// rule, per device, and its own diagnostic.
Topics bridge_central_publish(const MemberRegistration& m) {
  Topics out;
  for (const auto& rule : protocol::bridge_rules()) {
    if (!is_in(rule)) {
      add_per_device(out, TopicForm::kCentral, central_side(rule, m.rec, m.member), m.devices);
    }
  }
  out.push_back(Derivation::take(
      protocol::central_member_topic(Channel::kBridgeDiagnostic, m.rec, m.member)));
  return out;
}

// The platform's services read and write every member's flows on the central broker: their rows
// are SPEC §6's wildcard filters, the same whatever members are registered. A service subscribes
// once at start, before or after the members it serves are registered, and a policy of 1,000
// members stays small. The wildcards give no more than the exact topics would: on the central
// broker each member's topics have one writer, that member's bridge (or the engine, for control
// and keys), whose own rows are exact.
std::vector<DerivedGrant> central_rows(std::span<const MemberRegistration> members) {
  std::vector<DerivedGrant> rows;
  for (const auto& m : members) {
    rows.push_back(
        {MatrixRow::kBridgeCentral,
         grant_for(pki::Identity::make(pki::IdentityKind::kBridge, m.rec, m.member, ""),
                   bridge_central_publish(m),
                   Derivation::take(protocol::bridge_central_subscriptions(m.rec, m.member)))});
  }
  Topics engine_publish;
  for (const auto& rule : protocol::bridge_rules()) {
    if (is_in(rule)) {
      engine_publish.push_back(central_side(rule, "+", "+"));
    }
  }
  // Member logs are sealed end to end for the engine, which opens them for log management
  // (SPEC §5): the one flow with two readers.
  Topics engine_subscribe = protocol::ems_engine_subscriptions();
  engine_subscribe.push_back(protocol::member_logs_subscription());
  rows.push_back({MatrixRow::kEmsEngine,
                  grant_for(pki::Identity::make(pki::IdentityKind::kService, "", "", "engine"),
                            std::move(engine_publish), std::move(engine_subscribe))});
  rows.push_back({MatrixRow::kEmsLms,
                  grant_for(pki::Identity::make(pki::IdentityKind::kService, "", "", "lms"), {},
                            protocol::log_management_subscriptions())});
  return rows;
}

}  // namespace

std::string_view to_string(MatrixRow row) {
  switch (row) {
    case MatrixRow::kDevice:
      return "device";
    case MatrixRow::kGateway:
      return "gateway";
    case MatrixRow::kBridgeLocal:
      return "bridge-local";
    case MatrixRow::kBridgeCentral:
      return "bridge-central";
    case MatrixRow::kEmsEngine:
      return "ems-engine";
    case MatrixRow::kEmsLms:
      return "ems-lms";
    case MatrixRow::kEmsSecmgr:
      return "ems-secmgr";
  }
  return "unknown";
}

Grant secmgr_grant(std::string_view secmgr_common_name) {
  return {fmt::format("{}:{}", CaDomain::ems().to_string(), secmgr_common_name),
          {std::string(kGuardControlTopic)},
          {std::string(kGuardResponseTopic)},
          {}};
}

Result<PolicyBundle> derived_bundle(const BrokerId& broker,
                                    std::span<const MemberRegistration> members,
                                    std::uint64_t sequence, std::int64_t issued_at) {
  auto rows = derive_access_matrix(broker, members);
  if (!rows) {
    return rows.status();
  }
  PolicyBundle bundle;
  bundle.broker = broker.to_string();
  bundle.sequence = sequence;
  bundle.issued_at = issued_at;
  for (auto& row : *rows) {
    bundle.grants.push_back(std::move(row.grant));
  }
  return bundle;
}

Result<std::vector<DerivedGrant>> derive_access_matrix(
    const BrokerId& broker, std::span<const MemberRegistration> members) {
  try {
    for (const auto& m : members) {
      require_identifier("REC", m.rec);
      require_identifier("member", m.member);
      require_devices(m);
    }
    std::vector<DerivedGrant> rows;
    if (broker.kind == BrokerId::Kind::kLocal) {
      auto own = std::find_if(members.begin(), members.end(), [&](const auto& m) {
        return m.rec == broker.rec && m.member == broker.member;
      });
      if (own == members.end()) {
        return Status{ErrorCode::kNotFound,
                      fmt::format("member {}/{} is not registered", broker.rec, broker.member)};
      }
      rows = local_rows(*own);
    } else {
      rows = central_rows(members);
    }
    rows.push_back({MatrixRow::kEmsSecmgr, secmgr_grant()});
    return rows;
  } catch (const Derivation::Failure& failure) {
    return failure.status;
  } catch (const Error& e) {
    return Status{e.code(), e.what()};
  }
}

}  // namespace recmesh::policy
