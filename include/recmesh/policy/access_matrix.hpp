#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/result.hpp"
#include "recmesh/policy/policy_bundle.hpp"

namespace recmesh::policy {

// The most devices one member may register (its gateway not counted). The member's grants grow
// with its devices, five topics each in its gateway's subscriptions, and a grant's list holds at
// most kMaxTopicsPerGrant: the Security Manager refuses the device past this bound when it is
// registered, and the derivation refuses a registration past it.
inline constexpr std::size_t kMaxDevicesPerMember = 1000;

// A member the Security Manager knows, with every device it registered (not the gateway).
struct MemberRegistration {
  std::string rec;
  std::string member;
  std::vector<std::string> devices;
};

// The rows of SPEC §6's matrix.
enum class MatrixRow {
  kDevice,         // rec_r_m_d on the local broker
  kGateway,        // rec_r_m_gateway on the local broker
  kBridgeLocal,    // bridge_r_m on the local broker
  kBridgeCentral,  // bridge_r_m on the central broker
  kEmsEngine,      // ems_engine on the central broker
  kEmsLms,         // ems_lms on the central broker
  kEmsSecmgr,      // ems_secmgr on every broker
};
std::string_view to_string(MatrixRow row);

struct DerivedGrant {
  MatrixRow row = MatrixRow::kDevice;
  Grant grant;  // no quota: the bundle's default applies
};

// Least-privilege rules of every identity `broker` serves, derived from the topic conventions
// (SPEC §4) and the bridge mapping (§4.5): each channel has one producer (W) and one consumer
// (R), and every device-scoped flow is listed per registered device instead of `+`, except
// the local bridge's reads: its `/device/+/…` subscriptions stay granted on its member's broker
// when the member has no device yet, and carry devices registered later.
// A local broker uses its own member's registration only (kNotFound when it is missing); the
// central broker gets every member's bridge and the EMS services' rows over all members.
// kInvalidArgument for invalid IDs, the reserved device ID `gateway`, or a member with more than
// kMaxDevicesPerMember devices.
Result<std::vector<DerivedGrant>> derive_access_matrix(const BrokerId& broker,
                                                       std::span<const MemberRegistration> members);

// The derived rows of `broker` as a whole bundle (no custom rules, no revocations, the default
// quota unlimited): what a Security Manager with nothing but registrations would push.
Result<PolicyBundle> derived_bundle(const BrokerId& broker,
                                    std::span<const MemberRegistration> members,
                                    std::uint64_t sequence, std::int64_t issued_at);

// The Security Manager's own channel on every broker (the last row of the matrix): what a
// broker grants `ems_secmgr` before any bundle, so that the first one can arrive.
Grant secmgr_grant(std::string_view secmgr_common_name = "ems_secmgr");

}  // namespace recmesh::policy
