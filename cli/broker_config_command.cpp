// `recmesh broker-config`: renders a Mosquitto configuration from the PKI.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"

#include "command.hpp"

namespace recmesh::cli {
namespace {

struct BrokerConfigFlags {
  std::string pki_dir, passphrase_file, out_dir, rec, member, bridge_to, user;
  bool local = false;
  bool central = false;
  int member_port = 0, bridge_port = 0, ems_port = 0;
  std::optional<int> mgmt_port;
  std::string bind = "127.0.0.1";
  std::vector<std::string> sans;
  bool guard = false;  // the default; kept so that older command lines still work
  bool no_guard = false;
  std::string guard_plugin;
  std::string policy_file;
};

// recmesh-guard is loaded unless --no-guard, from --guard-plugin or the default path.
std::optional<broker::GuardPluginOptions> guard_options(const BrokerConfigFlags& f) {
  if (f.no_guard) {
    return std::nullopt;
  }
  broker::GuardPluginOptions out;
  out.plugin = f.guard_plugin.empty() ? broker::default_guard_plugin_path()
                                      : std::filesystem::path(f.guard_plugin);
  if (!f.policy_file.empty()) {
    out.seed_bundle = read_file(f.policy_file);
  }
  return out;
}

broker::BuiltinBridge parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw Error(ErrorCode::kInvalidArgument, "--bridge-to expects HOST:PORT");
  }
  broker::BuiltinBridge out{text.substr(0, colon), 0};
  try {
    std::size_t used = 0;
    out.port = std::stoi(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) {
      throw std::invalid_argument("trailing characters");
    }
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "--bridge-to expects HOST:PORT");
  }
  return out;
}

int run_broker_config(const BrokerConfigFlags& f) {
  if (f.local == f.central) {
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --local and --central");
  }
  std::vector<pki::SubjectAltName> sans;
  for (const auto& san : f.sans) {
    sans.push_back(pki::SubjectAltName::parse(san));
  }
  // The passphrase is needed only when a server certificate must be issued.
  std::optional<Secret> passphrase;
  try {
    passphrase = secret_from_file_or_env(f.passphrase_file, "RECMESH_PKI_PASSPHRASE");
  } catch (const Error& e) {
    if (!f.passphrase_file.empty()) {
      throw;
    }
  }
  pki::Pki pki = pki::Pki::open(f.pki_dir, pki::Pki::Access::kReadWrite, std::move(passphrase));
  broker::RenderedBroker rendered;
  if (f.local) {
    if (f.rec.empty() || f.member.empty() || f.member_port == 0 || f.bridge_port == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--local needs --rec, --member, --member-port and --bridge-port");
    }
    broker::LocalBrokerOptions options;
    options.rec = f.rec;
    options.member = f.member;
    options.member_port = f.member_port;
    options.bridge_port = f.bridge_port;
    options.management_port = f.mgmt_port;
    options.bind_address = f.bind;
    options.sans = sans;
    options.user = f.user;
    options.guard = guard_options(f);
    if (!f.bridge_to.empty()) {
      options.bridge_to = parse_host_port(f.bridge_to);
    }
    rendered = broker::render_local_broker(pki, options, f.out_dir);
  } else {
    if (f.ems_port == 0 || f.bridge_port == 0) {
      throw Error(ErrorCode::kInvalidArgument, "--central needs --ems-port and --bridge-port");
    }
    broker::CentralBrokerOptions options;
    options.ems_port = f.ems_port;
    options.bridge_port = f.bridge_port;
    options.bind_address = f.bind;
    options.sans = sans;
    options.user = f.user;
    options.guard = guard_options(f);
    rendered = broker::render_central_broker(pki, options, f.out_dir);
  }
  std::cout << fmt::format(
      "wrote {} for {}{}\n", rendered.config.string(), rendered.server_common_name,
      rendered.issued_server_certificate ? " (server certificate issued)" : "");
  for (const auto& l : rendered.listeners) {
    std::cout << fmt::format("  listener {:<10} {}:{}  accepts clients of CA {}\n", l.role,
                             l.bind_address, l.port, l.trusts);
  }
  if (rendered.guard_plugin) {
    std::cout << fmt::format(
        "  recmesh-guard {}{}\n", rendered.guard_plugin->string(),
        rendered.issued_secmgr_certificate ? " (Security Manager certificate issued)" : "");
    if (rendered.stored_policy_sequence) {
      std::cout << fmt::format("  policy {} {}\n", *rendered.stored_policy_sequence,
                               rendered.seeded_policy ? "seeded" : "kept (stored one is current)");
    } else {
      std::cout << "  no policy yet: every client is denied until the Security Manager pushes "
                   "one (register the broker) or --policy seeds it\n";
    }
  } else {
    std::cout << "  WARNING: no recmesh-guard (--no-guard): every authenticated client may "
                 "publish and subscribe to anything\n";
  }
  std::cout << fmt::format("start it with: mosquitto -c {}\n", rendered.config.string());
  return kExitOk;
}

}  // namespace

