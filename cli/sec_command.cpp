// `recmesh sec ...`: operators' command line over the Security Manager's API (docs/secmgr.md).
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/pem.hpp"

#include "command.hpp"
#include "secmgr/api_client.hpp"

namespace recmesh::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using secmgr::url_encode;

struct SecFlags {
  std::string host = "127.0.0.1";
  int port = 8443;
  std::string pki_dir;
  std::string identity;
  std::string cafile;
  std::string certfile;
  std::string keyfile;
  std::string key_passphrase_file;
  bool json_output = false;
};

secmgr::ApiClient connect(const SecFlags& flags) {
  secmgr::ApiClientOptions options;
  options.host = flags.host;
  options.port = flags.port;
  const fs::path pki(flags.pki_dir);
  const fs::path issued = pki / "issued" / flags.identity;
  options.cafile =
      !flags.cafile.empty() ? fs::path(flags.cafile) : pki / "ca" / "ems" / "chain.pem";
  options.certfile = !flags.certfile.empty() ? fs::path(flags.certfile) : issued / "chain.pem";
  options.keyfile = !flags.keyfile.empty() ? fs::path(flags.keyfile) : issued / "key.pem";
  const bool derived = flags.cafile.empty() || flags.certfile.empty() || flags.keyfile.empty();
  if (derived && (flags.pki_dir.empty() || flags.identity.empty())) {
    throw Error(ErrorCode::kInvalidArgument,
                "give --cafile, --cert and --key, or --pki-dir and --identity to find them");
  }
  if (!flags.key_passphrase_file.empty()) {
    options.key_passphrase =
        std::make_shared<const Secret>(read_secret_file(flags.key_passphrase_file));
  }
  return secmgr::ApiClient(std::move(options));
}

