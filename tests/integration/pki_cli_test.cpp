// `recmesh pki` as a user runs it: a process, flags, exit codes, and a directory that a failed
// command leaves exactly as it was.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"

#include "directory_hash.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"

namespace recmesh::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kRejected = 1;
constexpr int kUsage = 2;
constexpr int kFailed = 3;

class PkiCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ok({"pki", "init", "--dir", pki()});
    ok({"pki", "add-rec", "--dir", pki(), "--rec", "r1"});
    ok({"pki", "add-member", "--dir", pki(), "--rec", "r1", "--member", "m1"});
  }

  std::string pki() const { return (dir_ / "pki").string(); }

  CommandResult ok(const std::vector<std::string>& args) {
    CommandResult result = run_recmesh(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result;
  }

  // Runs a command that must fail: a non-zero exit, one clear line on stderr, and the PKI
  // directory byte-for-byte as before.
  void expect_rejected(const std::vector<std::string>& args, int exit_code,
                       const std::string& message_part,
                       std::map<std::string, std::string> env = {}) {
    const std::string before = hash_directory(pki());
    CommandResult result = run_recmesh(args, std::move(env));
    EXPECT_EQ(result.exit_code, exit_code) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_EQ(result.err.rfind("recmesh: error: ", 0), 0U) << result.err;
    EXPECT_NE(result.err.find(message_part), std::string::npos) << result.err;
    EXPECT_EQ(hash_directory(pki()), before) << "directory changed by a failed command";
  }

  TempDir dir_;
};

