// `recmesh secmgr` as a process with its real HTTPS API and the real PKI: registration,
// issuance, renewal and revocation, and every kind of bad input refused, audited and without
// effect.
#include <cerrno>
#include <csignal>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "recmesh/core/loopback.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/crypto/pem.hpp"

#include "secmgr/security_manager.hpp"
#include "secmgr_harness.hpp"

namespace recmesh::testing {
namespace {

using nlohmann::json;

std::string csr_for(const std::string& common_name) {
  const crypto::PkeyPtr key = crypto::generate_p256_key();
  return secmgr::make_csr_pem(key.get(), common_name);
}

// One TLS connection to the API without a client certificate, kept open across requests, as a
// keep-alive client holds it: raw bytes out, raw bytes back.
class KeptConnection {
 public:
  KeptConnection(int port, const std::string& cafile) : ctx_(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_load_verify_locations(ctx_.get(), cafile.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in address = loopback_address(port);
    timeval timeout{};
    timeout.tv_sec = 30;  // a bound on each read: the manager answers long before
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ssl_.reset(SSL_new(ctx_.get()));
    connected_ =
        fd_ >= 0 &&
        ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 &&
        SSL_set_fd(ssl_.get(), fd_) == 1 && SSL_connect(ssl_.get()) == 1;
  }
  KeptConnection(const KeptConnection&) = delete;
  KeptConnection& operator=(const KeptConnection&) = delete;
  ~KeptConnection() {
    ssl_.reset();
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  bool connected() const { return connected_; }

  bool send(const std::string& bytes) {
    return SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size())) ==
           static_cast<int>(bytes.size());
  }

  // One HTTP response: its head and the Content-Length bytes of body after it.
  std::string read_response() {
    std::string in;
    while (true) {
      const auto head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto field = in.find("Content-Length: ");
        const std::size_t length = field < head_end ? std::stoul(in.substr(field + 16)) : 0;
        if (in.size() >= head_end + 4 + length) {
          return in;
        }
      }
      if (!read_some(in)) {
        return in;
      }
    }
  }

  // Everything until the server ends the connection; ended() tells whether it did.
  std::string read_to_end() {
    std::string in;
    while (read_some(in)) {
    }
    return in;
  }

  bool ended() const { return ended_; }

 private:
  bool read_some(std::string& in) {
    char buffer[4096];
    const int n = SSL_read(ssl_.get(), buffer, sizeof(buffer));
    if (n > 0) {
      in.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
    const int error = SSL_get_error(ssl_.get(), n);
    // A read that timed out is no end; end of stream, a reset or a broken session is.
    ended_ = !(error == SSL_ERROR_WANT_READ ||
               (error == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)));
    return false;
  }

  crypto::OpenSslPtr<SSL_CTX, SSL_CTX_free> ctx_;
  crypto::OpenSslPtr<SSL, SSL_free> ssl_;
  int fd_ = -1;
  bool connected_ = false;
  bool ended_ = false;
};

class SecmgrApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sm_.start();
    sm_.register_community("r1", "m1", {"pv-1", "gateway"});
  }

  // What a refused request must leave unchanged.
  std::string state() {
    return sm_.get("/v1/identities").dump() + sm_.get("/v1/recs").dump() +
           sm_.get("/v1/rules").dump() + sm_.get("/v1/brokers").dump();
  }

  json audit_entries(const std::string& outcome = {}) {
    return sm_.get("/v1/audit?limit=1000" +
                   (outcome.empty() ? "" : "&outcome=" + outcome))["entries"];
  }

  // Sends a request that must be refused with `status` and a message containing `message`,
  // change nothing and leave one more refused audit entry.
  void expect_refused(secmgr::ApiClient& client, const std::string& method, const std::string& path,
                      const std::string& body, const std::string& content_type, int status,
                      const std::string& message) {
    SCOPED_TRACE(method + " " + path);
    const std::string before = state();
    const std::size_t refused = audit_entries("refused").size();
    const secmgr::ApiResponse response = client.send(method, path, body, content_type);
    EXPECT_EQ(response.status, status) << response.body << response.error;
    const json answer = json::parse(response.body, nullptr, false);
    ASSERT_TRUE(answer.is_object() && answer.contains("error")) << response.body;
    EXPECT_NE(answer["error"].get<std::string>().find(message), std::string::npos)
        << answer["error"];
    EXPECT_EQ(state(), before) << "a refused request changed the registry";
    const json entries = audit_entries("refused");
    ASSERT_EQ(entries.size(), refused + 1);
    EXPECT_EQ(entries.back()["status"], status);
    EXPECT_EQ(entries.back()["detail"], answer["error"]);
  }

  SecmgrHarness sm_;
};

