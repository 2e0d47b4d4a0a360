#include "record_json.hpp"

#include <ctime>

#include <fmt/format.h>

namespace recmesh::cli {

using nlohmann::json;

std::string format_time(long long unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

json record_to_json(const pki::CertificateRecord& r, bool with_pem) {
  json sans = json::array();
  for (const auto& san : r.sans) {
    sans.push_back(san.to_string());
  }
  json out{{"serial", r.serial},
           {"common_name", r.common_name},
           {"kind", r.kind},
           {"issuer", r.issuer},
           {"rec", r.rec},
           {"member", r.member},
           {"name", r.name},
           {"sans", sans},
           {"not_before", format_time(r.not_before)},
           {"not_after", format_time(r.not_after)},
           {"status", to_string(r.status)}};
  if (r.revoked_at) {
    out["revoked_at"] = format_time(*r.revoked_at);
  }
  if (r.reason) {
    out["reason"] = to_string(*r.reason);
  }
  if (r.superseded_by) {
    out["superseded_by"] = *r.superseded_by;
  }
  if (with_pem) {
    out["pem"] = r.pem;
  }
  return out;
}

json authority_to_json(const pki::AuthorityRecord& a) {
  return {{"id", a.id},
          {"kind", to_string(a.kind)},
          {"parent", a.parent},
          {"common_name", a.common_name},
          {"serial", a.serial},
          {"fingerprint_sha256", a.fingerprint},
          {"crl_number", a.crl_number},
          {"not_after", format_time(a.not_after)},
          {"revoked", a.revoked}};
}

json files_to_json(const pki::IssuedFiles& files) {
  json out{{"cert", files.cert.string()},
           {"chain", files.chain.string()},
           {"cafile", files.cafile.string()}};
  out["key"] = files.key.empty() ? json(nullptr) : json(files.key.string());
  return out;
}

json issued_to_json(const pki::IssuedCertificate& issued) {
  json out = files_to_json(issued.files);
  out["common_name"] = issued.record.common_name;
  out["serial"] = issued.record.serial;
  out["kind"] = issued.record.kind;
  out["issuer"] = issued.record.issuer;
  out["not_before"] = format_time(issued.record.not_before);
  out["not_after"] = format_time(issued.record.not_after);
  return out;
}

}  // namespace recmesh::cli