TEST_F(PkiCliTest, HelpListsEveryCommand) {
  auto top = run_recmesh({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("pki"), std::string::npos);
  EXPECT_NE(top.out.find("broker-config"), std::string::npos);
  auto pki_help = run_recmesh({"pki", "--help"});
  EXPECT_EQ(pki_help.exit_code, 0);
  for (const char* sub : {"init", "add-rec", "add-member", "issue", "revoke", "list", "show",
                          "verify", "crl", "renew"}) {
    EXPECT_NE(pki_help.out.find(sub), std::string::npos) << sub;
  }
  EXPECT_EQ(run_recmesh({"pki"}).exit_code, kUsage);
  EXPECT_EQ(run_recmesh({"no-such-command"}).exit_code, kUsage);
}

TEST_F(PkiCliTest, IssueJsonGivesAbsolutePathsThatExist) {
  auto result = ok({"pki", "issue", "--dir", pki(), "--kind", "device", "--rec", "r1", "--member",
                    "m1", "--name", "pv1", "--json"});
  const json issued = json::parse(result.out);
  for (const char* field : {"cert", "key", "chain", "cafile"}) {
    const fs::path path = issued.at(field).get<std::string>();
    EXPECT_TRUE(path.is_absolute()) << field;
    EXPECT_TRUE(fs::exists(path)) << field;
  }
  EXPECT_EQ(issued.at("common_name"), "rec_r1_m1_pv1");
  struct stat st {};
  ::stat(issued.at("key").get<std::string>().c_str(), &st);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(PkiCliTest, LifecycleOfOneCertificate) {
  auto issued = json::parse(ok({"pki", "issue", "--dir", pki(), "--kind", "gateway", "--rec", "r1",
                                "--member", "m1", "--json"})
                                .out);
  const std::string cert = issued.at("cert");
  ok({"pki", "verify", "--dir", pki(), "--cert", cert});
  auto listed = json::parse(ok({"pki", "list", "--dir", pki(), "--json"}).out);
  EXPECT_EQ(listed.at("authorities").size(), 5U);
  auto shown =
      json::parse(ok({"pki", "show", "--dir", pki(), "--cn", "rec_r1_m1_gateway", "--json"}).out);
  EXPECT_EQ(shown.at("status"), "valid");
  EXPECT_EQ(shown.at("issuer"), "member_r1_m1");

  auto renewed =
      json::parse(ok({"pki", "renew", "--dir", pki(), "--cn", "rec_r1_m1_gateway", "--json"}).out);
  EXPECT_NE(renewed.at("serial"), issued.at("serial"));
  ok({"pki", "verify", "--dir", pki(), "--cert", cert});  // the file now holds the new one

  ok({"pki", "revoke", "--dir", pki(), "--cn", "rec_r1_m1_gateway", "--reason", "key-compromise"});
  auto verdict = run_recmesh({"pki", "verify", "--dir", pki(), "--cert", cert, "--json"});
  EXPECT_EQ(verdict.exit_code, kRejected);
  EXPECT_EQ(json::parse(verdict.out).at("reason"), "certificate revoked");
  auto crl = ok({"pki", "crl", "--dir", pki(), "--print", "member_r1_m1"});
  EXPECT_NE(crl.out.find("BEGIN X509 CRL"), std::string::npos);
  ok({"pki", "crl", "--dir", pki()});
}

TEST_F(PkiCliTest, MalformedIdsAreRejectedWithoutChanges) {
  for (const std::string& bad : std::vector<std::string>{
           "R1", "r_1", "a/b", "..", "a b", std::string(33, 'a'), "", "-lead", "r1\n"}) {
    SCOPED_TRACE(bad);
    expect_rejected({"pki", "add-rec", "--dir", pki(), "--rec", bad}, kUsage, "invalid REC ID");
    expect_rejected({"pki", "add-member", "--dir", pki(), "--rec", "r1", "--member", bad}, kUsage,
                    "invalid member ID");
    expect_rejected({"pki", "issue", "--dir", pki(), "--kind", "device", "--rec", "r1", "--member",
                     "m1", "--name", bad},
                    kUsage, "invalid device ID");
  }
}

TEST_F(PkiCliTest, DuplicatesAreRejectedWithoutChanges) {
  expect_rejected({"pki", "add-rec", "--dir", pki(), "--rec", "r1"}, kFailed, "already exists");
  expect_rejected({"pki", "add-member", "--dir", pki(), "--rec", "r1", "--member", "m1"}, kFailed,
                  "already exists");
  expect_rejected({"pki", "add-member", "--dir", pki(), "--rec", "r9", "--member", "m1"}, kFailed,
                  "not registered");
  ok({"pki", "issue", "--dir", pki(), "--kind", "device", "--rec", "r1", "--member", "m1", "--name",
      "pv1"});
  expect_rejected({"pki", "issue", "--dir", pki(), "--kind", "device", "--rec", "r1", "--member",
                   "m1", "--name", "pv1"},
                  kFailed, "already has a valid certificate");
  expect_rejected({"pki", "init", "--dir", pki()}, kFailed, "not an empty directory");
}

TEST_F(PkiCliTest, IssuingUnderARevokedCaIsRejected) {
  ok({"pki", "revoke", "--dir", pki(), "--rec", "r1", "--member", "m1"});
  expect_rejected({"pki", "issue", "--dir", pki(), "--kind", "device", "--rec", "r1", "--member",
                   "m1", "--name", "pv1"},
                  kFailed, "revoked");
  expect_rejected(
      {"pki", "issue", "--dir", pki(), "--kind", "bridge", "--rec", "r1", "--member", "m1"},
      kFailed, "revoked");
  expect_rejected({"pki", "revoke", "--dir", pki(), "--rec", "r1", "--member", "m1"}, kFailed,
                  "already revoked");
}

TEST_F(PkiCliTest, WrongOrMissingPassphraseIsRejected) {
  const std::vector<std::string> add{"pki", "add-rec", "--dir", pki(), "--rec", "r2"};
  expect_rejected(add, kFailed, "wrong passphrase", {{"RECMESH_PKI_PASSPHRASE", "not it at all"}});
  expect_rejected(add, kFailed, "no passphrase", {{"RECMESH_PKI_PASSPHRASE", ""}});

  const fs::path loose = dir_ / "loose.pass";
  std::ofstream(loose) << kTestPassphrase << "\n";
  ::chmod(loose.c_str(), 0644);
  std::vector<std::string> with_file = add;
  with_file.insert(with_file.end(), {"--passphrase-file", loose.string()});
  expect_rejected(with_file, kFailed, "readable by others", {{"RECMESH_PKI_PASSPHRASE", ""}});

  ::chmod(loose.c_str(), 0600);
  EXPECT_EQ(run_recmesh(with_file, {{"RECMESH_PKI_PASSPHRASE", ""}}).exit_code, 0);
}

TEST_F(PkiCliTest, TruncatedCaFilesAreReportedWithoutChanges) {
  const std::vector<std::string> issue{"pki",   "issue", "--dir",    pki(), "--kind", "device",
                                       "--rec", "r1",    "--member", "m1",  "--name", "pv1"};
  const fs::path key = fs::path(pki()) / "ca" / "member_r1_m1" / "key.pem";
  const std::string key_text = read_file(key);
  write_file_atomic(key, key_text.substr(0, key_text.size() / 2), 0600);
  expect_rejected(issue, kFailed, "key.pem");
  write_file_atomic(key, key_text, 0600);

  const fs::path cert = fs::path(pki()) / "ca" / "member_r1_m1" / "cert.pem";
  const std::string cert_text = read_file(cert);
  write_file_atomic(cert, cert_text.substr(0, cert_text.size() / 2), 0644);
  expect_rejected(issue, kFailed, "cert.pem");
  write_file_atomic(cert, cert_text, 0644);
  ok(issue);
}

TEST_F(PkiCliTest, GarbageFlagsAreRejectedWithoutChanges) {
  const std::vector<std::string> base{"pki",          "issue", "--dir", pki(),      "--kind",
                                      "local-broker", "--rec", "r1",    "--member", "m1"};
  for (const std::string& san : std::vector<std::string>{"localhost", "DNS:", "IP:999.1.1.1",
                                                         "DNS:a,IP:1.1.1.1", "URI:x", "DNS:a b"}) {
    auto args = base;
    args.insert(args.end(), {"--san", san});
    expect_rejected(args, kUsage, "invalid --san");
  }
  expect_rejected({"pki", "issue", "--dir", pki(), "--kind", "toaster"}, kUsage, "unknown kind");
  auto days = base;
  days.insert(days.end(), {"--days", "0"});
  expect_rejected(days, kUsage, "--days");
  expect_rejected({"pki", "revoke", "--dir", pki(), "--cn", "rec_r1_m1_nobody"}, kFailed,
                  "no certificate");
  expect_rejected({"pki", "revoke", "--dir", pki(), "--cn", "x", "--rec", "r1"}, kUsage,
                  "exactly one");
  expect_rejected(
      {"pki", "revoke", "--dir", pki(), "--rec", "r1", "--member", "m1", "--reason", "boredom"},
      kUsage, "unknown revocation reason");
}

TEST_F(PkiCliTest, VerifyRejectsNonCertificates) {
  const fs::path junk = dir_ / "junk.pem";
  std::ofstream(junk) << "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  expect_rejected({"pki", "verify", "--dir", pki(), "--cert", junk.string()}, kFailed,
                  "certificate");
  expect_rejected({"pki", "verify", "--dir", pki(), "--cert", (dir_ / "absent.pem").string()},
                  kFailed, "cannot read");
}

}  // namespace
}  // namespace recmesh::testing