TEST_F(SecmgrApiTest, RegistersIssuesRenewsAndRevokes) {
  const json member = sm_.get("/v1/recs/r1/members/m1");
  std::vector<std::string> names;
  for (const auto& identity : member["identities"]) {
    names.push_back(identity["common_name"]);
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"bridge_r1_m1", "rec_r1_m1_gateway", "rec_r1_m1_pv-1"}));

  // The CSR may leave the CN out: the manager chooses it, and the EKU.
  const json issued =
      sm_.post("/v1/identities/rec_r1_m1_pv-1/certificate", {{"csr", csr_for("")}, {"days", 7}});
  const crypto::X509Ptr cert =
      crypto::certificate_from_pem(issued["chain_pem"].get<std::string>(), "chain");
  EXPECT_EQ(crypto::subject_common_name(cert.get()), "rec_r1_m1_pv-1");
  EXPECT_NE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT, 0U);
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER, 0U);
  EXPECT_EQ(crypto::certificates_from_pem(issued["chain_pem"].get<std::string>(), "chain").size(),
            3U);  // leaf, member CA, REC CA

  // A second issue is a conflict; renewal supersedes.
  sm_.post("/v1/identities/rec_r1_m1_pv-1/certificate", {{"csr", csr_for("rec_r1_m1_pv-1")}}, 409);
  const json renewed =
      sm_.post("/v1/identities/rec_r1_m1_pv-1/renew", {{"csr", csr_for("rec_r1_m1_pv-1")}});
  EXPECT_NE(renewed["serial"], issued["serial"]);
  json shown = sm_.get("/v1/identities/rec_r1_m1_pv-1");
  ASSERT_EQ(shown["certificates"].size(), 2U);

  const json revoked =
      sm_.post("/v1/identities/rec_r1_m1_pv-1/revoke", {{"reason", "key-compromise"}}, 200);
  EXPECT_EQ(revoked["revoked_serials"], json::array({renewed["serial"]}));
  shown = sm_.get("/v1/identities/rec_r1_m1_pv-1");
  EXPECT_EQ(shown["status"], "revoked");
  for (const auto& certificate : shown["certificates"]) {
    EXPECT_NE(certificate["status"], "valid");
  }
  // The PKI itself agrees.
  const CommandResult pki_view =
      run_recmesh({"pki", "show", "--dir", sm_.pki(), "--serial", renewed["serial"], "--json"});
  ASSERT_EQ(pki_view.exit_code, 0) << pki_view.err;
  EXPECT_EQ(json::parse(pki_view.out)["status"], "revoked");
  sm_.post("/v1/identities/rec_r1_m1_pv-1/certificate", {{"csr", csr_for("")}}, 409);

  // Revoking the member revokes every identity it holds, the bridge included.
  sm_.post("/v1/identities/rec_r1_m1_gateway/certificate", {{"csr", csr_for("")}});
  const json member_revoked = sm_.post("/v1/recs/r1/members/m1/revoke", json::object(), 200);
  EXPECT_EQ(member_revoked["revoked_identities"].size(), 3U);
  const json identities = sm_.get("/v1/identities?rec=r1&member=m1")["identities"];
  for (const auto& identity : identities) {
    EXPECT_EQ(identity["status"], "revoked") << identity;
  }
  sm_.post("/v1/recs/r1/members/m1/devices", {{"id", "late"}}, 409);

  // Every change is in the audit log with who did it.
  std::vector<std::string> actions;
  for (const auto& entry : audit_entries("ok")) {
    EXPECT_EQ(entry["actor"], "ems_operator-alice");
    EXPECT_EQ(entry["role"], "operator");
    actions.push_back(entry["action"]);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"rec.add", "member.add", "device.add", "device.add",
                                               "cert.issue", "cert.renew", "identity.revoke",
                                               "cert.issue", "member.revoke"}));
}

