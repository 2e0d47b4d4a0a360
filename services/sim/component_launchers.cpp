#include "sim/component_launchers.hpp"

#include <cstdlib>
#include <random>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

#include "bridge/bridge_settings.hpp"
#include "sim/attack_runner.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;

ProcessSpec named_process(const SimPaths& paths, std::string name, ComponentKind kind,
                          std::string member, std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.name = std::move(name);
  spec.kind = kind;
  spec.member = std::move(member);
  spec.argv = std::move(argv);
  std::string file = spec.name;
  std::replace(file.begin(), file.end(), '/', '-');
  spec.log = paths.logs() / (file + ".log");
  return spec;
}

ProcessSpec recmesh_process(const SimPaths& paths, std::string name, ComponentKind kind,
                            std::string member, const std::string& command,
                            const fs::path& config) {
  return named_process(paths, std::move(name), kind, std::move(member),
                       {paths.recmesh.string(), command, "--config", config.string()});
}

ProcessSpec mosquitto_process(const SimPaths& paths, std::string name, ComponentKind kind,
                              std::string member, const fs::path& config, std::vector<int> ports) {
  ProcessSpec spec = named_process(paths, std::move(name), kind, std::move(member),
                                   {paths.mosquitto.string(), "-c", config.string()});
  spec.ports = std::move(ports);
  return spec;
}

// recmesh-guard from beside the recmesh executable the run uses (as broker-config finds it).
broker::GuardPluginOptions seeded_guard(const SimPaths& paths, const std::string& policy) {
  broker::GuardPluginOptions guard;
  guard.plugin = (paths.recmesh.parent_path() / ".." / "lib" / "recmesh" / "recmesh_guard.so")
                     .lexically_normal();
  guard.seed_bundle = policy;
  return guard;
}

}  // namespace

void issue_community(pki::Pki& pki, const Scenario& scenario) {
  std::vector<pki::IssueRequest> requests;
  const auto request = [&requests](pki::IdentityKind kind, const std::string& rec,
                                   const std::string& member, const std::string& name) {
    pki::IssueRequest r;
    r.identity = pki::Identity::make(kind, rec, member, name);
    requests.push_back(std::move(r));
  };
  for (const auto& rec : scenario.recs) {
    pki.add_rec(rec.id);
    std::vector<std::string> members;
    for (const auto& member : rec.members) {
      members.push_back(member.id);
    }
    pki.add_members(rec.id, members);
    for (const auto& member : rec.members) {
      // The local broker's server certificate too, so that rendering the broker finds it
      // instead of issuing it alone (a transaction of its own per member).
      request(pki::IdentityKind::kLocalBroker, rec.id, member.id, "");
      request(pki::IdentityKind::kGateway, rec.id, member.id, "");
      request(pki::IdentityKind::kBridge, rec.id, member.id, "");
      for (const auto& device : member.device_list()) {
        request(pki::IdentityKind::kDevice, rec.id, member.id, device.id);
      }
    }
  }
  for (const InsiderIdentity& insider : insider_identities(scenario)) {
    request(pki::IdentityKind::kDevice, insider.rec, insider.member, insider.device);
  }
  request(pki::IdentityKind::kCentralBroker, "", "", "");
  request(pki::IdentityKind::kService, "", "", "engine");
  request(pki::IdentityKind::kService, "", "", "sim");
  request(pki::IdentityKind::kService, "", "", "operator-sim");
  pki.issue_many(requests);
}

