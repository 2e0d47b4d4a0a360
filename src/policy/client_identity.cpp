#include "recmesh/policy/client_identity.hpp"

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::policy {
namespace {

constexpr std::string_view kEmsDomain = "ems";
constexpr std::string_view kBridgeDomain = "bridge";
constexpr std::string_view kMemberDomain = "member/";
constexpr std::size_t kMaxSerialDigits = 40;  // 20 bytes (RFC 5280 §4.1.2.2)

Status refused(std::string_view cn, const CaDomain& domain, std::string_view why) {
  return {ErrorCode::kPermissionDenied,
          fmt::format("common name {} is outside the domain of CA {}: {}", quote_untrusted(cn),
                      domain.to_string(), why)};
}

}  // namespace

CaDomain CaDomain::of_member(std::string rec, std::string member) {
  require_identifier("REC", rec);
  require_identifier("member", member);
  return {DomainKind::kMember, std::move(rec), std::move(member)};
}

std::string CaDomain::to_string() const {
  switch (kind) {
    case DomainKind::kEms:
      return std::string(kEmsDomain);
    case DomainKind::kBridge:
      return std::string(kBridgeDomain);
    case DomainKind::kMember:
      return fmt::format("{}{}/{}", kMemberDomain, rec, member);
  }
  return {};
}

Result<CaDomain> parse_ca_domain(std::string_view text) {
  if (text == kEmsDomain) {
    return CaDomain::ems();
  }
  if (text == kBridgeDomain) {
    return CaDomain::bridge();
  }
  if (text.starts_with(kMemberDomain)) {
    const std::string_view rest = text.substr(kMemberDomain.size());
    const std::size_t slash = rest.find('/');
    if (slash != std::string_view::npos && is_valid_identifier(rest.substr(0, slash)) &&
        is_valid_identifier(rest.substr(slash + 1))) {
      return CaDomain{DomainKind::kMember, std::string(rest.substr(0, slash)),
                      std::string(rest.substr(slash + 1))};
    }
  }
  return Status{ErrorCode::kInvalidArgument,
                fmt::format("CA domain {} is not ems, bridge or member/<rec>/<member>",
                            quote_untrusted(text))};
}

std::string ClientIdentity::key() const {
  return fmt::format("{}:{}", domain.to_string(), common_name);
}

Result<ClientIdentity> make_client_identity(const CaDomain& domain, std::string_view common_name) {
  const auto parsed = pki::parse_common_name(common_name);
  if (!parsed) {
    return refused(common_name, domain, "not a recmesh common name");
  }
  using pki::IdentityKind;
  switch (domain.kind) {
    case DomainKind::kMember:
      if (parsed->kind != IdentityKind::kDevice && parsed->kind != IdentityKind::kGateway) {
        return refused(common_name, domain, "a member CA issues only device and gateway names");
      }
      if (parsed->rec != domain.rec || parsed->member != domain.member) {
        return refused(common_name, domain, "the name belongs to another member");
      }
      break;
    case DomainKind::kBridge:
      if (parsed->kind != IdentityKind::kBridge) {
        return refused(common_name, domain, "the Bridge CA issues only bridge_<rec>_<member>");
      }
      break;
    case DomainKind::kEms:
      if (parsed->kind != IdentityKind::kService) {
        return refused(common_name, domain, "the EMS CA identifies only ems_<service> clients");
      }
      break;
  }
  return ClientIdentity{domain, std::string(common_name)};
}

Result<ClientIdentity> parse_identity_key(std::string_view key) {
  const std::size_t colon = key.rfind(':');
  if (colon == std::string_view::npos) {
    return Status{ErrorCode::kInvalidArgument,
                  fmt::format("identity {} is not <domain>:<common name>", quote_untrusted(key))};
  }
  auto domain = parse_ca_domain(key.substr(0, colon));
  if (!domain) {
    return domain.status();
  }
  auto identity = make_client_identity(*domain, key.substr(colon + 1));
  if (!identity) {
    return Status{ErrorCode::kInvalidArgument, identity.status().message};
  }
  return identity;
}

ClientIdentity client_identity_of(const pki::Identity& identity) {
  switch (identity.kind) {
    case pki::IdentityKind::kDevice:
    case pki::IdentityKind::kGateway:
    case pki::IdentityKind::kLocalBroker:
      return {CaDomain::of_member(identity.rec, identity.member), identity.common_name()};
    case pki::IdentityKind::kBridge:
      return {CaDomain::bridge(), identity.common_name()};
    case pki::IdentityKind::kCentralBroker:
    case pki::IdentityKind::kService:
      return {CaDomain::ems(), identity.common_name()};
  }
  return {CaDomain::ems(), identity.common_name()};
}

Result<std::string> normalise_serial(std::string_view serial) {
  std::string out;
  for (char c : serial) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) {
      out.clear();
      break;
    }
    if (out.empty() && c == '0') {
      continue;
    }
    out += static_cast<char>(c >= 'a' ? c - 'a' + 'A' : c);
  }
  if (serial.empty() || serial.size() > kMaxSerialDigits ||
      (out.empty() && serial.find_first_not_of('0') != std::string_view::npos)) {
    return Status{ErrorCode::kInvalidArgument,
                  fmt::format("serial {} is not 1..{} hex digits", quote_untrusted(serial),
                              kMaxSerialDigits)};
  }
  return out.empty() ? std::string("0") : out;
}

}  // namespace recmesh::policy