// Scalars of an object as "key=value" pairs; nested values are left to --json.
std::string one_line(const json& object) {
  std::string out;
  for (const auto& [key, value] : object.items()) {
    if (value.is_structured() || key.ends_with("_pem")) {
      continue;
    }
    out += out.empty() ? "" : "  ";
    out += key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return out;
}

void print_human(const json& body) {
  if (body.is_object() && body.size() <= 2) {
    for (const auto& [key, value] : body.items()) {
      if (value.is_array() && key != "pushed") {
        for (const auto& item : value) {
          std::cout << (item.is_object() ? one_line(item) : item.dump()) << '\n';
        }
        if (value.empty()) {
          std::cout << "(none)\n";
        }
        return;
      }
    }
  }
  if (!body.is_object()) {
    std::cout << body.dump() << '\n';
    return;
  }
  std::cout << one_line(body) << '\n';
  for (const auto& [key, value] : body.items()) {
    if (value.is_array() && !value.empty()) {
      std::cout << key << ":\n";
      for (const auto& item : value) {
        std::cout << "  " << (item.is_object() ? one_line(item) : item.dump()) << '\n';
      }
    } else if (key == "pushed" && value.is_object() && !value.empty()) {
      for (const auto& [broker, result] : value.items()) {
        std::cout << "pushed to " << broker << ": " << result.get<std::string>() << '\n';
      }
    }
  }
}

// Prints the answer; the exit code follows the HTTP status.
int report(const secmgr::ApiResponse& response, const SecFlags& flags,
           const std::function<void(const json&)>& on_success = {}) {
  if (response.status == 0) {
    std::cerr << "recmesh: error: no answer from the Security Manager: " << response.error << '\n';
    return kExitFailed;
  }
  json body = json::parse(response.body, nullptr, false);
  if (!response.ok()) {
    const std::string message =
        body.is_object() && body.contains("error") && body["error"].is_string()
            ? body["error"].get<std::string>()
            : response.body.substr(0, 200);
    if (flags.json_output) {
      std::cout << response.body;
    }
    std::cerr << fmt::format("recmesh: error: HTTP {}: {}\n", response.status, message);
    return response.status == 400 ? kExitUsage : kExitFailed;
  }
  if (on_success) {
    on_success(body);
  }
  if (flags.json_output) {
    std::cout << body.dump(2) << '\n';
  } else {
    print_human(body);
  }
  return kExitOk;
}

using Action = std::function<int(secmgr::ApiClient&, const SecFlags&)>;

// Registers `cmd` to run `action` with a client built from the shared flags.
void on_run(CLI::App* cmd, Runner& run, const std::shared_ptr<SecFlags>& flags, Action action) {
  cmd->callback([&run, flags, action = std::move(action)] {
    run = [flags, action] {
      secmgr::ApiClient client = connect(*flags);
      return action(client, *flags);
    };
  });
}

std::string body_of(const std::map<std::string, std::optional<json>>& fields) {
  json out = json::object();
  for (const auto& [key, value] : fields) {
    if (value) {
      out[key] = *value;
    }
  }
  return out.dump();
}

std::string query_of(const std::map<std::string, std::string>& params) {
  std::string out;
  for (const auto& [key, value] : params) {
    if (!value.empty()) {
      out += (out.empty() ? "?" : "&") + key + "=" + url_encode(value);
    }
  }
  return out;
}

std::string member_path(const std::string& rec, const std::string& member) {
  return "/v1/recs/" + url_encode(rec) + "/members/" + url_encode(member);
}

struct Args {
  std::string a, b, c;
  std::string reason;
};

void add_registry_commands(CLI::App* sec, Runner& run, const std::shared_ptr<SecFlags>& flags) {
  auto args = std::make_shared<Args>();
  auto* rec = sec->add_subcommand("rec", "RECs")->require_subcommand(1);
  auto* rec_add = rec->add_subcommand("add", "Register a REC (creates its CA)");
  rec_add->add_option("rec", args->a, "REC ID")->required();
  on_run(rec_add, run, flags, [args](auto& c, const auto& f) {
    return report(c.post("/v1/recs", body_of({{"id", args->a}})), f);
  });
  auto* rec_list = rec->add_subcommand("list", "List RECs");
  on_run(rec_list, run, flags, [](auto& c, const auto& f) { return report(c.get("/v1/recs"), f); });
  auto* rec_show = rec->add_subcommand("show", "Show a REC and its members");
  rec_show->add_option("rec", args->a, "REC ID")->required();
  on_run(rec_show, run, flags, [args](auto& c, const auto& f) {
    return report(c.get("/v1/recs/" + url_encode(args->a)), f);
  });
  auto* rec_revoke = rec->add_subcommand("revoke", "Revoke a whole REC (every member and device)");
  rec_revoke->add_option("rec", args->a, "REC ID")->required();
  rec_revoke->add_option("--reason", args->reason, "RFC 5280 reason name");
  on_run(rec_revoke, run, flags, [args](auto& c, const auto& f) {
    return report(
        c.post("/v1/recs/" + url_encode(args->a) + "/revoke",
               body_of({{"reason", args->reason.empty() ? std::nullopt
                                                        : std::optional<json>(args->reason)}})),
        f);
  });

  auto* member = sec->add_subcommand("member", "Members of a REC")->require_subcommand(1);
  auto* member_add =
      member->add_subcommand("add", "Register a member (its CA and bridge identity)");
  member_add->add_option("rec", args->a, "REC ID")->required();
  member_add->add_option("member", args->b, "member ID")->required();
  on_run(member_add, run, flags, [args](auto& c, const auto& f) {
    return report(
        c.post("/v1/recs/" + url_encode(args->a) + "/members", body_of({{"id", args->b}})), f);
  });
  auto* member_list = member->add_subcommand("list", "List the members of a REC");
  member_list->add_option("rec", args->a, "REC ID")->required();
  on_run(member_list, run, flags, [args](auto& c, const auto& f) {
    return report(c.get("/v1/recs/" + url_encode(args->a) + "/members"), f);
  });
  auto* member_show = member->add_subcommand("show", "Show a member, its identities and brokers");
  member_show->add_option("rec", args->a, "REC ID")->required();
  member_show->add_option("member", args->b, "member ID")->required();
  on_run(member_show, run, flags, [args](auto& c, const auto& f) {
    return report(c.get(member_path(args->a, args->b)), f);
  });
  auto* member_revoke =
      member->add_subcommand("revoke", "Revoke a member: its CA and every identity it holds");
  member_revoke->add_option("rec", args->a, "REC ID")->required();
  member_revoke->add_option("member", args->b, "member ID")->required();
  member_revoke->add_option("--reason", args->reason, "RFC 5280 reason name");
  on_run(member_revoke, run, flags, [args](auto& c, const auto& f) {
    return report(
        c.post(member_path(args->a, args->b) + "/revoke",
               body_of({{"reason", args->reason.empty() ? std::nullopt
                                                        : std::optional<json>(args->reason)}})),
        f);
  });

  auto* device = sec->add_subcommand("device", "Devices of a member")->require_subcommand(1);
  auto* device_add =
      device->add_subcommand("add", "Register a device (ID `gateway` is the smart gateway)");
  device_add->add_option("rec", args->a, "REC ID")->required();
  device_add->add_option("member", args->b, "member ID")->required();
  device_add->add_option("device", args->c, "device ID")->required();
  on_run(device_add, run, flags, [args](auto& c, const auto& f) {
    return report(c.post(member_path(args->a, args->b) + "/devices", body_of({{"id", args->c}})),
                  f);
  });
  auto* device_list = device->add_subcommand("list", "List the devices of a member");
  device_list->add_option("rec", args->a, "REC ID")->required();
  device_list->add_option("member", args->b, "member ID")->required();
  on_run(device_list, run, flags, [args](auto& c, const auto& f) {
    return report(c.get(member_path(args->a, args->b) + "/devices"), f);
  });
  auto* device_show = device->add_subcommand("show", "Show a device, its certificates and rules");
  device_show->add_option("rec", args->a, "REC ID")->required();
  device_show->add_option("member", args->b, "member ID")->required();
  device_show->add_option("device", args->c, "device ID")->required();
  on_run(device_show, run, flags, [args](auto& c, const auto& f) {
    const std::string cn = fmt::format("rec_{}_{}_{}", args->a, args->b, args->c);
    return report(c.get("/v1/identities/" + url_encode(cn)), f);
  });

  auto* service = sec->add_subcommand("service", "EMS services")->require_subcommand(1);
  auto* service_add = service->add_subcommand("add", "Register an EMS service ems_<id>");
  service_add->add_option("service", args->a, "service ID")->required();
  on_run(service_add, run, flags, [args](auto& c, const auto& f) {
    return report(c.post("/v1/services", body_of({{"id", args->a}})), f);
  });
  auto* service_list = service->add_subcommand("list", "List EMS services");
  on_run(service_list, run, flags,
         [](auto& c, const auto& f) { return report(c.get("/v1/services"), f); });

  auto broker_args = std::make_shared<std::map<std::string, std::string>>();
  auto* broker =
      sec->add_subcommand("broker", "Brokers the policy is pushed to")->require_subcommand(1);
  auto* broker_add = broker->add_subcommand("add", "Register a broker by its server common name");
  broker_add->add_option("id", (*broker_args)["id"], "broker_<rec>_<member> or ems_<name>")
      ->required();
  broker_add->add_option("--host", (*broker_args)["host"], "Host of its management/EMS listener")
      ->default_val("127.0.0.1");
  broker_add->add_option("--port", (*broker_args)["port"], "Port of that listener")->required();
  broker_add
      ->add_option("--connector", (*broker_args)["connector"], "guard, dynsec, rabbitmq or none")
      ->default_val("guard");
  on_run(broker_add, run, flags, [broker_args](auto& c, const auto& f) {
    auto& a = *broker_args;
    json body = {{"id", a["id"]}, {"host", a["host"]}, {"connector", a["connector"]}};
    body["port"] = json::parse(a["port"], nullptr, false);
    return report(c.post("/v1/brokers", body.dump()), f);
  });
  auto* broker_list = broker->add_subcommand("list", "List brokers and their last push");
  on_run(broker_list, run, flags,
         [](auto& c, const auto& f) { return report(c.get("/v1/brokers"), f); });
  auto* broker_bundle = broker->add_subcommand(
      "bundle", "Write a guard broker's signed policy bundle, for broker-config --policy");
  broker_bundle->add_option("id", (*broker_args)["id"], "Broker ID")->required();
  broker_bundle->add_option("--out", (*broker_args)["out"], "File to write it to (0600)")
      ->required();
  on_run(broker_bundle, run, flags, [broker_args](auto& c, const auto& f) {
    auto& a = *broker_args;
    return report(c.get("/v1/brokers/" + url_encode(a["id"]) + "/bundle"), f,
                  [&a](const json& body) {
                    write_file_atomic(a["out"], body.at("bundle").get<std::string>(), 0600);
                  });
  });

  auto filter = std::make_shared<std::map<std::string, std::string>>();
  auto* identity = sec->add_subcommand("identity", "Registered identities")->require_subcommand(1);
  auto* identity_list = identity->add_subcommand("list", "List identities");
  identity_list->add_option("--rec", (*filter)["rec"], "Only this REC");
  identity_list->add_option("--member", (*filter)["member"], "Only this member");
  identity_list->add_option("--kind", (*filter)["kind"], "device, gateway, bridge or service");
  on_run(identity_list, run, flags, [filter](auto& c, const auto& f) {
    return report(c.get("/v1/identities" + query_of(*filter)), f);
  });
  auto* identity_show = identity->add_subcommand("show", "Show an identity by common name");
  identity_show->add_option("cn", args->a, "common name")->required();
  on_run(identity_show, run, flags, [args](auto& c, const auto& f) {
    return report(c.get("/v1/identities/" + url_encode(args->a)), f);
  });
}

struct CertArgs {
  std::string cn;
  std::string csr;
  std::string key_out;
  std::string key_passphrase_file;
  std::string out;
  int days = 0;
  std::string reason;
};

// The CSR to send: read from --csr, or made for a key generated into --key-out.
std::string csr_for(const CertArgs& args) {
  if (!args.csr.empty()) {
    return read_file(args.csr);
  }
  if (args.key_out.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "give --csr FILE, or --key-out FILE to generate a key and its CSR");
  }
  const crypto::PkeyPtr key = crypto::generate_p256_key();
  const std::string pem = args.key_passphrase_file.empty()
                              ? crypto::private_key_to_pem(key.get())
                              : crypto::private_key_to_encrypted_pem(
                                    key.get(), read_secret_file(args.key_passphrase_file));
  write_file_atomic(args.key_out, pem, 0600);
  return secmgr::make_csr_pem(key.get(), args.cn);
}

