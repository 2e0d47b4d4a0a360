#include "recmesh/pki/subject_alt_name.hpp"

#include <arpa/inet.h>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::pki {
namespace {

constexpr std::size_t kMaxDnsName = 253;
constexpr std::size_t kMaxDnsLabel = 63;

bool is_valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxDnsName) {
    return false;
  }
  std::size_t label_start = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      std::string_view label = name.substr(label_start, i - label_start);
      if (label.empty() || label.size() > kMaxDnsLabel || label.front() == '-' ||
          label.back() == '-') {
        return false;
      }
      label_start = i + 1;
      continue;
    }
    const auto c = static_cast<unsigned char>(name[i]);
    if (std::isalnum(c) == 0 && c != '-') {
      return false;
    }
  }
  return true;
}

[[noreturn]] void reject(std::string_view text, std::string_view why) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("invalid --san {}: {}", quote_untrusted(text), why));
}

}  // namespace

SubjectAltName SubjectAltName::parse(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    reject(text, "expected DNS:<hostname> or IP:<address>");
  }
  const std::string_view type = text.substr(0, colon);
  const std::string_view value = text.substr(colon + 1);
  if (type == "DNS") {
    if (!is_valid_dns_name(value)) {
      reject(text, "not a valid DNS host name");
    }
    std::string lower(value);
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return {Type::kDns, lower};
  }
  if (type == "IP") {
    const std::string address(value);
    std::array<unsigned char, 16> bytes{};
    std::array<char, INET6_ADDRSTRLEN> printed{};
    const int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
    if (address.empty() || ::inet_pton(family, address.c_str(), bytes.data()) != 1 ||
        ::inet_ntop(family, bytes.data(), printed.data(), printed.size()) == nullptr) {
      reject(text, "not a valid IPv4 or IPv6 address");
    }
    return {Type::kIp, std::string(printed.data())};
  }
  reject(text, "only DNS: and IP: entries are supported");
}

std::string SubjectAltName::to_string() const {
  return fmt::format("{}:{}", type == Type::kDns ? "DNS" : "IP", value);
}

std::string join_subject_alt_names(const std::vector<SubjectAltName>& sans) {
  std::string out;
  for (const auto& san : sans) {
    if (!out.empty()) {
      out += ',';
    }
    out += san.to_string();
  }
  return out;
}

std::vector<SubjectAltName> split_subject_alt_names(std::string_view joined) {
  std::vector<SubjectAltName> out;
  while (!joined.empty()) {
    const std::size_t comma = joined.find(',');
    out.push_back(SubjectAltName::parse(joined.substr(0, comma)));
    if (comma == std::string_view::npos) {
      break;
    }
    joined.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace recmesh::pki
