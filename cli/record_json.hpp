#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "recmesh/pki/records.hpp"

namespace recmesh::cli {

// ISO 8601 UTC ("2026-11-22T10:00:00Z") of Unix seconds.
std::string format_time(long long unix_seconds);

nlohmann::json record_to_json(const pki::CertificateRecord& record, bool with_pem);
nlohmann::json authority_to_json(const pki::AuthorityRecord& authority);
nlohmann::json files_to_json(const pki::IssuedFiles& files);
// {cert, key, chain, cafile, common_name, serial, kind, issuer, not_before, not_after}
nlohmann::json issued_to_json(const pki::IssuedCertificate& issued);

}  // namespace recmesh::cli