ProcessSpec launch_secmgr(const SimPaths& paths, const CentralPorts& ports) {
  const fs::path dir = paths.secmgr_dir();
  fs::create_directories(dir);
  // A push to a broker that is not up yet (every broker, while the community is registered)
  // gives up after connectors.timeout: short, so that registering a broker costs little. The
  // brokers start seeded with their bundle, so nothing waits for those pushes.
  const std::string yaml = fmt::format(
      "pki: {{dir: {}, passphrase_file: {}}}\ndatabase: {}\n"
      "api: {{port: {}, threads: 2}}\n"
      "connectors: {{timeout: 300ms, resync_interval: 0s}}\n"
      "device_quota: {{publish_per_second: {}, max_retained: {}}}\n",
      paths.pki().string(), paths.passphrase().string(), (dir / "secmgr.db").string(), ports.secmgr,
      kDevicePublishPerSecond, kDeviceMaxRetained);
  write_file_atomic(dir / "secmgr.yaml", yaml, 0640);
  ProcessSpec spec =
      recmesh_process(paths, "secmgr", ComponentKind::kSecmgr, "", "secmgr", dir / "secmgr.yaml");
  spec.ports = {ports.secmgr};
  return spec;
}

ProcessSpec launch_central_broker(pki::Pki& pki, const SimPaths& paths, const CentralPorts& ports,
                                  const std::string& policy) {
  broker::CentralBrokerOptions options;
  options.ems_port = ports.ems;
  options.bridge_port = ports.bridge;
  options.guard = seeded_guard(paths, policy);
  const auto rendered = broker::render_central_broker(pki, options, paths.dir / "central");
  return mosquitto_process(paths, "central-broker", ComponentKind::kCentralBroker, "",
                           rendered.config, {ports.ems, ports.bridge});
}

ProcessSpec launch_local_broker(pki::Pki& pki, const SimPaths& paths, const MemberSpec& member,
                                const MemberPorts& ports, const std::string& policy) {
  broker::LocalBrokerOptions options;
  options.rec = member.rec;
  options.member = member.id;
  options.member_port = ports.member;
  options.bridge_port = ports.bridge;
  options.management_port = ports.management;
  options.guard = seeded_guard(paths, policy);
  const auto rendered =
      broker::render_local_broker(pki, options, paths.member_dir(member) / "broker");
  return mosquitto_process(paths, member.label() + "/local-broker", ComponentKind::kLocalBroker,
                           member.label(), rendered.config,
                           {ports.member, ports.bridge, ports.management});
}

ProcessSpec launch_bridge(const pki::Pki& pki, const SimPaths& paths, const MemberSpec& member,
                          const MemberPorts& ports) {
  bridge::BridgeSettings settings;
  settings.rec = member.rec;
  settings.member = member.id;
  const auto files = pki.files_of(pki.find_by_common_name(settings.common_name()));
  settings.local.host = "127.0.0.1";
  settings.local.port = static_cast<std::uint16_t>(ports.bridge);
  settings.local.cafile = files.cafile;
  settings.local.certfile = files.chain;
  settings.local.keyfile = files.key;
  // The central broker, as the member sees it: through the proxy the timeline cuts and slows.
  settings.central = settings.local;
  settings.central.port = static_cast<std::uint16_t>(ports.proxy);
  const fs::path dir = paths.member_dir(member);
  settings.store_path = dir / "bridge.db";
  // A restored link is found within a second, not after the default 10 s backoff.
  settings.reconnect_initial = std::chrono::milliseconds(200);
  settings.reconnect_max = std::chrono::milliseconds(1000);
  write_file_atomic(dir / "bridge.yaml", bridge::bridge_schema().render_yaml(settings), 0640);
  ProcessSpec spec = recmesh_process(paths, member.label() + "/bridge", ComponentKind::kBridge,
                                     member.label(), "bridge", dir / "bridge.yaml");
  spec.ready_log = "connected broker=local";
  return spec;
}

