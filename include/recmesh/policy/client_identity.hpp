#pragma once

#include <string>
#include <string_view>

#include "recmesh/core/result.hpp"
#include "recmesh/pki/identity.hpp"

namespace recmesh::policy {

// The part of the PKI that may issue client certificates (SPEC §6): the EMS CA, the Bridge CA
// or one member's CA. The root and REC CAs issue only CAs and never identify a client.
enum class DomainKind { kEms, kBridge, kMember };

struct CaDomain {
  DomainKind kind = DomainKind::kEms;
  std::string rec;     // kMember only
  std::string member;  // kMember only

  static CaDomain ems() { return {DomainKind::kEms, {}, {}}; }
  static CaDomain bridge() { return {DomainKind::kBridge, {}, {}}; }
  // Throws Error(kInvalidArgument) for invalid IDs.
  static CaDomain of_member(std::string rec, std::string member);

  // `ems`, `bridge` or `member/<rec>/<member>`.
  std::string to_string() const;
  bool operator==(const CaDomain&) const = default;
};

// Inverse of CaDomain::to_string(); kInvalidArgument for anything else.
Result<CaDomain> parse_ca_domain(std::string_view text);

// Who a client is: the domain of the CA that issued its certificate and the certificate's CN.
// Two certificates with the same CN from different CAs are different identities.
struct ClientIdentity {
  CaDomain domain;
  std::string common_name;

  // `<domain>:<cn>`, e.g. `member/r1/m1:rec_r1_m1_pv1`: the key of every policy decision, and
  // the MQTT username recmesh-guard gives the connection.
  std::string key() const;
  bool operator==(const ClientIdentity&) const = default;
};

// Refuses (kPermissionDenied, naming both) a CN outside the domain: a member CA issues only
// `rec_<rec>_<member>_<device>` of its own member, the Bridge CA only `bridge_<rec>_<member>`,
// the EMS CA only `ems_<service>` (not the central broker's server name `ems_broker`).
Result<ClientIdentity> make_client_identity(const CaDomain& domain, std::string_view common_name);

// Inverse of ClientIdentity::key(), with the same domain check.
Result<ClientIdentity> parse_identity_key(std::string_view key);

// The identity a certificate issued by the PKI for `identity` carries.
ClientIdentity client_identity_of(const pki::Identity& identity);

// Upper-case hex of a certificate serial, as the PKI prints it (BN_bn2hex), without leading
// zeros; kInvalidArgument for anything but hex digits.
Result<std::string> normalise_serial(std::string_view serial);

}  // namespace recmesh::policy