void add_cert_commands(CLI::App* sec, Runner& run, const std::shared_ptr<SecFlags>& flags) {
  auto* cert =
      sec->add_subcommand("cert", "Certificates of registered identities")->require_subcommand(1);
  for (const char* verb : {"issue", "renew"}) {
    auto args = std::make_shared<CertArgs>();
    const bool issue = std::string_view(verb) == "issue";
    auto* cmd = cert->add_subcommand(
        verb, issue ? "Issue a certificate for a registered identity (CN and EKU are the "
                      "manager's choice)"
                    : "Renew the certificate of an identity (the old one is superseded)");
    cmd->add_option("cn", args->cn, "common name of the registered identity")->required();
    cmd->add_option("--csr", args->csr, "PKCS#10 request (PEM)");
    cmd->add_option("--key-out", args->key_out, "Generate a P-256 key here (0600) and its CSR");
    cmd->add_option("--key-passphrase-file", args->key_passphrase_file,
                    "Encrypt the generated key with this passphrase file");
    cmd->add_option("--out", args->out, "Write the certificate chain here")->required();
    cmd->add_option("--days", args->days, "Lifetime in days (default: the PKI's leaf lifetime)");
    const std::string route = issue ? "/certificate" : "/renew";
    on_run(cmd, run, flags, [args, route](auto& c, const auto& f) {
      json body = {{"csr", csr_for(*args)}};
      if (args->days > 0) {
        body["days"] = args->days;
      }
      return report(c.post("/v1/identities/" + url_encode(args->cn) + route, body.dump()), f,
                    [args](const json& answer) {
                      write_file_atomic(args->out, answer.at("chain_pem").get<std::string>(), 0644);
                    });
    });
  }
  auto args = std::make_shared<CertArgs>();
  auto* revoke = cert->add_subcommand(
      "revoke", "Revoke an identity: its certificates, and its connections on every broker");
  revoke->add_option("cn", args->cn, "common name")->required();
  revoke->add_option("--reason", args->reason, "RFC 5280 reason name");
  on_run(revoke, run, flags, [args](auto& c, const auto& f) {
    json body = json::object();
    if (!args->reason.empty()) {
      body["reason"] = args->reason;
    }
    return report(c.post("/v1/identities/" + url_encode(args->cn) + "/revoke", body.dump()), f);
  });
}