ProcessSpec launch_gateway(const SimPaths& paths, const Scenario& scenario,
                           const MemberSpec& member, const MemberPorts& ports) {
  const fs::path dir = paths.member_dir(member);
  fs::create_directories(dir);
  std::string yaml = fmt::format(
      "rec: {}\nmember: {}\npki_dir: {}\nbroker: {{host: 127.0.0.1, port: {}}}\n"
      "database: {}\nmetrics_interval_ms: {}\ndevice_timeout_ms: {}\ndevices:\n",
      member.rec, member.id, paths.pki().string(), ports.member, (dir / "gateway.db").string(),
      scenario.aggregate_interval_ms, scenario.device_timeout_ms);
  for (const auto& device : member.device_list()) {
    yaml += fmt::format("  - {{id: {}, kind: {}}}\n", device.id, protocol::to_string(device.kind));
  }
  write_file_atomic(dir / "gateway.yaml", yaml, 0640);
  return recmesh_process(paths, member.label() + "/gateway", ComponentKind::kGateway,
                         member.label(), "gateway", dir / "gateway.yaml");
}

ProcessSpec launch_devices(const SimPaths& paths, const Scenario& scenario,
                           const MemberSpec& member, const MemberPorts& ports, std::uint64_t seed,
                           const std::map<std::string, protocol::Timestamp>& crash_at) {
  const fs::path dir = paths.member_dir(member);
  std::string yaml = fmt::format(
      "broker: {{host: 127.0.0.1, port: {}}}\npki_dir: {}\nrec: {}\nmember: {}\n"
      "metrics_interval_ms: {}\nseed: {}\ncrash_fraction: {}\nrun_length_s: {}\n"
      "start_hour: {}\ntime_scale: {}\ncloudiness: {}\ndevices:\n",
      ports.member, paths.pki().string(), member.rec, member.id, scenario.metrics_interval_ms, seed,
      scenario.crash_fraction,
      std::max<long>(1, static_cast<long>(scenario.duration_s > 0 ? scenario.duration_s : 3600)),
      scenario.start_hour, scenario.time_scale, scenario.cloudiness);
  for (const auto& device : member.device_list()) {
    const auto crash = crash_at.find(device.id);
    yaml += fmt::format("  - {{id: {}, kind: {}{}}}\n", device.id, protocol::to_string(device.kind),
                        crash == crash_at.end()
                            ? std::string()
                            : ", crash_at: " + protocol::format_timestamp(crash->second));
  }
  write_file_atomic(dir / "devices.yaml", yaml, 0640);
  return recmesh_process(paths, member.label() + "/devices", ComponentKind::kDevices,
                         member.label(), "device", dir / "devices.yaml");
}

ProcessSpec launch_ems(const SimPaths& paths, const Scenario& scenario, const CentralPorts& ports) {
  const fs::path dir = paths.dir / "ems";
  fs::create_directories(dir);
  const std::string yaml = fmt::format(
      "broker: {{host: 127.0.0.1, port: {}}}\npki_dir: {}\ndatabase: {}\n"
      "policy_period_ms: {}\ncontrol_timeout_ms: {}\ncontrol_ttl_ms: {}\n"
      "metrics_max_age_ms: {}\nsurplus_threshold_w: {}\ndeficit_threshold_w: {}\n"
      "max_soc_percent: {}\nmin_soc_percent: {}\n",
      ports.ems, paths.pki().string(), paths.ems_database().string(), scenario.policy_period_ms,
      scenario.control_timeout_ms, std::max(scenario.control_timeout_ms * 2, 60000),
      std::max(scenario.aggregate_interval_ms * 3, 10000), scenario.surplus_threshold_w,
      scenario.deficit_threshold_w, scenario.max_soc_percent, scenario.min_soc_percent);
  write_file_atomic(dir / "ems.yaml", yaml, 0640);
  return recmesh_process(paths, "ems", ComponentKind::kEms, "", "ems", dir / "ems.yaml");
}

std::string random_passphrase() {
  std::random_device random;
  std::string out;
  for (int i = 0; i < 32; ++i) {
    out += "0123456789abcdef"[random() % 16];
  }
  return out;
}

fs::path find_mosquitto() {
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest = path;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      fs::path candidate = fs::path(rest.substr(0, colon)) / "mosquitto";
      if (::access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
      rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    }
  }
  return "/usr/sbin/mosquitto";
}

}  // namespace recmesh::sim
