#include "recmesh/pki/identity.hpp"

#include <array>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::pki {
namespace {

constexpr std::array<std::pair<IdentityKind, std::string_view>, 6> kKindNames{{
    {IdentityKind::kDevice, "device"},
    {IdentityKind::kGateway, "gateway"},
    {IdentityKind::kLocalBroker, "local-broker"},
    {IdentityKind::kCentralBroker, "central-broker"},
    {IdentityKind::kBridge, "bridge"},
    {IdentityKind::kService, "service"},
}};

constexpr std::string_view kGatewayDevice = "gateway";
constexpr std::string_view kCentralBrokerService = "broker";

bool is_member_scoped(IdentityKind kind) {
  return kind == IdentityKind::kDevice || kind == IdentityKind::kGateway ||
         kind == IdentityKind::kLocalBroker || kind == IdentityKind::kBridge;
}

void require_empty(std::string_view field, std::string_view value, IdentityKind kind) {
  if (!value.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("--{} does not apply to kind {}", field, to_string(kind)));
  }
}

}  // namespace

std::string_view to_string(IdentityKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) {
      return name;
    }
  }
  return "unknown";
}

IdentityKind parse_identity_kind(std::string_view text) {
  for (const auto& [kind, name] : kKindNames) {
    if (name == text) {
      return kind;
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown kind {} (expected device, gateway, local-broker, "
                          "central-broker, bridge or service)",
                          quote_untrusted(text)));
}

std::string_view to_string(AuthorityKind kind) {
  switch (kind) {
    case AuthorityKind::kRoot:
      return "root";
    case AuthorityKind::kEms:
      return "ems";
    case AuthorityKind::kBridge:
      return "bridge";
    case AuthorityKind::kRec:
      return "rec";
    case AuthorityKind::kMember:
      return "member";
  }
  return "unknown";
}

Identity Identity::make(IdentityKind kind, std::string rec, std::string member, std::string name) {
  if (is_member_scoped(kind)) {
    require_identifier("REC", rec);
    require_identifier("member", member);
  } else {
    require_empty("rec", rec, kind);
    require_empty("member", member, kind);
  }
  switch (kind) {
    case IdentityKind::kDevice:
      require_identifier("device", name);
      if (name == kGatewayDevice) {
        throw Error(ErrorCode::kInvalidArgument,
                    "device ID \"gateway\" is reserved for the smart gateway (use --kind gateway)");
      }
      break;
    case IdentityKind::kGateway:
      if (!name.empty() && name != kGatewayDevice) {
        throw Error(ErrorCode::kInvalidArgument, "a gateway's name is always \"gateway\"");
      }
      name = kGatewayDevice;
      break;
    case IdentityKind::kLocalBroker:
    case IdentityKind::kBridge:
      require_empty("name", name, kind);
      break;
    case IdentityKind::kCentralBroker:
      if (name.empty()) {
        name = kCentralBrokerService;
      }
      require_identifier("service", name);
      break;
    case IdentityKind::kService:
      require_identifier("service", name);
      if (name == kCentralBrokerService) {
        throw Error(ErrorCode::kInvalidArgument,
                    "service name \"broker\" is reserved for the central broker (use --kind "
                    "central-broker)");
      }
      break;
  }
  return Identity{kind, std::move(rec), std::move(member), std::move(name)};
}

std::string Identity::common_name() const {
  switch (kind) {
    case IdentityKind::kDevice:
    case IdentityKind::kGateway:
      return fmt::format("rec_{}_{}_{}", rec, member, name);
    case IdentityKind::kLocalBroker:
      return fmt::format("broker_{}_{}", rec, member);
    case IdentityKind::kBridge:
      return fmt::format("bridge_{}_{}", rec, member);
    case IdentityKind::kCentralBroker:
    case IdentityKind::kService:
      return fmt::format("ems_{}", name);
  }
  return {};
}

bool Identity::is_server() const {
  return kind == IdentityKind::kLocalBroker || kind == IdentityKind::kCentralBroker;
}

std::optional<Identity> parse_common_name(std::string_view cn) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = cn.find('_', start);
    parts.emplace_back(cn.substr(start, pos - start));
    if (pos == std::string_view::npos) {
      break;
    }
    start = pos + 1;
  }
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (!is_valid_identifier(parts[i])) {
      return std::nullopt;
    }
  }
  const std::string& prefix = parts.front();
  if (prefix == "rec" && parts.size() == 4) {
    return Identity{parts[3] == kGatewayDevice ? IdentityKind::kGateway : IdentityKind::kDevice,
                    parts[1], parts[2], parts[3]};
  }
  if (prefix == "broker" && parts.size() == 3) {
    return Identity{IdentityKind::kLocalBroker, parts[1], parts[2], {}};
  }
  if (prefix == "bridge" && parts.size() == 3) {
    return Identity{IdentityKind::kBridge, parts[1], parts[2], {}};
  }
  if (prefix == "ems" && parts.size() == 2) {
    return Identity{
        parts[1] == kCentralBrokerService ? IdentityKind::kCentralBroker : IdentityKind::kService,
        {},
        {},
        parts[1]};
  }
  return std::nullopt;
}

std::string authority_id(AuthorityKind kind, std::string_view rec, std::string_view member) {
  switch (kind) {
    case AuthorityKind::kRoot:
      return "root";
    case AuthorityKind::kEms:
      return "ems";
    case AuthorityKind::kBridge:
      return "bridge";
    case AuthorityKind::kRec:
      return fmt::format("rec_{}", rec);
    case AuthorityKind::kMember:
      return fmt::format("member_{}_{}", rec, member);
  }
  return {};
}

std::string issuing_authority_id(const Identity& identity) {
  switch (identity.kind) {
    case IdentityKind::kDevice:
    case IdentityKind::kGateway:
    case IdentityKind::kLocalBroker:
      return authority_id(AuthorityKind::kMember, identity.rec, identity.member);
    case IdentityKind::kBridge:
      return authority_id(AuthorityKind::kBridge);
    case IdentityKind::kCentralBroker:
    case IdentityKind::kService:
      return authority_id(AuthorityKind::kEms);
  }
  return {};
}

}  // namespace recmesh::pki
