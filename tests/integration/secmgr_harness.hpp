#pragma once

// A real Security Manager for integration tests: a fresh PKI, `recmesh secmgr` as a process on
// a free port, and API clients with certificates issued by that PKI.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/file_io.hpp"

#include "child_process.hpp"
#include "recmesh_cli.hpp"
#include "secmgr/api_client.hpp"
#include "temp_dir.hpp"

namespace recmesh::testing {

class SecmgrHarness {
 public:
  // Creates the PKI and an operator certificate (ems_operator-alice); `extra_config` is
  // appended to the generated configuration.
  explicit SecmgrHarness(const std::string& extra_config = {}) {
    namespace fs = std::filesystem;
    expect_ok({"pki", "init", "--dir", pki()});
    issue_service("operator-alice");
    write_file_atomic(dir_ / "passphrase", kTestPassphrase, 0600);
    config_ = dir_ / "secmgr.yaml";
    write_file_atomic(
        config_,
        "pki:\n  dir: " + pki() + "\n  passphrase_file: " + (dir_ / "passphrase").string() +
            "\ndatabase: " + (dir_ / "secmgr.db").string() + "\napi:\n  port: 0\n  port_file: " +
            (dir_ / "port").string() + "\nlogging:\n  format: json\n" + extra_config,
        0644);
  }

  ~SecmgrHarness() { stop(); }

  // Starts the process and waits for its port file.
  void start() {
    std::filesystem::remove(dir_ / "port");
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{recmesh_binary(), "secmgr", "--config", config_.string()},
        dir_ / "secmgr.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(dir_ / "port")) {
      ASSERT_TRUE(process_->running()) << "secmgr exited:\n" << log();
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no port file:\n" << log();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    port_ = std::stoi(read_file(dir_ / "port"));
  }

  void stop() {
    if (process_) {
      process_->stop();
      process_.reset();
    }
  }

  std::string log() const {
    std::ifstream in(dir_ / "secmgr.log");
    std::ostringstream text;
    text << in.rdbuf();  // through rdbuf: GCC 12 -O3 warns falsely on istreambuf_iterator
    return text.str();
  }

  std::string pki() const { return (dir_ / "pki").string(); }
  const TempDir& dir() const { return dir_; }
  int port() const { return port_; }
  ChildProcess& process() { return *process_; }

  // `recmesh pki issue --kind service --name <name>`: an EMS-CA identity ems_<name>.
  void issue_service(const std::string& name) {
    expect_ok({"pki", "issue", "--dir", pki(), "--kind", "service", "--name", name});
  }

  std::filesystem::path issued(const std::string& cn, const std::string& file) const {
    return dir_ / "pki" / "issued" / cn / file;
  }

  // A client presenting issued/<cn>/chain.pem; no certificate when `cn` is empty.
  secmgr::ApiClient client(const std::string& cn = "ems_operator-alice") const {
    secmgr::ApiClientOptions options;
    options.port = port_;
    options.cafile = dir_ / "pki" / "ca" / "ems" / "chain.pem";
    if (!cn.empty()) {
      options.certfile = issued(cn, "chain.pem");
      options.keyfile = issued(cn, "key.pem");
    }
    return secmgr::ApiClient(options);
  }

  // POST as the operator; the status must be `status`.
  nlohmann::json post(const std::string& path, const nlohmann::json& body, int status = 201) {
    const secmgr::ApiResponse response = client().post(path, body.dump());
    EXPECT_EQ(response.status, status) << path << ": " << response.body << response.error;
    return nlohmann::json::parse(response.body, nullptr, false);
  }
  nlohmann::json get(const std::string& path) {
    const secmgr::ApiResponse response = client().get(path);
    EXPECT_EQ(response.status, 200) << path << ": " << response.body << response.error;
    return nlohmann::json::parse(response.body, nullptr, false);
  }

  // The REC/member/devices of a small community, registered through the API.
  void register_community(const std::string& rec, const std::string& member,
                          const std::vector<std::string>& devices) {
    if (get("/v1/recs")["recs"].empty() || client().get("/v1/recs/" + rec).status == 404) {
      post("/v1/recs", {{"id", rec}});
    }
    post("/v1/recs/" + rec + "/members", {{"id", member}});
    for (const auto& device : devices) {
      post("/v1/recs/" + rec + "/members/" + member + "/devices", {{"id", device}});
    }
  }

  static void expect_ok(const std::vector<std::string>& args) {
    const CommandResult result = run_recmesh(args);
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }

 private:
  TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

}  // namespace recmesh::testing