void add_broker_config_command(CLI::App& app, Runner& run) {
  auto f = std::make_shared<BrokerConfigFlags>();
  auto* cmd = app.add_subcommand(
      "broker-config",
      "Write a Mosquitto 2 configuration (mTLS listeners, one CA each, TLS 1.3, CRL) from the PKI");
  cmd->add_option("--pki", f->pki_dir, "PKI directory")->required();
  cmd->add_option("--passphrase-file", f->passphrase_file,
                  "CA passphrase, needed when the server certificate must be issued");
  cmd->add_option("--out", f->out_dir, "output directory")->required();
  auto* local = cmd->add_flag("--local", f->local, "a member's local broker");
  auto* central = cmd->add_flag("--central", f->central, "the platform's central broker");
  local->excludes(central);
  cmd->add_option("--rec", f->rec, "REC ID (--local)");
  cmd->add_option("--member", f->member, "member ID (--local)");
  cmd->add_option("--member-port", f->member_port, "devices and gateway listener (--local)");
  cmd->add_option("--mgmt-port", f->mgmt_port, "management listener for the Security Manager");
  cmd->add_option("--ems-port", f->ems_port, "EMS services listener (--central)");
  cmd->add_option("--bridge-port", f->bridge_port, "bridge backbone listener");
  cmd->add_option("--bind", f->bind, "address every listener binds to")->capture_default_str();
  cmd->add_option("--user", f->user,
                  "account Mosquitto runs as when started by root; it gets the files "
                  "(default mosquitto)");
  cmd->add_option("--san", f->sans, "extra SAN of a newly issued server certificate");
  cmd->add_option("--bridge-to", f->bridge_to,
                  "HOST:PORT of the central bridge listener: adds Mosquitto's built-in bridge "
                  "(--local)");
  auto* guard = cmd->add_flag("--guard", f->guard,
                              "load recmesh-guard (the default): identity by CA, run-time ACLs, "
                              "revocation, quotas; from <recmesh dir>/../lib/recmesh/");
  auto* plugin =
      cmd->add_option("--guard-plugin", f->guard_plugin, "load recmesh-guard from this path");
  auto* policy = cmd->add_option(
      "--policy", f->policy_file,
      "policy bundle signed by the Security Manager (recmesh sec broker bundle) to seed the "
      "guard's encrypted store with, so the broker starts with its rules");
  auto* no_guard = cmd->add_flag(
      "--no-guard", f->no_guard,
      "UNSAFE: no recmesh-guard, so no ACLs, revocation of connected clients or quotas "
      "(stock-Mosquitto comparisons and Dynamic Security brokers only)");
  no_guard->excludes(guard)->excludes(plugin)->excludes(policy);
  cmd->callback([f, &run] { run = [f] { return run_broker_config(*f); }; });
}

}  // namespace recmesh::cli
