#include "secmgr/api_server.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <functional>
#include <httplib.h>
#include <optional>
#include <sys/socket.h>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/certificate_signer.hpp"

#include "secmgr/api_error.hpp"
#include "secmgr/json_body.hpp"
#include "secmgr/security_manager.hpp"

namespace recmesh::secmgr {
namespace {

using nlohmann::json;
using HandlerResponse = httplib::Server::HandlerResponse;

constexpr std::string_view kUnauthenticated = "(unauthenticated)";
constexpr std::size_t kMaxAuditPath = 256;
constexpr std::int64_t kMaxDays = 825;
constexpr std::int64_t kMaxAuditLimit = 1000;
constexpr std::string_view kSessionContext = "recmesh-secmgr";

// One request as a route handler sees it.
struct Call {
  const httplib::Request& request;
  std::vector<std::string> params;  // path parameters, in template order

  const std::string& param(std::size_t index) const { return params.at(index); }
  std::string query(const std::string& key) const {
    return request.has_param(key) ? request.get_param_value(key) : std::string();
  }
  std::int64_t query_integer(const std::string& key, std::int64_t fallback, std::int64_t min,
                             std::int64_t max) const {
    const std::string text = query(key);
    if (text.empty()) {
      return fallback;
    }
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
      throw ApiError::bad_request(
          fmt::format("query parameter {} must be an integer between {} and {}", key, min, max));
    }
    return value;
  }
};

using Handler = std::function<Outcome(SecurityManager&, const Actor&, const Call&)>;

struct Route {
  std::string method;
  std::string path;  // OpenAPI template
  Permission permission;
  std::string action;  // audit name
  std::vector<std::string> query_keys;
  Handler handler;
};

std::optional<int> days_of(const JsonBody& body) {
  const auto days = body.optional_integer("days", 1, kMaxDays);
  return days ? std::optional<int>(static_cast<int>(*days)) : std::nullopt;
}

std::int64_t rule_id(const std::string& text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1) {
    throw ApiError::bad_request(
        fmt::format("rule id {} is not a positive integer", quote_untrusted(text)));
  }
  return value;
}

std::string reason_of(const Call& call) {
  return JsonBody(call.request.body, {"reason"}).optional_string("reason").value_or("");
}

// POST /v1/registrations/batch: each entry an object with the fields of its single
// registration's body plus the path's parameters.
RegistrationBatch batch_of(const Call& call) {
  const JsonBody body(call.request.body, {"recs", "members", "devices", "services", "brokers"});
  RegistrationBatch batch;
  for (const JsonBody& rec : body.object_list("recs", {"id"}, kMaxBatchEntries)) {
    batch.recs.push_back(rec.required_string("id"));
  }
  for (const JsonBody& member : body.object_list("members", {"rec", "id"}, kMaxBatchEntries)) {
    batch.members.push_back({member.required_string("rec"), member.required_string("id")});
  }
  for (const JsonBody& device :
       body.object_list("devices", {"rec", "member", "id"}, kMaxBatchEntries)) {
    batch.devices.push_back({device.required_string("rec"), device.required_string("member"),
                             device.required_string("id")});
  }
  for (const JsonBody& service : body.object_list("services", {"id"}, kMaxBatchEntries)) {
    batch.services.push_back(service.required_string("id"));
  }
  for (const JsonBody& broker :
       body.object_list("brokers", {"id", "host", "port", "connector"}, kMaxBatchEntries)) {
    batch.brokers.push_back({broker.required_string("id"), broker.required_string("host"),
                             broker.optional_integer("port", 1, 65535).value_or(0),
                             broker.optional_string("connector").value_or("guard")});
  }
  if (batch.size() == 0) {
    throw ApiError::bad_request("request body: the batch holds no entry");
  }
  return batch;
}

