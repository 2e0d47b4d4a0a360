#include "secmgr/roles.hpp"

#include <array>

#include "recmesh/core/identifier.hpp"

namespace recmesh::secmgr {
namespace {

constexpr std::string_view kOperatorPrefix = "ems_operator-";

constexpr std::array kAllPermissions{Permission::kRead,  Permission::kRegister,
                                     Permission::kIssue, Permission::kRevoke,
                                     Permission::kRules, Permission::kAudit};

}  // namespace

std::string_view to_string(Permission permission) {
  switch (permission) {
    case Permission::kRead:
      return "read";
    case Permission::kRegister:
      return "register";
    case Permission::kIssue:
      return "issue";
    case Permission::kRevoke:
      return "revoke";
    case Permission::kRules:
      return "rules";
    case Permission::kAudit:
      return "audit";
  }
  return "unknown";
}

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kOperator:
      return "operator";
    case Role::kEngine:
      return "engine";
    case Role::kViewer:
      return "viewer";
    case Role::kAuditor:
      return "auditor";
  }
  return "unknown";
}

std::optional<Role> role_for_common_name(std::string_view common_name) {
  // ems_operator-<name>: the service ID after ems_ must be valid and name someone.
  if (common_name.starts_with(kOperatorPrefix) && common_name.size() > kOperatorPrefix.size() &&
      is_valid_identifier(common_name.substr(std::string_view("ems_").size()))) {
    return Role::kOperator;
  }
  if (common_name == "ems_engine") {
    return Role::kEngine;
  }
  if (common_name == "ems_web") {
    return Role::kViewer;
  }
  if (common_name == "ems_lms") {
    return Role::kAuditor;
  }
  return std::nullopt;
}

bool role_allows(Role role, Permission permission) {
  switch (role) {
    case Role::kOperator:
      return true;
    case Role::kEngine:
      return permission != Permission::kAudit;
    case Role::kViewer:
      return permission == Permission::kRead;
    case Role::kAuditor:
      return permission == Permission::kRead || permission == Permission::kAudit;
  }
  return false;
}

std::vector<Permission> permissions_of(Role role) {
  std::vector<Permission> out;
  for (Permission permission : kAllPermissions) {
    if (role_allows(role, permission)) {
      out.push_back(permission);
    }
  }
  return out;
}

}  // namespace recmesh::secmgr