TEST_F(SecmgrApiTest, ACsrAskingForAnotherCommonNameIsRefused) {
  auto client = sm_.client();
  for (const char* cn : {"ems_engine", "bridge_r1_m1", "rec_r1_m1_gateway"}) {
    expect_refused(client, "POST", "/v1/identities/rec_r1_m1_pv-1/certificate",
                   json{{"csr", csr_for(cn)}}.dump(), "application/json", 400,
                   "the manager chooses the CN");
  }
  EXPECT_TRUE(sm_.get("/v1/identities/rec_r1_m1_pv-1")["certificates"].empty());
  expect_refused(client, "POST", "/v1/identities/rec_r1_m1_pv-1/certificate",
                 json{{"csr", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"}}.dump(),
                 "application/json", 400, "");
  expect_refused(client, "POST", "/v1/identities/ems_nobody/certificate",
                 json{{"csr", csr_for("")}}.dump(), "application/json", 404, "not registered");
}

TEST_F(SecmgrApiTest, BadInputIsRefusedAuditedAndChangesNothing) {
  auto client = sm_.client();
  const std::string j = "application/json";
  expect_refused(client, "POST", "/v1/recs", "{\"id\":", j, 400, "not valid JSON");
  expect_refused(client, "POST", "/v1/recs", "[\"r2\"]", j, 400, "must be a JSON object");
  expect_refused(client, "POST", "/v1/recs", R"({"id":"r2","colour":"red"})", j, 400,
                 "unknown field \"colour\"");
  expect_refused(client, "POST", "/v1/recs", R"({"id":7})", j, 400, "id must be a string");
  expect_refused(client, "POST", "/v1/recs", R"({"id":"r2"})", "text/plain", 415,
                 "application/json");
  expect_refused(client, "POST", "/v1/recs",
                 "{\"id\":\"" + std::string(10 * 1024 * 1024, 'a') + "\"}", j, 413, "larger than");
  for (const std::string& id : std::vector<std::string>{
           "R2", "r_2", "-r2", "", std::string(33, 'a'), "r2/x", "r\xc3\xa9"}) {
    expect_refused(client, "POST", "/v1/recs", json{{"id", id}}.dump(), j, 400, "REC");
  }
  expect_refused(client, "POST", "/v1/recs/r1/members/m1/devices", R"({"id":"Pv_1"})", j, 400,
                 "device");
  expect_refused(client, "POST", "/v1/recs/R1/members", R"({"id":"m2"})", j, 400, "REC");
  expect_refused(client, "POST", "/v1/recs/r1/members", R"({"id":"m1"})", j, 409,
                 "already registered");
  expect_refused(client, "POST", "/v1/recs/nope/members", R"({"id":"m2"})", j, 404,
                 "not registered");
  expect_refused(client, "POST", "/v1/rules",
                 R"({"identity":"rec_r1_m1_pv-1","permission":"write","topic":"/a/#/b"})", j, 400,
                 "topic filter");
  expect_refused(client, "POST", "/v1/rules",
                 R"({"identity":"rec_r1_m1_pv-1","permission":"own","topic":"/a"})", j, 400,
                 "permission");
  expect_refused(client, "DELETE", "/v1/rules/abc", "", "", 400, "positive integer");
  expect_refused(client, "POST", "/v1/brokers",
                 R"({"id":"rec_r1_m1_pv-1","host":"127.0.0.1","port":1883})", j, 400,
                 "server common name");
  expect_refused(client, "GET", "/v1/identities?colour=red", "", "", 400,
                 "unknown query parameter");
  expect_refused(client, "GET", "/v1/audit?limit=0", "", "", 400, "limit");
  expect_refused(client, "GET", "/v2/recs", "", "", 404, "no such route");
  expect_refused(client, "POST", "/v1/identities/rec_r1_m1_pv-1/revoke", R"({"reason":"because"})",
                 j, 400, "reason");
}

// Regression: a request refused before routing left its body unread on a kept-alive
// connection, and the server read that body as the next request: one refusal, two answers
// and two audit entries. The refusal now ends the connection, as its Connection: close says.
TEST_F(SecmgrApiTest, ARefusalOnAKeptAliveConnectionIsAuditedOnceAndEndsTheConnection) {
  std::signal(SIGPIPE, SIG_IGN);  // writing to the ended connection must fail, not stop the test
  const std::string before = state();
  const std::size_t refused = audit_entries("refused").size();
  const std::size_t all = audit_entries().size();
  KeptConnection connection(sm_.port(), (sm_.dir().path() / "pki/ca/ems/chain.pem").string());
  ASSERT_TRUE(connection.connected());
  const std::string body = R"({"id":"r2"})";
  ASSERT_TRUE(connection.send(
      "POST /v1/recs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body));
  const std::string answer = connection.read_response();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 401")) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  // The next request on the same connection is not read: the connection ends unanswered.
  connection.send("GET /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const std::string after = connection.read_to_end();
  EXPECT_EQ(after, "") << "the server read on after its refusal";
  EXPECT_TRUE(connection.ended()) << "the connection stayed open after the refusal";
  const json entries = audit_entries("refused");
  ASSERT_EQ(entries.size(), refused + 1) << entries.dump(1);
  EXPECT_EQ(entries.back()["status"], 401);
  EXPECT_EQ(entries.back()["action"], "authenticate");
  EXPECT_EQ(audit_entries().size(), all + 1);
  EXPECT_EQ(state(), before);
}

TEST_F(SecmgrApiTest, BatchRegistersEverythingInOneRequest) {
  const json batch = {
      {"recs", {{{"id", "r2"}}}},
      {"members", {{{"rec", "r2"}, {"id", "m1"}}, {{"rec", "r1"}, {"id", "m2"}}}},
      {"devices",
       {{{"rec", "r2"}, {"member", "m1"}, {"id", "gateway"}},
        {{"rec", "r2"}, {"member", "m1"}, {"id", "pv-1"}},
        {{"rec", "r1"}, {"member", "m1"}, {"id", "meter"}}}},
      {"services", {{{"id", "planner"}}}},
      {"brokers",
       {{{"id", "broker_r2_m1"}, {"host", "127.0.0.1"}, {"port", 1883}, {"connector", "none"}}}}};
  const json answer = sm_.post("/v1/registrations/batch", batch);
  EXPECT_EQ(answer["recs"], 1);
  EXPECT_EQ(answer["members"], 2);
  EXPECT_EQ(answer["identities"],
            json::array({"bridge_r2_m1", "bridge_r1_m2", "rec_r2_m1_gateway", "rec_r2_m1_pv-1",
                         "rec_r1_m1_meter", "ems_planner"}));
  EXPECT_EQ(answer["brokers"], json::array({"broker_r2_m1"}));
  EXPECT_EQ(answer["pushed"], json({{"broker_r2_m1", "ok"}}));

  std::vector<std::string> names;
  const json member = sm_.get("/v1/recs/r2/members/m1");
  for (const auto& identity : member["identities"]) {
    names.push_back(identity["common_name"]);
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"bridge_r2_m1", "rec_r2_m1_gateway", "rec_r2_m1_pv-1"}));
  EXPECT_EQ(sm_.get("/v1/brokers/broker_r2_m1")["connector"], "none");
  // The new REC and member got their CAs: a device of theirs can be issued a certificate.
  const crypto::PkeyPtr key = crypto::generate_p256_key();
  const json issued = sm_.post("/v1/identities/rec_r2_m1_pv-1/certificate",
                               {{"csr", secmgr::make_csr_pem(key.get(), "")}});
  EXPECT_EQ(crypto::certificates_from_pem(issued["chain_pem"].get<std::string>(), "chain").size(),
            3U);
  // One audit entry for the whole batch.
  const json entries = audit_entries("ok");
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries[entries.size() - 2]["action"], "registration.batch");
  EXPECT_EQ(entries[entries.size() - 2]["detail"],
            "registered 1 RECs, 2 members, 6 identities, 1 brokers");
}

TEST_F(SecmgrApiTest, BatchBadInputIsRefusedWholeAndChangesNothing) {
  auto client = sm_.client();
  const std::string j = "application/json";
  const std::string path = "/v1/registrations/batch";
  const auto device = [](const std::string& member, const std::string& id) {
    return json{{"rec", "r1"}, {"member", member}, {"id", id}};
  };
  expect_refused(client, "POST", path, R"({"devices":[)", j, 400, "not valid JSON");
  expect_refused(client, "POST", path, "{}", j, 400, "holds no entry");
  expect_refused(client, "POST", path, R"({"devices":{}})", j, 400, "devices must be an array");
  expect_refused(client, "POST", path, R"({"recs":["r3"]})", j, 400,
                 "recs[0] must be a JSON object");
  expect_refused(client, "POST", path, R"({"groups":[]})", j, 400, "unknown field \"groups\"");
  expect_refused(client, "POST", path, R"({"members":[{"rec":"r1","id":"m3","colour":"red"}]})", j,
                 400, "members[0]: unknown field \"colour\"");
  expect_refused(client, "POST", path, R"({"members":[{"rec":"r1"}]})", j, 400,
                 "members[0]: id is required");
  expect_refused(client, "POST", path, json{{"devices", {device("m1", "Bad_Id")}}}.dump(), j, 400,
                 "device");
  expect_refused(client, "POST", path, json{{"recs", {{{"id", "r_3"}}}}}.dump(), j, 400, "REC");
  expect_refused(
      client, "POST", path,
      json{{"brokers", {{{"id", "rec_r1_m1_pv-1"}, {"host", "127.0.0.1"}, {"port", 1883}}}}}.dump(),
      j, 400, "server common name");
  expect_refused(
      client, "POST", path,
      json{{"brokers", {{{"id", "broker_r1_m1"}, {"host", "a b"}, {"port", 1883}}}}}.dump(), j, 400,
      "host");
  // Listed twice in the batch, or registered already: nothing of the batch lands, not even
  // its valid entries before the bad one.
  expect_refused(
      client, "POST", path,
      json{{"devices", {device("m1", "new-1"), device("m1", "new-2"), device("m1", "new-1")}}}
          .dump(),
      j, 400, "rec_r1_m1_new-1 is listed twice");
  expect_refused(client, "POST", path,
                 json{{"recs", {{{"id", "r3"}}}},
                      {"members", {{{"rec", "r3"}, {"id", "m1"}}}},
                      {"devices", {device("m1", "new-1"), device("m1", "pv-1")}}}
                     .dump(),
                 j, 409, "rec_r1_m1_pv-1 is already registered");
  expect_refused(
      client, "POST", path,
      json{{"members", {{{"rec", "r1"}, {"id", "m3"}}, {{"rec", "r1"}, {"id", "m1"}}}}}.dump(), j,
      409, "member r1/m1 is already registered");
  expect_refused(client, "POST", path,
                 json{{"devices", {device("m1", "new-1"), device("nobody", "d")}}}.dump(), j, 404,
                 "member r1/nobody is not registered");
  EXPECT_EQ(client.get("/v1/recs/r3").status, 404);
  // Bounded: entries and bytes.
  json many = json::array();
  for (std::size_t i = 0; i <= secmgr::kMaxBatchEntries; ++i) {
    many.push_back({{"id", "s" + std::to_string(i)}});
  }
  expect_refused(client, "POST", path, json{{"services", many}}.dump(), j, 400,
                 "more than 5000 entries");
  json spread = json::object();
  for (const char* list : {"recs", "services"}) {
    spread[list] = json::array();
    for (std::size_t i = 0; i < secmgr::kMaxBatchEntries / 2 + 1; ++i) {
      spread[list].push_back({{"id", std::string(list).substr(0, 1) + std::to_string(i)}});
    }
  }
  expect_refused(client, "POST", path, spread.dump(), j, 400, "at most 5000 entries");
  expect_refused(client, "POST", path,
                 R"({"recs":[{"id":")" + std::string(300 * 1024, 'a') + R"("}]})", j, 413,
                 "larger than");
  // Authorised as the single registrations: a certificate with the register permission.
  const std::string batch = json{{"devices", {device("m1", "new-1")}}}.dump();
  {
    auto anonymous = sm_.client("");
    expect_refused(anonymous, "POST", path, batch, j, 401, "client certificate");
  }
  sm_.issue_service("web");
  auto web = sm_.client("ems_web");
  expect_refused(web, "POST", path, batch, j, 403, "role viewer may not registration.batch");
}

TEST_F(SecmgrApiTest, OnlyValidEmsCaClientsWithARoleAreServed) {
  const std::string j = "application/json";
  const std::string add = R"({"id":"r2"})";
  {
    auto anonymous = sm_.client("");
    expect_refused(anonymous, "POST", "/v1/recs", add, j, 401, "client certificate");
  }
  {
    // A member-CA certificate chains to the same root but is not of the EMS CA.
    SecmgrHarness::expect_ok({"pki", "issue", "--dir", sm_.pki(), "--kind", "device", "--rec", "r1",
                              "--member", "m1", "--name", "meter"});
    auto member_client = sm_.client("rec_r1_m1_meter");
    expect_refused(member_client, "POST", "/v1/recs", add, j, 401, "EMS CA");
  }
  {
    // A certificate from a foreign root with an operator's name.
    const auto dir = sm_.dir().path();
    const auto openssl = [&](const std::vector<std::string>& args) {
      std::vector<std::string> command{"openssl"};
      command.insert(command.end(), args.begin(), args.end());
      const CommandResult result = run_command(command);
      ASSERT_EQ(result.exit_code, 0) << result.err;
    };
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", (dir / "foreign.key").string(), "-out", (dir / "foreign.pem").string(),
             "-subj", "/CN=foreign root", "-days", "2"});
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             (dir / "mallory.key").string(), "-out", (dir / "mallory.csr").string(), "-subj",
             "/CN=ems_operator-alice"});
    openssl({"x509", "-req", "-in", (dir / "mallory.csr").string(), "-CA",
             (dir / "foreign.pem").string(), "-CAkey", (dir / "foreign.key").string(),
             "-CAcreateserial", "-out", (dir / "mallory.pem").string(), "-days", "1"});
    secmgr::ApiClientOptions options;
    options.port = sm_.port();
    options.cafile = dir / "pki" / "ca" / "ems" / "chain.pem";
    options.certfile = dir / "mallory.pem";
    options.keyfile = dir / "mallory.key";
    secmgr::ApiClient mallory(options);
    expect_refused(mallory, "POST", "/v1/recs", add, j, 401, "client certificate rejected");
  }
  {
    // The manager's own MQTT identity has no role on the API.
    auto secmgr_client = sm_.client("ems_secmgr");
    expect_refused(secmgr_client, "GET", "/v1/recs", "", "", 403, "no role");
  }
  {
    // ems_web reads but may not register.
    sm_.issue_service("web");
    auto web = sm_.client("ems_web");
    EXPECT_EQ(web.get("/v1/recs").status, 200);
    expect_refused(web, "POST", "/v1/recs", add, j, 403, "role viewer may not rec.add");
    expect_refused(web, "GET", "/v1/audit", "", "", 403, "audit");
  }
  {
    // A revoked operator certificate stops working at once, without a restart.
    sm_.issue_service("operator-bob");
    auto bob = sm_.client("ems_operator-bob");
    EXPECT_EQ(bob.get("/v1/whoami").status, 200);
    SecmgrHarness::expect_ok({"pki", "revoke", "--dir", sm_.pki(), "--cn", "ems_operator-bob"});
    expect_refused(bob, "POST", "/v1/recs", add, j, 401, "revoked");
  }
  {
    // So does a superseded one: renewed outside the manager, its successor is served.
    sm_.issue_service("operator-carol");
    auto carol_before = sm_.client("ems_operator-carol");
    EXPECT_EQ(carol_before.get("/v1/whoami").status, 200);
    SecmgrHarness::expect_ok({"pki", "renew", "--dir", sm_.pki(), "--cn", "ems_operator-carol"});
    expect_refused(carol_before, "GET", "/v1/recs", "", "", 401, "superseded");
    EXPECT_EQ(sm_.client("ems_operator-carol").get("/v1/whoami").status, 200);
  }
  const json who = sm_.get("/v1/whoami");
  EXPECT_EQ(who["role"], "operator");
}

