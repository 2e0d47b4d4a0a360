// `openssl verify -crl_check_all`, an independent judge, must agree with `recmesh pki verify`.
#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/pki/pki.hpp"

#include "recmesh_cli.hpp"
#include "temp_dir.hpp"

namespace recmesh::testing {
namespace {

namespace fs = std::filesystem;
using pki::IdentityKind;
using pki::IssueRequest;

IssueRequest request(IdentityKind kind, std::string rec, std::string member, std::string name) {
  IssueRequest r;
  r.identity = pki::Identity::make(kind, std::move(rec), std::move(member), std::move(name));
  return r;
}

class OpensslVerifyAgreementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.emplace(pki::Pki::create(dir_ / "pki", Secret(kTestPassphrase)));
    pki_->add_rec("r1");
    pki_->add_member("r1", "m1");
    pki_->add_member("r1", "m2");
  }

  // Bundles the judge reads: the root as the only trust anchor, every intermediate as
  // untrusted, every CRL.
  void write_judge_inputs() {
    std::string intermediates;
    std::string crls;
    for (const auto& authority : pki_->authorities()) {
      if (!authority.parent.empty()) {
        intermediates += read_file(pki_->authority_cert_path(authority.id));
      }
      crls += read_file(pki_->authority_crl_path(authority.id));
    }
    write_file_atomic(dir_ / "intermediates.pem", intermediates, 0644);
    write_file_atomic(dir_ / "crls.pem", crls, 0644);
  }

  int openssl_verdict(const fs::path& cert) {
    auto result = run_command({"openssl", "verify", "-crl_check_all", "-CAfile",
                               pki_->authority_cert_path("root").string(), "-untrusted",
                               (dir_ / "intermediates.pem").string(), "-CRLfile",
                               (dir_ / "crls.pem").string(), cert.string()});
    return result.exit_code;
  }

  int recmesh_verdict(const fs::path& cert) {
    return run_recmesh(
               {"pki", "verify", "--dir", pki_->directory().string(), "--cert", cert.string()})
        .exit_code;
  }

  TempDir dir_;
  std::optional<pki::Pki> pki_;
};

TEST_F(OpensslVerifyAgreementTest, BothJudgesAgreeOnEveryCase) {
  const auto now = std::chrono::system_clock::now();
  auto valid = pki_->issue(request(IdentityKind::kDevice, "r1", "m1", "valid"));
  auto revoked = pki_->issue(request(IdentityKind::kDevice, "r1", "m1", "revoked"));
  IssueRequest expired_request = request(IdentityKind::kDevice, "r1", "m1", "expired");
  expired_request.not_before = now - std::chrono::hours(24 * 30);
  expired_request.days = 2;
  auto expired = pki_->issue(expired_request);
  IssueRequest future_request = request(IdentityKind::kDevice, "r1", "m1", "future");
  future_request.not_before = now + std::chrono::hours(24 * 30);
  auto future = pki_->issue(future_request);
  auto member_gone = pki_->issue(request(IdentityKind::kDevice, "r1", "m2", "pv1"));
  auto bridge_gone = pki_->issue(request(IdentityKind::kBridge, "r1", "m2", ""));
  auto service = pki_->issue(request(IdentityKind::kService, "", "", "engine"));
  auto superseded = pki_->issue(request(IdentityKind::kDevice, "r1", "m1", "renewed"));
  const std::string superseded_pem = read_file(superseded.files.cert);
  write_file_atomic(dir_ / "superseded.pem", superseded_pem, 0644);

  // A certificate from another PKI whose names look right.
  auto foreign_pki = pki::Pki::create(dir_ / "foreign", Secret(kTestPassphrase));
  foreign_pki.add_rec("r1");
  foreign_pki.add_member("r1", "m1");
  auto foreign = foreign_pki.issue(request(IdentityKind::kDevice, "r1", "m1", "valid"));

  pki_->revoke(pki::RevocationTarget::certificate("rec_r1_m1_revoked"));
  pki_->revoke(pki::RevocationTarget::whole_member("r1", "m2"));
  pki_->renew("rec_r1_m1_renewed");
  write_judge_inputs();

  struct Case {
    const char* name;
    fs::path cert;
    bool expect_valid;
  };
  const std::vector<Case> cases{
      {"valid device", valid.files.cert, true},
      {"valid service", service.files.cert, true},
      {"renewed device", superseded.files.cert, true},
      {"revoked device", revoked.files.cert, false},
      {"expired", expired.files.cert, false},
      {"not yet valid", future.files.cert, false},
      {"device of revoked member", member_gone.files.cert, false},
      {"bridge of revoked member", bridge_gone.files.cert, false},
      {"superseded by renewal", dir_ / "superseded.pem", false},
      {"wrong CA", foreign.files.cert, false},
      {"member CA", pki_->authority_cert_path("member_r1_m1"), true},
      {"revoked member CA", pki_->authority_cert_path("member_r1_m2"), false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const int judge = openssl_verdict(c.cert);
    const int ours = recmesh_verdict(c.cert);
    EXPECT_EQ(judge == 0, c.expect_valid) << "openssl exit " << judge;
    EXPECT_EQ(ours == 0, c.expect_valid) << "recmesh exit " << ours;
    if (!c.expect_valid) {
      EXPECT_EQ(ours, 1) << "an invalid certificate is a verdict (exit 1), not an error";
    }
  }
}

}  // namespace
}  // namespace recmesh::testing