std::vector<Route> route_table() {
  using M = SecurityManager;
  using A = const Actor&;
  using C = const Call&;
  const Permission read = Permission::kRead;
  const Permission reg = Permission::kRegister;
  return {
      {"GET", "/v1/whoami", read, "whoami", {}, [](M& m, A a, C) { return m.whoami(a); }},
      {"GET", "/v1/recs", read, "rec.list", {}, [](M& m, A, C) { return m.list_recs(); }},
      {"POST",
       "/v1/recs",
       reg,
       "rec.add",
       {},
       [](M& m, A, C c) {
         return m.add_rec(JsonBody(c.request.body, {"id"}).required_string("id"));
       }},
      {"GET",
       "/v1/recs/{rec}",
       read,
       "rec.show",
       {},
       [](M& m, A, C c) { return m.show_rec(c.param(0)); }},
      {"POST",
       "/v1/recs/{rec}/revoke",
       Permission::kRevoke,
       "rec.revoke",
       {},
       [](M& m, A, C c) { return m.revoke_rec(c.param(0), reason_of(c)); }},
      {"GET",
       "/v1/recs/{rec}/members",
       read,
       "member.list",
       {},
       [](M& m, A, C c) { return m.list_members(c.param(0)); }},
      {"POST",
       "/v1/recs/{rec}/members",
       reg,
       "member.add",
       {},
       [](M& m, A, C c) {
         return m.add_member(c.param(0), JsonBody(c.request.body, {"id"}).required_string("id"));
       }},
      {"GET",
       "/v1/recs/{rec}/members/{member}",
       read,
       "member.show",
       {},
       [](M& m, A, C c) { return m.show_member(c.param(0), c.param(1)); }},
      {"POST",
       "/v1/recs/{rec}/members/{member}/revoke",
       Permission::kRevoke,
       "member.revoke",
       {},
       [](M& m, A, C c) { return m.revoke_member(c.param(0), c.param(1), reason_of(c)); }},
      {"GET",
       "/v1/recs/{rec}/members/{member}/devices",
       read,
       "device.list",
       {},
       [](M& m, A, C c) { return m.list_devices(c.param(0), c.param(1)); }},
      {"POST",
       "/v1/recs/{rec}/members/{member}/devices",
       reg,
       "device.add",
       {},
       [](M& m, A, C c) {
         return m.add_device(c.param(0), c.param(1),
                             JsonBody(c.request.body, {"id"}).required_string("id"));
       }},
      {"GET",
       "/v1/services",
       read,
       "service.list",
       {},
       [](M& m, A, C) { return m.list_services(); }},
      {"POST",
       "/v1/services",
       reg,
       "service.add",
       {},
       [](M& m, A, C c) {
         return m.add_service(JsonBody(c.request.body, {"id"}).required_string("id"));
       }},
      {"GET", "/v1/brokers", read, "broker.list", {}, [](M& m, A, C) { return m.list_brokers(); }},
      {"POST",
       "/v1/brokers",
       reg,
       "broker.add",
       {},
       [](M& m, A, C c) {
         const JsonBody body(c.request.body, {"id", "host", "port", "connector"});
         return m.add_broker(body.required_string("id"), body.required_string("host"),
                             body.optional_integer("port", 1, 65535).value_or(0),
                             body.optional_string("connector").value_or("guard"));
       }},
      {"POST",
       "/v1/registrations/batch",
       reg,
       "registration.batch",
       {},
       [](M& m, A, C c) { return m.register_batch(batch_of(c)); }},
      {"GET",
       "/v1/brokers/{broker}",
       read,
       "broker.show",
       {},
       [](M& m, A, C c) { return m.show_broker(c.param(0)); }},
      {"GET",
       "/v1/brokers/{broker}/bundle",
       Permission::kRules,
       "broker.bundle",
       {},
       [](M& m, A, C c) { return m.broker_bundle(c.param(0)); }},
      {"GET",
       "/v1/identities",
       read,
       "identity.list",
       {"rec", "member", "kind"},
       [](M& m, A, C c) {
         return m.list_identities(c.query("rec"), c.query("member"), c.query("kind"));
       }},
      {"GET",
       "/v1/identities/{cn}",
       read,
       "identity.show",
       {},
       [](M& m, A, C c) { return m.show_identity(c.param(0)); }},
      {"POST",
       "/v1/identities/{cn}/certificate",
       Permission::kIssue,
       "cert.issue",
       {},
       [](M& m, A, C c) {
         const JsonBody body(c.request.body, {"csr", "days"});
         return m.issue(c.param(0), body.optional_string("csr").value_or(""), days_of(body));
       }},
      {"POST",
       "/v1/identities/{cn}/renew",
       Permission::kIssue,
       "cert.renew",
       {},
       [](M& m, A, C c) {
         const JsonBody body(c.request.body, {"csr", "days"});
         return m.renew(c.param(0), body.optional_string("csr").value_or(""), days_of(body));
       }},
      {"POST",
       "/v1/identities/{cn}/revoke",
       Permission::kRevoke,
       "identity.revoke",
       {},
       [](M& m, A, C c) { return m.revoke_identity(c.param(0), reason_of(c)); }},
      {"GET",
       "/v1/rules",
       read,
       "rule.list",
       {"identity"},
       [](M& m, A, C c) { return m.list_rules(c.query("identity")); }},
      {"POST",
       "/v1/rules",
       Permission::kRules,
       "rule.add",
       {},
       [](M& m, A a, C c) {
         const JsonBody body(c.request.body,
                             {"identity", "broker", "permission", "topic", "allow", "note"});
         RuleRecord rule;
         rule.identity = body.required_string("identity");
         rule.broker = body.optional_string("broker").value_or("*");
         rule.permission = body.required_string("permission");
         rule.topic = body.required_string("topic");
         rule.allow = body.optional_bool("allow").value_or(true);
         rule.note = body.optional_string("note").value_or("");
         return m.add_rule(a, std::move(rule));
       }},
      {"DELETE",
       "/v1/rules/{id}",
       Permission::kRules,
       "rule.remove",
       {},
       [](M& m, A, C c) { return m.remove_rule(rule_id(c.param(0))); }},
      {"POST",
       "/v1/push",
       Permission::kRules,
       "policy.push",
       {},
       [](M& m, A, C c) {
         return m.push(JsonBody(c.request.body, {"broker"}).optional_string("broker").value_or(""));
       }},
      {"GET",
       "/v1/audit",
       Permission::kAudit,
       "audit.list",
       {"after_id", "limit", "outcome", "actor"},
       [](M& m, A, C c) {
         AuditQuery query;
         query.after_id = c.query_integer("after_id", 0, 0, INT64_MAX);
         query.limit = c.query_integer("limit", 100, 1, kMaxAuditLimit);
         query.outcome = c.query("outcome");
         query.actor = c.query("actor");
         return m.audit(query);
       }},
  };
}