struct RuleArgs {
  std::string identity;
  std::string broker;
  std::string permission;
  std::string topic;
  bool deny = false;
  std::string note;
  std::int64_t id = 0;
};

void add_rule_commands(CLI::App* sec, Runner& run, const std::shared_ptr<SecFlags>& flags) {
  auto args = std::make_shared<RuleArgs>();
  auto* rule =
      sec->add_subcommand("rule", "Custom rules on top of the derived ones")->require_subcommand(1);
  auto* add = rule->add_subcommand("add", "Add a rule; it is pushed to the brokers at once");
  add->add_option("--identity", args->identity, "Common name the rule applies to")->required();
  add->add_option("--permission", args->permission, "read (subscribe + receive) or write")
      ->required();
  add->add_option("--topic", args->topic, "Topic filter")->required();
  add->add_option("--broker", args->broker, "Broker ID; default every broker");
  add->add_flag("--deny", args->deny, "A deny rule (overrides derived allows)");
  add->add_option("--note", args->note, "Why the rule exists");
  on_run(add, run, flags, [args](auto& c, const auto& f) {
    json body = {{"identity", args->identity},
                 {"permission", args->permission},
                 {"topic", args->topic},
                 {"allow", !args->deny}};
    if (!args->broker.empty()) {
      body["broker"] = args->broker;
    }
    if (!args->note.empty()) {
      body["note"] = args->note;
    }
    return report(c.post("/v1/rules", body.dump()), f);
  });
  auto* list = rule->add_subcommand("list", "List custom rules");
  list->add_option("--identity", args->identity, "Only this identity");
  on_run(list, run, flags, [args](auto& c, const auto& f) {
    return report(c.get("/v1/rules" + query_of({{"identity", args->identity}})), f);
  });
  auto* remove = rule->add_subcommand("remove", "Remove a custom rule");
  remove->add_option("id", args->id, "Rule ID")->required();
  on_run(remove, run, flags, [args](auto& c, const auto& f) {
    return report(c.del(fmt::format("/v1/rules/{}", args->id)), f);
  });

  auto* push = sec->add_subcommand("push", "Push the policy to the brokers now");
  push->add_option("--broker", args->broker, "Only this broker");
  on_run(push, run, flags, [args](auto& c, const auto& f) {
    json body = json::object();
    if (!args->broker.empty()) {
      body["broker"] = args->broker;
    }
    return report(c.post("/v1/push", body.dump()), f);
  });

  auto query = std::make_shared<std::map<std::string, std::string>>();
  auto* audit = sec->add_subcommand("audit", "Read the audit log");
  audit->add_option("--after-id", (*query)["after_id"], "Entries after this ID");
  audit->add_option("--limit", (*query)["limit"], "At most this many (1..1000)");
  audit->add_option("--outcome", (*query)["outcome"], "ok, refused or failed");
  audit->add_option("--actor", (*query)["actor"], "Only this actor");
  on_run(audit, run, flags, [query](auto& c, const auto& f) {
    return report(c.get("/v1/audit" + query_of(*query)), f);
  });

  auto* whoami = sec->add_subcommand("whoami", "Show the identity and role the API sees");
  on_run(whoami, run, flags, [](auto& c, const auto& f) { return report(c.get("/v1/whoami"), f); });
}

}  // namespace

