#include "sim/kubernetes_state_secrets.hpp"

#include <random>
#include <string>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

#include "kubelet_volume.hpp"
#include "temp_dir.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kBudget = 4096;  // a Secret of 4 KiB: a few small files, or one part

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 random(seed);
  std::string out(n, '\0');
  for (char& c : out) {
    c = static_cast<char>(random() & 0xffU);
  }
  return out;
}

// What the restore script of the Security Manager's pod leaves in its claim: the packed Secrets
// mounted as the kubelet does at <seed>/0, <seed>/1 ..., the script run on them.
class StateSecretsTest : public ::testing::Test {
 protected:
  fs::path source(const std::string& name, const std::string& content) {
    const fs::path file = tmp_ / "source" / name;
    fs::create_directories(file.parent_path());
    write_file_atomic(file, content, 0600);
    return file;
  }

  // Mounts `secrets` and runs the script; its exit code.
  int restore(const std::vector<StateSecret>& secrets) {
    for (std::size_t i = 0; i < secrets.size(); ++i) {
      const fs::path mount = seed() / std::to_string(i);
      if (!fs::exists(mount)) {
        testing::mount_secret_like_kubelet(mount, secrets[i].data, secrets[i].items);
      }
    }
    fs::create_directories(target());
    const testing::ScriptResult result = testing::run_pod_script(
        restore_state_script("/var/lib/recmesh", "/run/recmesh/secmgr-state", "secmgr.db"),
        {{"/var/lib/recmesh", target().string()}, {"/run/recmesh/secmgr-state", seed().string()}});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.exit_code;
  }

  fs::path seed() const { return tmp_ / "seed"; }
  fs::path target() const { return tmp_ / "claim"; }

  testing::TempDir tmp_;
};

TEST_F(StateSecretsTest, ATreeLargerThanOneSecretCrossesInSeveralAndComesBackWhole) {
  const std::map<std::string, std::string> tree{
      {"secmgr.db", random_bytes(1000, 1)},
      {"pki/pki.db", random_bytes(kBudget * 3, 2)},  // parts of its own
      {"pki/ca/ems/key.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"},
      {"pki/ca/ems/cert.pem", random_bytes(2000, 3)},
      {"pki/bundles/bridge_sun_bob.pem", random_bytes(2500, 4)},
      {"pki/empty", ""}};
  std::map<std::string, fs::path> files;
  for (const auto& [path, content] : tree) {
    files[path] = source(path, content);
  }
  const std::vector<StateSecret> secrets = pack_state_secrets(files, kBudget);
  ASSERT_GE(secrets.size(), 5U);
  std::size_t parts = 0;
  for (const StateSecret& secret : secrets) {
    std::size_t cost = 0;
    for (const auto& [key, content] : secret.data) {
      cost += key.size() + (content.size() + 2) / 3 * 4;
      EXPECT_EQ(secret.items.at(key).find(".."), std::string::npos);
      parts += key.starts_with("pki.pki.db.part-") ? 1U : 0U;
    }
    EXPECT_LE(cost, kBudget);
  }
  EXPECT_GE(parts, 4U);

  ASSERT_EQ(restore(secrets), 0);
  std::size_t restored = 0;
  for (const auto& entry : fs::recursive_directory_iterator(target())) {
    const fs::path relative = entry.path().lexically_relative(target());
    struct stat info {};
    ASSERT_EQ(::lstat(entry.path().c_str(), &info), 0);
    if (entry.is_directory()) {
      EXPECT_EQ(info.st_mode & 07777U, 0700U) << relative;
      continue;
    }
    EXPECT_TRUE(S_ISREG(info.st_mode)) << relative << " is not a plain file";
    EXPECT_EQ(info.st_mode & 07777U, 0600U) << relative;
    ASSERT_TRUE(tree.contains(relative.string())) << relative << " was not shipped";
    EXPECT_EQ(read_file(entry.path()), tree.at(relative.string())) << relative;
    ++restored;
  }
  EXPECT_EQ(restored, tree.size());
}

// Once the claim holds the database it is the manager's own: a restart of the pod runs the
// script again and it must leave everything as it is.
TEST_F(StateSecretsTest, TheClaimIsFilledOnceAndAnInterruptedFillIsDoneAgain) {
  std::map<std::string, fs::path> files{{"secmgr.db", source("secmgr.db", "registry v1")},
                                        {"pki/pki.db", source("pki/pki.db", "certificates v1")}};
  const std::vector<StateSecret> secrets = pack_state_secrets(files, kBudget);

  // Interrupted after the PKI, before the registry: a half-filled stage and a stale PKI.
  fs::create_directories(target() / ".restore" / "pki");
  write_file_atomic(target() / ".restore" / "pki" / "stray", "x", 0600);
  fs::create_directories(target() / "pki");
  write_file_atomic(target() / "pki" / "pki.db", "half", 0600);
  ASSERT_EQ(restore(secrets), 0);
  EXPECT_EQ(read_file(target() / "pki" / "pki.db"), "certificates v1");
  EXPECT_EQ(read_file(target() / "secmgr.db"), "registry v1");
  EXPECT_FALSE(fs::exists(target() / ".restore"));
  EXPECT_FALSE(fs::exists(target() / "pki" / "stray"));

  write_file_atomic(target() / "secmgr.db", "registry v2, registered in the cluster", 0600);
  ASSERT_EQ(restore(secrets), 0);
  EXPECT_EQ(read_file(target() / "secmgr.db"), "registry v2, registered in the cluster");
}

TEST_F(StateSecretsTest, TwoPathsThatWouldShareAKeyAreRefused) {
  const std::map<std::string, fs::path> files{{"a.b/c", source("one", "1")},
                                              {"a/b.c", source("two", "2")}};
  EXPECT_THROW((void)pack_state_secrets(files, kBudget), Error);
}

TEST_F(StateSecretsTest, ABudgetWithNoRoomForContentIsRefused) {
  const std::map<std::string, fs::path> files{{"secmgr.db", source("secmgr.db", "x")}};
  EXPECT_THROW((void)pack_state_secrets(files, 100), Error);
}

}  // namespace
}  // namespace recmesh::sim
