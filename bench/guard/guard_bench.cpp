// Broker throughput with recmesh-guard against Mosquitto's Dynamic Security plugin and against
// no plugin, in the same run, with the same individual rules for every client; then the
// latency from a pushed rule change to its effect and from a pushed revocation to the kick
// (docs/benchmarks.md, section "guard").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <pwd.h>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

#include <climits>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/client_identity.hpp"
#include "recmesh/policy/guard_publisher.hpp"

#include "bench_command_line.hpp"
#include "bench_process.hpp"
#include "bench_stats.hpp"

namespace recmesh::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kDynsecPlugin =
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
constexpr std::size_t kPayloadBytes = 64;
constexpr double kTargetRatio = 0.95;

constexpr std::string_view kUsage =
    "usage: recmesh-bench-guard [--quick] [--clients N] [--messages N] [--repetitions N]\n"
    "                           [--samples N]\n";

struct Options {
  bool quick = false;
  int clients = 1000;   // devices, each with its own certificate and rules, plus one gateway
  int messages = 50;    // per device and QoS level
  int repetitions = 3;  // of each broker variant, in rotating order
  int samples = 30;     // latency samples of each kind
};

struct ClientFiles {
  std::string device;  // "" for the gateway
  fs::path chain;
  fs::path key;
};

// Every client on one event loop thread: the devices publish, the gateway receives.
class Fleet {
 public:
  Fleet() : thread_([this] { loop_.run(); }) {}
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;
  ~Fleet() {
    on_loop([this] {
      for (auto& c : clients_) {
        c->abort();
      }
      clients_.clear();
    });
    loop_.stop();
    thread_.join();
  }