void add_sec_command(CLI::App& app, Runner& run) {
  auto flags = std::make_shared<SecFlags>();
  auto* sec =
      app.add_subcommand("sec", "Operate the Security Manager over its HTTPS API (docs/secmgr.md)");
  sec->require_subcommand(1);
  sec->add_option("--host", flags->host, "API host")->capture_default_str();
  sec->add_option("--port", flags->port, "API port")->capture_default_str();
  sec->add_option("--pki-dir", flags->pki_dir,
                  "PKI directory to take --cafile, --cert and --key from (with --identity)");
  sec->add_option("--identity", flags->identity,
                  "Common name of the client certificate under <pki-dir>/issued/");
  sec->add_option("--cafile", flags->cafile, "EMS CA chain that verifies the API");
  sec->add_option("--cert", flags->certfile, "Client certificate (EMS CA)");
  sec->add_option("--key", flags->keyfile, "Client key");
  sec->add_option("--key-passphrase-file", flags->key_passphrase_file,
                  "Passphrase of an encrypted client key");
  sec->add_flag("--json", flags->json_output, "Print the API's JSON answer");
  sec->fallthrough();
  add_registry_commands(sec, run, flags);
  add_cert_commands(sec, run, flags);
  add_rule_commands(sec, run, flags);
}

}  // namespace recmesh::cli