// "/v1/recs/{rec}" -> "/v1/recs/([^/]+)"
std::string path_regex(const std::string& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '{') {
      i = path.find('}', i);
      out += "([^/]+)";
    } else {
      out += path[i];
    }
  }
  return out;
}

std::string truncated(std::string_view text) {
  return std::string(text.substr(0, kMaxAuditPath));
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Accepts every certificate during the handshake; the verdict OpenSSL records is read per
// request, so that a refusal is an HTTP answer with a reason and an audit entry.
int record_verdict(int, X509_STORE_CTX*) {
  return 1;
}

// Ends the request's connection after its answer, as its `Connection: close` says. A request
// refused before routing leaves its body unread, and cpp-httplib would otherwise parse that
// body as the next request of a kept-alive connection (refused and audited again). Marked as
// shut by the peer, the TLS session reads as ended from now on, whatever it has buffered, and
// the server closes the connection at its next read. (Shutting the socket's reading side too
// would make cpp-httplib take the connection for dead before it writes the answer.)
void close_after_answer(const httplib::Request& request) {
  if (request.ssl == nullptr) {
    return;
  }
  // cpp-httplib hands handlers the session as const; its own loop reads it next.
  SSL* ssl = const_cast<SSL*>(request.ssl);
  SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
}

struct Authentication {
  std::optional<Actor> actor;
  int status = 401;
  std::string message;
  std::string who{kUnauthenticated};
};

}  // namespace

