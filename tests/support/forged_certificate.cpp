#include "forged_certificate.hpp"

#include <stdexcept>
#include <vector>

#include "recmesh/core/file_io.hpp"

#include "child_process.hpp"

namespace recmesh::testing {
namespace {

void run_ok(const std::vector<std::string>& argv) {
  const CommandResult result = run_command(argv);
  if (result.exit_code != 0) {
    throw std::runtime_error(argv.front() + " failed: " + result.err);
  }
}

}  // namespace

ForgedCertificate forge_client_certificate(const std::filesystem::path& ca_dir,
                                           std::string_view passphrase, const std::string& cn,
                                           const std::filesystem::path& out_dir) {
  std::filesystem::create_directories(out_dir);
  const std::filesystem::path pass = out_dir / "pass";
  write_file_atomic(pass, std::string(passphrase), 0600);
  write_file_atomic(out_dir / "ext", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
                    0644);
  run_ok({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-subj", "/O=recmesh/CN=" + cn, "-keyout", (out_dir / "key.pem").string(),
          "-out", (out_dir / "csr.pem").string()});
  run_ok({"openssl", "x509", "-req", "-in", (out_dir / "csr.pem").string(), "-CA",
          (ca_dir / "cert.pem").string(), "-CAkey", (ca_dir / "key.pem").string(), "-passin",
          "file:" + pass.native(), "-set_serial", "4242", "-days", "2", "-extfile",
          (out_dir / "ext").string(), "-out", (out_dir / "cert.pem").string()});
  return {out_dir / "cert.pem", out_dir / "key.pem"};
}

}  // namespace recmesh::testing