TEST_F(SecmgrApiTest, KeepsItsStateAcrossRestartsAndStopsCleanlyOnSigterm) {
  sm_.post("/v1/rules", {{"identity", "rec_r1_m1_pv-1"},
                         {"permission", "write"},
                         {"topic", "/device/pv-1/extra"},
                         {"note", "firmware update channel"}});
  const std::string before = state();
  EXPECT_EQ(sm_.process().signal_and_wait(SIGTERM, std::chrono::seconds(10)), 0) << sm_.log();
  sm_.start();
  EXPECT_EQ(state(), before);
  EXPECT_NE(sm_.log().find("\"msg\":\"serving the API\""), std::string::npos) << sm_.log();
}

TEST_F(SecmgrApiTest, OperatorCliDrivesTheApi) {
  const std::vector<std::string> base = {
      "sec",     "--port",     std::to_string(sm_.port()), "--pki-dir",
      sm_.pki(), "--identity", "ems_operator-alice"};
  const auto sec = [&](std::vector<std::string> args) {
    args.insert(args.begin(), base.begin(), base.end());
    return run_recmesh(args);
  };
  CommandResult result = sec({"device", "add", "r1", "m1", "battery"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = sec({"--json", "device", "list", "r1", "m1"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::parse(result.out)["devices"].size(), 3U);
  const auto key = sm_.dir() / "battery.key";
  const auto chain = sm_.dir() / "battery.pem";
  result = sec(
      {"cert", "issue", "rec_r1_m1_battery", "--key-out", key.string(), "--out", chain.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(
      crypto::subject_common_name(crypto::certificate_from_pem(read_file(chain), "chain").get()),
      "rec_r1_m1_battery");
  result = sec({"rule", "add", "--identity", "rec_r1_m1_battery", "--permission", "read", "--topic",
                "/device/battery/setpoint"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = sec({"--json", "rule", "list"});
  EXPECT_EQ(json::parse(result.out)["rules"].size(), 1U);
  result = sec({"rule", "remove", "1"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = sec({"device", "add", "r1", "m1", "Bad_Id"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("HTTP 400"), std::string::npos) << result.err;
  result = sec({"--json", "audit", "--outcome", "refused"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::parse(result.out)["entries"].back()["action"], "device.add");
  result = sec({"cert", "revoke", "rec_r1_m1_battery"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
}

}  // namespace
}  // namespace recmesh::testing
