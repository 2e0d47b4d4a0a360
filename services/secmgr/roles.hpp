#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recmesh::secmgr {

// What a request may do (docs/secmgr.md, "Roles").
enum class Permission {
  kRead,      // registry, certificates, rules and the effective policy
  kRegister,  // add RECs, members, devices, services and brokers
  kIssue,     // issue and renew certificates of registered identities
  kRevoke,    // revoke certificates, members and RECs
  kRules,     // add and remove custom rules, push the policy
  kAudit,     // read the audit log
};
std::string_view to_string(Permission permission);

// The role of an EMS-CA client follows its common name; any other name has no role.
//   ems_operator-<x>  operator  every permission
//   ems_engine        engine    read, register, issue, revoke, rules (failover grants)
//   ems_web           viewer    read
//   ems_lms           auditor   read, audit
enum class Role { kOperator, kEngine, kViewer, kAuditor };
std::string_view to_string(Role role);

std::optional<Role> role_for_common_name(std::string_view common_name);
bool role_allows(Role role, Permission permission);
std::vector<Permission> permissions_of(Role role);

}  // namespace recmesh::secmgr