std::vector<RouteInfo> api_routes() {
  std::vector<RouteInfo> out;
  for (const Route& route : route_table()) {
    out.push_back({route.method, route.path});
  }
  return out;
}

struct ApiServer::Impl {
  Impl(SecurityManager& m, log::Logger l, metrics::Registry& metrics)
      : manager(m),
        log(std::move(l)),
        ok(metrics.counter("recmesh_secmgr_requests_total", "API requests by outcome",
                           {{"outcome", "ok"}})),
        refused(metrics.counter("recmesh_secmgr_requests_total", "API requests by outcome",
                                {{"outcome", "refused"}})),
        failed(metrics.counter("recmesh_secmgr_requests_total", "API requests by outcome",
                               {{"outcome", "failed"}})) {}

  SecurityManager& manager;
  log::Logger log;
  metrics::Counter& ok;
  metrics::Counter& refused;
  metrics::Counter& failed;
  crypto::X509Ptr ems_ca;
  std::vector<Route> routes = route_table();
  std::unique_ptr<httplib::SSLServer> server;
  std::thread thread;
  std::atomic<bool> finished{false};
  int port = 0;
  std::size_t max_body = 0;

  Authentication authenticate(const httplib::Request& request) const {
    Authentication result;
    const SSL* ssl = request.ssl;
    X509* peer = ssl == nullptr ? nullptr : SSL_get0_peer_certificate(ssl);
    if (peer == nullptr) {
      result.message = "a client certificate issued by the EMS CA is required";
      return result;
    }
    const std::string common_name = crypto::subject_common_name(peer);
    result.who = "unverified:" + truncated(common_name).substr(0, kMaxIdentifierLength + 16);
    const long verdict = SSL_get_verify_result(ssl);
    if (verdict != X509_V_OK) {
      result.message = fmt::format(
          "client certificate rejected: {}; only certificates of the EMS CA are accepted",
          X509_verify_cert_error_string(verdict));
      return result;
    }
    STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
    if (chain == nullptr || sk_X509_num(chain) < 2 ||
        X509_cmp(sk_X509_value(chain, 1), ems_ca.get()) != 0) {
      result.status = 403;
      result.message = "only certificates issued by the EMS CA are accepted";
      return result;
    }
    const std::string serial = pki::serial_to_hex(X509_get0_serialNumber(peer));
    if (!manager.is_valid_certificate(serial, common_name)) {
      result.message =
          fmt::format("client certificate {} is revoked, superseded or unknown to the PKI", serial);
      return result;
    }
    result.who = common_name;
    const std::optional<Role> role = role_for_common_name(common_name);
    if (!role) {
      result.status = 403;
      result.message = fmt::format(
          "{} has no role on this API (ems_operator-<name>, ems_engine, ems_web, ems_lms)",
          common_name);
      return result;
    }
    result.actor = Actor{common_name, *role};
    return result;
  }

  void audit(const httplib::Request& request, const std::string& actor, const std::string& role,
             const std::string& action, int status, const std::string& detail) {
    AuditEntry entry;
    entry.at_ms = now_ms();
    entry.actor = actor;
    entry.role = role;
    entry.method = truncated(request.method);
    entry.path = truncated(request.path);
    entry.action = action;
    entry.outcome = status < 400 ? "ok" : (status < 500 ? "refused" : "failed");
    entry.status = status;
    entry.detail = detail;
    (status < 400 ? ok : status < 500 ? refused : failed).increment();
    try {
      manager.append_audit(entry);
    } catch (const std::exception& e) {
      log.error("audit entry not written", {{"cause", e.what()}, {"action", action}});
    }
  }

