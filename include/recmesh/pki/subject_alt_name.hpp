#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace recmesh::pki {

// One subjectAltName entry of a broker or client certificate: `DNS:name` or `IP:address`.
struct SubjectAltName {
  enum class Type { kDns, kIp };
  Type type = Type::kDns;
  std::string value;  // canonical: lower-case DNS name, or the address as inet_ntop prints it

  // Throws Error(kInvalidArgument) for anything but DNS:<hostname> or IP:<IPv4|IPv6>.
  static SubjectAltName parse(std::string_view text);
  std::string to_string() const;  // "DNS:x" / "IP:y"
  bool operator==(const SubjectAltName&) const = default;
};

// Comma-separated list as stored in the PKI database ("" for none).
std::string join_subject_alt_names(const std::vector<SubjectAltName>& sans);
std::vector<SubjectAltName> split_subject_alt_names(std::string_view joined);

}  // namespace recmesh::pki
