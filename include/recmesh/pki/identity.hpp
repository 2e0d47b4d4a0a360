#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace recmesh::pki {

// What a leaf certificate is for; decides its common name, issuing CA and EKU (SPEC §3).
enum class IdentityKind { kDevice, kGateway, kLocalBroker, kCentralBroker, kBridge, kService };

std::string_view to_string(IdentityKind kind);
// Throws Error(kInvalidArgument) listing the accepted kinds.
IdentityKind parse_identity_kind(std::string_view text);

// The CA that issues an identity: a member CA, the Bridge CA or the EMS CA.
enum class AuthorityKind { kRoot, kEms, kBridge, kRec, kMember };
std::string_view to_string(AuthorityKind kind);

struct Identity {
  IdentityKind kind = IdentityKind::kDevice;
  std::string rec;     // device, gateway, local-broker, bridge
  std::string member;  // device, gateway, local-broker, bridge
  std::string name;    // device ID, or service name ("broker" for the central broker)

  // Validates IDs and which fields the kind needs; throws Error(kInvalidArgument).
  static Identity make(IdentityKind kind, std::string rec, std::string member, std::string name);

  // rec_<rec>_<member>_<device>, broker_<rec>_<member>, bridge_<rec>_<member>, ems_<service>.
  std::string common_name() const;
  bool is_server() const;
  bool operator==(const Identity&) const = default;
};

// Inverse of common_name() for the four prefixes; std::nullopt for anything else.
// `ems_broker` parses as the central broker, other `ems_*` as services.
std::optional<Identity> parse_common_name(std::string_view cn);

// Directory and database ID of a CA: root, ems, bridge, rec_<rec>, member_<rec>_<member>.
std::string authority_id(AuthorityKind kind, std::string_view rec = {},
                         std::string_view member = {});
// The CA that issues `identity`.
std::string issuing_authority_id(const Identity& identity);

}  // namespace recmesh::pki