  void refuse(const httplib::Request& request, httplib::Response& response, int status,
              const std::string& message, const std::string& actor, const std::string& role,
              const std::string& action) {
    response.status = status;
    response.set_header("Connection", "close");
    close_after_answer(request);
    response.set_content(json{{"error", message}}.dump() + "\n", "application/json");
    log.info("request refused", {{"actor", actor},
                                 {"method", request.method},
                                 {"path", truncated(request.path)},
                                 {"status", status},
                                 {"reason", message}});
    audit(request, actor, role, action, status, message);
  }

  void serve(const Route& route, const httplib::Request& request, httplib::Response& response) {
    const Authentication auth = authenticate(request);
    if (!auth.actor) {
      refuse(request, response, auth.status, auth.message, auth.who, "", route.action);
      return;
    }
    const Actor& actor = *auth.actor;
    const std::string role(to_string(actor.role));
    if (!role_allows(actor.role, route.permission)) {
      refuse(request, response, 403,
             fmt::format("role {} may not {} ({} needs permission {})", role, route.action,
                         route.action, to_string(route.permission)),
             actor.common_name, role, route.action);
      return;
    }
    for (const auto& [key, value] : request.params) {
      if (std::find(route.query_keys.begin(), route.query_keys.end(), key) ==
          route.query_keys.end()) {
        refuse(request, response, 400,
               fmt::format("unknown query parameter {}", quote_untrusted(key)), actor.common_name,
               role, route.action);
        return;
      }
    }
    if (!request.body.empty() &&
        !request.get_header_value("Content-Type").starts_with("application/json")) {
      refuse(request, response, 415, "request body must be application/json", actor.common_name,
             role, route.action);
      return;
    }
    int status = 500;
    std::string message;
    try {
      Call call{request, {}};
      for (std::size_t i = 1; i < request.matches.size(); ++i) {
        call.params.push_back(request.matches[i].str());
      }
      Outcome outcome = route.handler(manager, actor, call);
      response.status = outcome.status;
      response.set_content(outcome.body.dump() + "\n", "application/json");
      if (request.method != "GET") {
        log.info(
            "change",
            {{"actor", actor.common_name}, {"action", route.action}, {"detail", outcome.detail}});
        audit(request, actor.common_name, role, route.action, outcome.status, outcome.detail);
      }
      return;
    } catch (const ApiError& e) {
      status = e.status();
      message = e.what();
    } catch (const Error& e) {
      status = http_status_of(e.code());
      message = status < 500 ? e.what() : "internal error; see the manager's log";
      if (status >= 500) {
        log.error("request failed", {{"action", route.action}, {"cause", e.what()}});
      }
    } catch (const std::exception& e) {
      message = "internal error; see the manager's log";
      log.error("request failed", {{"action", route.action}, {"cause", e.what()}});
    }
    refuse(request, response, status, message, actor.common_name, role, route.action);
  }

  // Responses without a body that cpp-httplib produced itself: no route, body too large,
  // malformed request.
  HandlerResponse on_error(const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) {
      return HandlerResponse::Unhandled;
    }
    std::string message;
    switch (response.status) {
      case 404:
        message = "no such route; see docs/api/secmgr.openapi.yaml";
        break;
      case 413:
        message = fmt::format("request body larger than {} bytes", max_body);
        break;
      case 414:
        message = "request URI too long";
        break;
      default:
        message = fmt::format("malformed request (HTTP {})", response.status);
        break;
    }
    const Authentication auth = authenticate(request);
    const std::string role = auth.actor ? std::string(to_string(auth.actor->role)) : "";
    const int status = response.status;
    refuse(request, response, status, message, auth.who, role, "http");
    return HandlerResponse::Handled;
  }
};