  // Connects the gateway and every device to `port`; true when all are connected.
  bool connect(int port, const fs::path& cafile, const ClientFiles& gateway,
               const std::vector<ClientFiles>& devices, const std::vector<std::string>& filters) {
    disconnected_at_ = std::vector<std::atomic<std::int64_t>>(devices.size());
    on_loop([&] {
      clients_.push_back(make(port, cafile, gateway, -1));
      for (const auto& filter : filters) {
        (void)clients_.back()->subscribe(filter, 1);
      }
      clients_.back()->start();
    });
    // In waves, so the broker's accept backlog is not flooded with TLS handshakes.
    for (std::size_t i = 0; i < devices.size(); i += 50) {
      on_loop([&, i] {
        for (std::size_t j = i; j < std::min(devices.size(), i + 50); ++j) {
          clients_.push_back(make(port, cafile, devices[j], static_cast<int>(j)));
          clients_.back()->start();
        }
      });
      std::this_thread::sleep_for(20ms);
    }
    const auto deadline = SteadyClock::now() + 120s;
    while (connected_.load() < static_cast<int>(devices.size()) + 1 || !subscribed_) {
      if (SteadyClock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  // Every device publishes `messages` 64-byte messages at `qos`; messages per second received
  // by the gateway, from the first publish to the last delivery.
  double burst(int qos, int messages) {
    const std::string payload(kPayloadBytes, 'x');
    const std::uint64_t before = received_.load();
    const std::uint64_t expected = before + static_cast<std::uint64_t>(messages) *
                                                static_cast<std::uint64_t>(clients_.size() - 1);
    const auto start = SteadyClock::now();
    on_loop([&] {
      for (int m = 0; m < messages; ++m) {
        for (std::size_t i = 1; i < clients_.size(); ++i) {
          (void)clients_[i]->publish(topics_[i], payload, qos, false);
        }
      }
    });
    const auto deadline = start + 120s;
    while (received_.load() < expected && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    std::this_thread::sleep_for(200ms);  // let stragglers in, then read the last delivery
    const double seconds =
        std::chrono::duration<double>(
            SteadyClock::time_point(SteadyClock::duration(last_ns_.load())) - start)
            .count();
    const std::uint64_t got = received_.load() - before;
    if (got < expected - before) {
      fmt::print(stderr, "  warning: {} of {} messages delivered\n", got, expected - before);
    }
    return seconds > 0 ? static_cast<double>(got) / seconds : 0;
  }

  std::int64_t disconnected_ns(std::size_t device) const { return disconnected_at_[device].load(); }

 private:
  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               SteadyClock::now().time_since_epoch())
        .count();
  }

  std::unique_ptr<mqtt::MqttClient> make(int port, const fs::path& cafile, const ClientFiles& files,
                                         int device) {
    mqtt::MqttClientOptions o;
    o.port = port;
    o.client_id = device < 0 ? "bench-gateway" : "bench-" + files.device;
    o.cafile = cafile;
    o.certfile = files.chain;
    o.keyfile = files.key;
    o.keepalive = 60s;
    o.clean_session = true;
    o.max_pending_messages = 60000;
    o.reconnect.initial = 30s;
    o.reconnect.max = 60s;
    mqtt::MqttClientCallbacks cb;
    cb.on_connect = [this] { connected_.fetch_add(1); };
    if (device < 0) {
      cb.on_subscribe = [this](const std::string&, int granted) {
        subscribed_ = subscribed_ || granted != 128;
      };
      cb.on_message = [this](const mqtt::IncomingMessage&) {
        received_.fetch_add(1);
        last_ns_ = SteadyClock::now().time_since_epoch().count();
      };
      topics_.emplace_back();
    } else {
      cb.on_disconnect = [this, device](const Status&) {
        std::int64_t zero = 0;
        disconnected_at_[static_cast<std::size_t>(device)].compare_exchange_strong(zero, now_ns());
      };
      topics_.push_back(fmt::format("/device/{}/metrics/power", files.device));
    }
    return std::make_unique<mqtt::MqttClient>(loop_, o, std::move(cb));
  }

  template <typename F>
  void on_loop(F f) {
    std::promise<void> done;
    loop_.post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  mqtt::EventLoop loop_;
  std::vector<std::unique_ptr<mqtt::MqttClient>> clients_;  // [0] is the gateway
  std::vector<std::string> topics_;
  std::atomic<int> connected_{0};
  std::atomic<bool> subscribed_{false};
  std::atomic<std::uint64_t> received_{0};
  std::atomic<SteadyClock::rep> last_ns_{0};
  std::vector<std::atomic<std::int64_t>> disconnected_at_;
  std::thread thread_;
};

enum class Variant { kNone, kDynsec, kGuard };
constexpr std::string_view name_of(Variant v) {
  return v == Variant::kNone ? "none" : v == Variant::kDynsec ? "dynsec" : "guard";
}

// Dynamic Security with the same rules: one role per identity, ACLs from its grant. The gateway
// subscribes one wide filter (as with the guard) and each delivery is checked per device.
std::string dynsec_config(const std::vector<policy::DerivedGrant>& rows) {
  json clients = json::array();
  json roles = json::array();
  for (const auto& row : rows) {
    const auto identity = policy::parse_identity_key(row.grant.identity);
    if (!identity || identity->domain.kind != policy::DomainKind::kMember) {
      continue;
    }
    const std::string cn = identity->common_name;
    json acls = json::array();
    for (const auto& t : row.grant.publish) {
      acls.push_back({{"acltype", "publishClientSend"}, {"topic", t}, {"allow", true}});
    }
    for (const auto& t : row.grant.subscribe) {
      acls.push_back({{"acltype", "publishClientReceive"}, {"topic", t}, {"allow", true}});
      acls.push_back({{"acltype", "subscribePattern"}, {"topic", t}, {"allow", true}});
    }
    if (row.row == policy::MatrixRow::kGateway) {
      acls.push_back(
          {{"acltype", "subscribePattern"}, {"topic", "/device/+/metrics/#"}, {"allow", true}});
    }
    roles.push_back({{"rolename", cn}, {"acls", acls}});
    clients.push_back({{"username", cn}, {"roles", json::array({{{"rolename", cn}}})}});
  }
  return json{{"defaultACLAccess",
               {{"publishClientSend", false},
                {"publishClientReceive", false},
                {"subscribe", false},
                {"unsubscribe", true}}},
              {"clients", clients},
              {"groups", json::array()},
              {"roles", roles}}
      .dump();
}

void give_to_broker(const fs::path& path) {
  if (::geteuid() != 0) {
    return;
  }
  const passwd* account = ::getpwnam("mosquitto");
  if (account == nullptr || ::chown(path.c_str(), account->pw_uid, account->pw_gid) != 0) {
    throw Error(ErrorCode::kInternal, "cannot give " + path.string() + " to mosquitto");
  }
}

struct Setup {
  fs::path dir;
  std::optional<pki::Pki> pki;
  ClientFiles gateway;
  std::vector<ClientFiles> devices;
  std::vector<policy::DerivedGrant> rows;
  std::vector<policy::MemberRegistration> members;
  fs::path root_ca;
};

struct Rendered {
  fs::path config;
  std::vector<int> ports;
  int member_port = 0;
  int management_port = 0;
};

Rendered render(Setup& s, Variant variant) {
  Rendered r;
  broker::LocalBrokerOptions o;
  o.rec = "r1";
  o.member = "m1";
  o.member_port = r.member_port = free_tcp_port();
  o.bridge_port = free_tcp_port();
  r.ports = {o.member_port, o.bridge_port};
  if (variant == Variant::kGuard) {
    o.management_port = r.management_port = free_tcp_port();
    r.ports.push_back(r.management_port);
    o.guard = broker::GuardPluginOptions{RECMESH_GUARD_PLUGIN, 20};
  }
  const fs::path out = s.dir / fmt::format("broker-{}-{}", name_of(variant), r.member_port);
  const auto rendered = broker::render_local_broker(*s.pki, o, out);
  std::string text = read_file(rendered.config);
  // The same queue limits for every variant: nothing dropped for the one slow reader.
  text += "\nmax_queued_messages 0\n";
  if (variant == Variant::kDynsec) {
    const auto at = text.find("per_listener_settings true");
    text.replace(at, std::string_view("per_listener_settings true").size(),
                 "per_listener_settings false");
    write_file_atomic(out / "dynsec.json", dynsec_config(s.rows), 0600);
    give_to_broker(out / "dynsec.json");
    text += fmt::format("plugin {}\nplugin_opt_config_file {}\n", kDynsecPlugin,
                        (out / "dynsec.json").string());
  }
  write_file_atomic(rendered.config, text, 0644);
  give_to_broker(rendered.config);
  r.config = rendered.config;
  return r;
}

policy::PolicyBundle bundle_of(const Setup& s, std::uint64_t sequence) {
  policy::PolicyBundle b;
  b.broker = "local/r1/m1";
  b.sequence = sequence;
  for (const auto& row : s.rows) {
    b.grants.push_back(row.grant);
  }
  return b;
}

std::unique_ptr<policy::GuardPublisher> secmgr(const Setup& s, int port) {
  const auto record = s.pki->find_by_common_name("ems_secmgr");
  const auto files = s.pki->files_of(record);
  mqtt::MqttClientOptions o;
  o.port = port;
  o.client_id = fmt::format("bench-secmgr-{}", port);
  o.cafile = s.root_ca;
  o.certfile = files.chain;
  o.keyfile = files.key;
  return std::make_unique<policy::GuardPublisher>(
      policy::BundleSigner(crypto::JwsSigner::from_files(files.chain, files.key)), o);
}

void push(policy::GuardPublisher& publisher, const policy::PolicyBundle& bundle) {
  auto response = publisher.push(bundle, 10s);
  if (!response || !response->accepted) {
    throw Error(ErrorCode::kUnavailable,
                "bundle refused: " + (response ? response->reason : response.status().message));
  }
}

std::string gateway_filter() {
  return "/device/+/metrics/#";
}

struct Figures {
  std::map<std::pair<Variant, int>, std::vector<double>> throughput;  // (variant, qos)
  std::vector<double> rule_change_ms;
  std::vector<double> revoke_kick_ms;
};

void run_variant(Setup& s, Variant variant, const Options& o, Figures& f, bool latencies) {
  const Rendered r = render(s, variant);
  BrokerProcess broker(r.config, r.ports);
  std::unique_ptr<policy::GuardPublisher> publisher;
  std::uint64_t sequence = 1;
  if (variant == Variant::kGuard) {
    publisher = secmgr(s, r.management_port);
    push(*publisher, bundle_of(s, sequence++));
  }
  Fleet fleet;
  if (!fleet.connect(r.member_port, s.root_ca, s.gateway, s.devices, {gateway_filter()})) {
    throw Error(ErrorCode::kUnavailable,
                fmt::format("{}: not every client connected", name_of(variant)));
  }
  for (int qos : {0, 1}) {
    const double rate = fleet.burst(qos, o.messages);
    f.throughput[{variant, qos}].push_back(rate);
    fmt::print("  {:<7} QoS {}: {:>9.0f} msg/s\n", name_of(variant), qos, rate);
  }
  if (!latencies || variant != Variant::kGuard) {
    return;
  }
  // Rule change: d0 loses its metrics grant, then gets it back. Timed from the start of the
  // push (signing included) to the broker's answer, which it sends after the new policy is
  // installed: every decision after that point uses the new rules.
  policy::PolicyBundle cut = bundle_of(s, 0);
  for (auto& g : cut.grants) {
    if (g.identity == "member/r1/m1:rec_r1_m1_d0") {
      std::erase(g.publish, "/device/d0/metrics/#");
    }
  }
  for (int i = 0; i < o.samples; ++i) {
    cut.sequence = sequence++;
    const auto start = SteadyClock::now();
    push(*publisher, i % 2 == 0 ? cut : bundle_of(s, cut.sequence));
    f.rule_change_ms.push_back(
        std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count());
  }
  // Revocation: one more device revoked per sample; the time from the push to its disconnect.
  policy::PolicyBundle revoking = bundle_of(s, 0);
  for (int i = 0; i < o.samples && i + 1 < static_cast<int>(s.devices.size()); ++i) {
    const std::size_t victim = static_cast<std::size_t>(i) + 1;
    revoking.revocations.identities.push_back("member/r1/m1:rec_r1_m1_" + s.devices[victim].device);
    revoking.sequence = sequence++;
    const auto start = SteadyClock::now();
    const std::int64_t start_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
    push(*publisher, revoking);
    while (fleet.disconnected_ns(victim) == 0 && SteadyClock::now() - start < 5s) {
      std::this_thread::sleep_for(200us);
    }
    if (fleet.disconnected_ns(victim) != 0) {
      f.revoke_kick_ms.push_back(static_cast<double>(fleet.disconnected_ns(victim) - start_ns) /
                                 1e6);
    }
  }
}

int run(const Options& o) {
  if (!fs::exists(kDynsecPlugin)) {
    throw Error(ErrorCode::kNotFound,
                std::string(kDynsecPlugin) + " is missing (apt install mosquitto)");
  }
  const ScratchDirectory scratch("recmesh-bench-guard", ScratchDirectory::Access::kBrokers);
  Setup s;
  s.dir = scratch.path();

  fmt::print(
      "recmesh-guard vs Dynamic Security vs no plugin: {} devices with individual rules "
      "+ 1 gateway, {} x 64 B per device and QoS, {} repetition(s)\n",
      o.clients, o.messages, o.repetitions);
  s.pki.emplace(pki::Pki::create(s.dir / "pki", Secret("bench-guard-passphrase")));
  s.pki->add_rec("r1");
  s.pki->add_member("r1", "m1");
  s.root_ca = s.pki->authority_cert_path("root");
  std::vector<pki::IssueRequest> requests;
  policy::MemberRegistration member{"r1", "m1", {}};
  for (int i = 0; i < o.clients; ++i) {
    pki::IssueRequest request;
    request.identity =
        pki::Identity::make(pki::IdentityKind::kDevice, "r1", "m1", fmt::format("d{}", i));
    requests.push_back(request);
    member.devices.push_back(fmt::format("d{}", i));
  }
  pki::IssueRequest gw;
  gw.identity = pki::Identity::make(pki::IdentityKind::kGateway, "r1", "m1", "");
  requests.push_back(gw);
  const auto issued = s.pki->issue_many(requests);
  for (std::size_t i = 0; i < issued.size(); ++i) {
    ClientFiles files{i < member.devices.size() ? member.devices[i] : "", issued[i].files.chain,
                      issued[i].files.key};
    if (i < member.devices.size()) {
      s.devices.push_back(files);
    } else {
      s.gateway = files;
    }
  }
  s.members = {member};
  auto rows = policy::derive_access_matrix(policy::BrokerId::local("r1", "m1"), s.members);
  if (!rows) {
    throw Error(rows.status().code, rows.status().message);
  }
  s.rows = std::move(rows).value();

  Figures f;
  std::vector<Variant> order{Variant::kNone, Variant::kDynsec, Variant::kGuard};
  for (int rep = 0; rep < o.repetitions; ++rep) {
    fmt::print("repetition {}\n", rep + 1);
    for (Variant v : order) {
      run_variant(s, v, o, f, rep == o.repetitions - 1);
    }
    std::rotate(order.begin(), order.begin() + 1, order.end());
  }

  const auto tp = [&](Variant v, int qos) { return median(f.throughput[{v, qos}]); };
  const double ratio0 = tp(Variant::kGuard, 0) / tp(Variant::kDynsec, 0);
  const double ratio1 = tp(Variant::kGuard, 1) / tp(Variant::kDynsec, 1);
  const double guard_vs_dynsec = std::min(ratio0, ratio1);
  const double rule_p50 = percentile(f.rule_change_ms, 50);
  const double rule_p99 = percentile(f.rule_change_ms, 99);
  const double kick_p50 = percentile(f.revoke_kick_ms, 50);
  const double kick_p99 = percentile(f.revoke_kick_ms, 99);
  fmt::print("\nmedians (msg/s)      none       dynsec     guard\n");
  for (int qos : {0, 1}) {
    fmt::print("  QoS {}          {:>9.0f}  {:>9.0f}  {:>9.0f}\n", qos, tp(Variant::kNone, qos),
               tp(Variant::kDynsec, qos), tp(Variant::kGuard, qos));
  }
  fmt::print("guard / dynsec: QoS 0 {:.3f}, QoS 1 {:.3f} (target >= {})\n", ratio0, ratio1,
             kTargetRatio);
  fmt::print("guard / none:   QoS 0 {:.3f}, QoS 1 {:.3f}\n",
             tp(Variant::kGuard, 0) / tp(Variant::kNone, 0),
             tp(Variant::kGuard, 1) / tp(Variant::kNone, 1));
  fmt::print(
      "rule change to effect: p50 {:.1f} ms, p99 {:.1f} ms ({} samples, target p99 <= 100)\n",
      rule_p50, rule_p99, f.rule_change_ms.size());
  fmt::print(
      "revoke to disconnect:  p50 {:.1f} ms, p99 {:.1f} ms ({} samples, target p99 <= 1000)\n",
      kick_p50, kick_p99, f.revoke_kick_ms.size());
  const json summary{
      {"benchmark", "guard"},
      {"clients", o.clients},
      {"messages_per_client", o.messages},
      {"payload_bytes", kPayloadBytes},
      {"repetitions", o.repetitions},
      {"none_qos0_msg_per_s", tp(Variant::kNone, 0)},
      {"none_qos1_msg_per_s", tp(Variant::kNone, 1)},
      {"dynsec_qos0_msg_per_s", tp(Variant::kDynsec, 0)},
      {"dynsec_qos1_msg_per_s", tp(Variant::kDynsec, 1)},
      {"guard_qos0_msg_per_s", tp(Variant::kGuard, 0)},
      {"guard_qos1_msg_per_s", tp(Variant::kGuard, 1)},
      {"guard_vs_dynsec_qos0", ratio0},
      {"guard_vs_dynsec_qos1", ratio1},
      {"guard_vs_dynsec", guard_vs_dynsec},
      {"guard_vs_none_qos0", tp(Variant::kGuard, 0) / tp(Variant::kNone, 0)},
      {"guard_vs_none_qos1", tp(Variant::kGuard, 1) / tp(Variant::kNone, 1)},
      {"rule_change_p50_ms", rule_p50},
      {"rule_change_p99_ms", rule_p99},
      {"revoke_kick_p50_ms", kick_p50},
      {"revoke_kick_p99_ms", kick_p99},
      {"targets_met", guard_vs_dynsec >= kTargetRatio && rule_p99 <= 100 && kick_p99 <= 1000}};
  fmt::print("{}\n", summary.dump());
  return 0;
}

}  // namespace
}  // namespace recmesh::bench

int main(int argc, char** argv) {
  recmesh::bench::Options options;
  const recmesh::bench::BenchCommandLine command_line =
      recmesh::bench::BenchCommandLine("recmesh-bench-guard", std::string(recmesh::bench::kUsage))
          .on_quick([&] {
            options.quick = true;
            options.clients = 300;
            options.messages = 30;
            options.repetitions = 3;
            options.samples = 15;
          })
          .integer("--clients", 1, INT_MAX, [&](int n) { options.clients = n; })
          .integer("--messages", 1, INT_MAX, [&](int n) { options.messages = n; })
          .integer("--repetitions", 1, INT_MAX, [&](int n) { options.repetitions = n; })
          .integer("--samples", 1, INT_MAX, [&](int n) { options.samples = n; });
  if (const auto exit_code = command_line.parse(argc, argv)) {
    return *exit_code;
  }
  return command_line.run([&] { return recmesh::bench::run(options); });
}
