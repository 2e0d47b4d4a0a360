#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace recmesh::testing {

struct ForgedCertificate {
  std::filesystem::path cert;
  std::filesystem::path key;
};

// A client certificate with common name `cn`, signed with the CA key in `ca_dir` (cert.pem and
// key.pem, as the PKI lays them out) by openssl rather than the PKI, so no naming rule applies:
// what the operator of that CA can make for any name (mosquitto#2423). Files go to `out_dir`.
ForgedCertificate forge_client_certificate(const std::filesystem::path& ca_dir,
                                           std::string_view passphrase, const std::string& cn,
                                           const std::filesystem::path& out_dir);

}  // namespace recmesh::testing