ApiServer::ApiServer(SecurityManager& manager, const ApiServerOptions& options, log::Logger logger,
                     metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(manager, std::move(logger), metrics)) {
  const std::vector<crypto::X509Ptr> trusted =
      crypto::certificates_from_pem(read_file(options.client_ca), options.client_ca.string());
  if (trusted.empty()) {
    throw Error(ErrorCode::kInvalidArgument, options.client_ca.string() + " holds no certificate");
  }
  impl_->ems_ca.reset(X509_dup(trusted.front().get()));
  std::vector<crypto::X509CrlPtr> crls;
  for (const auto& path : options.client_crls) {
    crls.push_back(crypto::crl_from_pem(read_file(path), path.string()));
  }
  const crypto::PkeyPtr key =
      crypto::private_key_from_pem(read_file(options.keyfile), nullptr, options.keyfile.string());
  const std::string certfile = options.certfile.string();
  bool configured = false;
  impl_->server = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    X509_STORE* store = X509_STORE_new();
    if (store == nullptr) {
      return false;
    }
    SSL_CTX_set_cert_store(&ctx, store);  // the context owns it from here
    for (const auto& cert : trusted) {
      X509_STORE_add_cert(store, cert.get());
    }
    for (const auto& crl : crls) {
      X509_STORE_add_crl(store, crl.get());
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    configured = SSL_CTX_set_min_proto_version(&ctx, TLS1_3_VERSION) == 1 &&
                 SSL_CTX_use_certificate_chain_file(&ctx, certfile.c_str()) == 1 &&
                 SSL_CTX_use_PrivateKey(&ctx, key.get()) == 1 &&
                 SSL_CTX_check_private_key(&ctx) == 1 &&
                 SSL_CTX_set_session_id_context(
                     &ctx, reinterpret_cast<const unsigned char*>(kSessionContext.data()),
                     static_cast<unsigned int>(kSessionContext.size())) == 1;
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, record_verdict);
    return configured;
  });
  if (!configured || !impl_->server->is_valid()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("cannot use {} and {} as the API's TLS identity", certfile,
                            options.keyfile.string()));
  }
  httplib::SSLServer& server = *impl_->server;
  const int threads = options.threads;
  server.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(threads));
  };
  impl_->max_body = options.max_body;
  server.set_payload_max_length(options.max_body);
  const auto io = std::chrono::duration_cast<std::chrono::microseconds>(options.io_timeout);
  server.set_read_timeout(io);
  server.set_write_timeout(io);
  server.set_socket_options([](int socket) {
    const int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  Impl* impl = impl_.get();
  // Refuse before a body is read: an unauthenticated client cannot make the server read it.
  server.set_pre_routing_handler(
      [impl](const httplib::Request& request, httplib::Response& response) {
        const Authentication auth = impl->authenticate(request);
        if (auth.actor) {
          return HandlerResponse::Unhandled;
        }
        impl->refuse(request, response, auth.status, auth.message, auth.who, "", "authenticate");
        return HandlerResponse::Handled;
      });
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [impl](const httplib::Request& request, httplib::Response& response) {
        return impl->on_error(request, response);
      }));
  for (const Route& route : impl_->routes) {
    const std::string pattern = path_regex(route.path);
    auto handler = [impl, &route](const httplib::Request& request, httplib::Response& response) {
      impl->serve(route, request, response);
    };
    if (route.method == "GET") {
      server.Get(pattern, handler);
    } else if (route.method == "POST") {
      server.Post(pattern, handler);
    } else if (route.method == "DELETE") {
      server.Delete(pattern, handler);
    }
  }
  if (options.port == 0) {
    impl_->port = server.bind_to_any_port(options.address);
  } else if (server.bind_to_port(options.address, options.port)) {
    impl_->port = options.port;
  } else {
    impl_->port = -1;
  }
  if (impl_->port <= 0) {
    throw Error(ErrorCode::kUnavailable,
                fmt::format("cannot listen on {} port {}", options.address, options.port));
  }
  impl_->thread = std::thread([impl] {
    impl->server->listen_after_bind();
    impl->finished = true;
  });
}

ApiServer::~ApiServer() {
  while (!impl_->finished) {
    impl_->server->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->thread.join();
}

int ApiServer::port() const {
  return impl_->port;
}

}  // namespace recmesh::secmgr
