// The generated Mosquitto configurations, run by the real broker: each listener admits the
// clients of exactly one CA, refuses revoked and expired certificates, and the built-in bridge
// carries a member's traffic to the central broker and back (SPEC §2, §3, §6).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "recmesh/core/clock.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/pki/pki.hpp"

#include "free_port.hpp"
#include "mosquitto_broker.hpp"
#include "mqtt_probe.hpp"
#include "recmesh_cli.hpp"
#include "temp_dir.hpp"
#include "test_community.hpp"

namespace recmesh {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pki::IdentityKind;

constexpr auto kDeliveryTimeout = 10s;

// The files a client presents, and the bundle it would use to verify its broker.
struct ClientFiles {
  std::string common_name;
  fs::path chain;  // leaf, then intermediates
  fs::path key;
  fs::path cafile;
};

struct LocalPorts {
  int member = testing::free_tcp_port();
  int bridge = testing::free_tcp_port();
  int management = testing::free_tcp_port();
};

struct CentralPorts {
  int ems = testing::free_tcp_port();
  int bridge = testing::free_tcp_port();
};

// A mosquitto.conf split into its global settings and one block per listener; the bridge
// section (from `connection` on) is kept apart.
struct ParsedConfig {
  struct Listener {
    std::vector<std::string> header;  // "listener", port, address
    std::map<std::string, std::string> settings;
  };
  std::map<std::string, std::string> global;
  std::vector<Listener> listeners;
  std::map<std::string, std::string> bridge;
};

// The value of `key`, or "<absent>".
std::string setting(const std::map<std::string, std::string>& settings, const std::string& key) {
  const auto it = settings.find(key);
  return it == settings.end() ? "<absent>" : it->second;
}

ParsedConfig parse_config(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot read " + path.string());
  }
  ParsedConfig config;
  enum class Section { kGlobal, kListener, kBridge } section = Section::kGlobal;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const auto space = line.find(' ');
    const std::string key = line.substr(0, space);
    const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    if (key == "listener") {
      section = Section::kListener;
      std::istringstream words(line);
      config.listeners.emplace_back();
      for (std::string word; words >> word;) {
        config.listeners.back().header.push_back(word);
      }
      continue;
    }
    if (key == "connection") {
      section = Section::kBridge;
    }
    switch (section) {
      case Section::kGlobal:
        config.global[key] = value;
        break;
      case Section::kListener:
        config.listeners.back().settings[key] = value;
        break;
      case Section::kBridge:
        config.bridge[key] = value;  // repeated `topic` lines: only the last is kept
        break;
    }
  }
  return config;
}

class BrokerListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::let_mosquitto_through(tmp_.path());
    pki::Pki pki = pki::Pki::create(pki_dir(), Secret(testing::kTestPassphrase));
    pki.add_rec("r1");
    pki.add_member("r1", "m1");
    pki.add_member("r1", "m2");
    root_ca_ = pki.authority_cert_path("root");
  }

  fs::path pki_dir() const { return tmp_ / "pki"; }

  // Issued through the library, which alone can back-date a certificate.
  ClientFiles issue(IdentityKind kind, const std::string& rec, const std::string& member,
                    const std::string& name, std::optional<Clock::TimePoint> not_before = {},
                    std::optional<int> days = {}) {
    pki::Pki pki =
        pki::Pki::open(pki_dir(), pki::Pki::Access::kReadWrite, Secret(testing::kTestPassphrase));
    pki::IssueRequest request;
    request.identity = pki::Identity::make(kind, rec, member, name);
    request.not_before = not_before;
    request.days = days;
    const pki::IssuedCertificate issued = pki.issue(request);
    return {issued.record.common_name, issued.files.chain, issued.files.key, issued.files.cafile};
  }
  ClientFiles device(const std::string& member, const std::string& name) {
    return issue(IdentityKind::kDevice, "r1", member, name);
  }
  ClientFiles gateway(const std::string& member) {
    return issue(IdentityKind::kGateway, "r1", member, "");
  }
  ClientFiles bridge(const std::string& member) {
    return issue(IdentityKind::kBridge, "r1", member, "");
  }
  ClientFiles service(const std::string& name) {
    return issue(IdentityKind::kService, "", "", name);
  }

  void recmesh_ok(const std::vector<std::string>& args) {
    const testing::CommandResult result = testing::run_recmesh(args);
    if (result.exit_code != 0) {
      std::string command = "recmesh";
      for (const auto& arg : args) {
        command += ' ' + arg;
      }
      throw std::runtime_error(command + " exited with " + std::to_string(result.exit_code) + ": " +
                               result.err);
    }
  }

  void revoke_certificate(const std::string& common_name) {
    recmesh_ok({"pki", "revoke", "--dir", pki_dir().string(), "--cn", common_name});
  }
  void revoke_member(const std::string& member) {
    recmesh_ok({"pki", "revoke", "--dir", pki_dir().string(), "--rec", "r1", "--member", member});
  }

  // `recmesh broker-config --local` for r1/m1; re-running it refreshes the CRLs in place.
  fs::path render_local(const LocalPorts& ports, bool management = false,
                        std::optional<int> bridge_to_port = {}) {
    const fs::path out = tmp_ / "local-r1-m1";
    std::vector<std::string> args{"broker-config", "--pki",     pki_dir().string(), "--local",
                                  "--rec",         "r1",        "--member",         "m1",
                                  "--out",         out.string()};
    args.insert(args.end(), {"--member-port", std::to_string(ports.member), "--bridge-port",
                             std::to_string(ports.bridge)});
    if (management) {
      args.insert(args.end(), {"--mgmt-port", std::to_string(ports.management)});
    }
    if (bridge_to_port) {
      args.insert(args.end(), {"--bridge-to", "127.0.0.1:" + std::to_string(*bridge_to_port)});
    }
    args.insert(args.end(),
                {"--policy", testing::write_signed_policy(tmp_ / "local.jws", pki_dir(),
                                                          policy::BrokerId::local("r1", "m1"),
                                                          registrations())});
    recmesh_ok(args);
    return out / "mosquitto.conf";
  }

  fs::path render_central(const CentralPorts& ports) {
    const fs::path out = tmp_ / "central";
    recmesh_ok({"broker-config", "--pki", pki_dir().string(), "--central", "--ems-port",
                std::to_string(ports.ems), "--bridge-port", std::to_string(ports.bridge), "--out",
                out.string(), "--policy",
                testing::write_signed_policy(tmp_ / "central.jws", pki_dir(),
                                             policy::BrokerId::central(), registrations())});
    return out / "mosquitto.conf";
  }

  // The members whose rules of SPEC §6 the brokers are seeded with (recmesh-guard).
  static std::vector<policy::MemberRegistration> registrations() {
    return {{"r1", "m1", {"battery1", "meter", "pv1", "pv2"}}, {"r1", "m2", {}}};
  }

  std::unique_ptr<testing::MosquittoBroker> start_local(const LocalPorts& ports,
                                                        bool management = false,
                                                        std::optional<int> bridge_to_port = {}) {
    std::vector<int> listening{ports.member, ports.bridge};
    if (management) {
      listening.push_back(ports.management);
    }
    return std::make_unique<testing::MosquittoBroker>(
        render_local(ports, management, bridge_to_port), listening);
  }

  std::unique_ptr<testing::MosquittoBroker> start_central(const CentralPorts& ports) {
    return std::make_unique<testing::MosquittoBroker>(render_central(ports),
                                                      std::vector<int>{ports.ems, ports.bridge});
  }

  // The client trusts the RootCA alone and so accepts every broker of the hierarchy: whatever
  // goes wrong is the broker's verdict on the client, never the client's on the broker.
  testing::ConnectOutcome connect_as(int port, const ClientFiles& client) {
    return testing::try_connect(port, root_ca_, client.chain, client.key, client.common_name);
  }

  ::testing::AssertionResult accepted_on(testing::MosquittoBroker& broker, int port,
                                         const ClientFiles& client) {
    const testing::ConnectOutcome outcome = connect_as(port, client);
    if (outcome.result == testing::ConnectResult::kAccepted) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << client.common_name << " on port " << port << ": " << outcome << "\nbroker log:\n"
           << broker.log();
  }

  ::testing::AssertionResult refused_on(testing::MosquittoBroker& broker, int port,
                                        const ClientFiles& client) {
    const testing::ConnectOutcome outcome = connect_as(port, client);
    if (outcome.result == testing::ConnectResult::kRefused) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << client.common_name << " on port " << port << ": "
                                         << outcome << " (expected refused)\nbroker log:\n"
                                         << broker.log();
  }

  testing::TempDir tmp_;
  fs::path root_ca_;
};

// --- local broker, member listener (member CA of r1/m1) ---------------------------------------

TEST_F(BrokerListenerTest, LocalMemberListenerAcceptsDeviceAndGatewayOfItsMember) {
  const ClientFiles meter = device("m1", "meter");
  const ClientFiles m1_gateway = gateway("m1");
  const LocalPorts ports;
  auto broker = start_local(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.member, meter));
  EXPECT_TRUE(accepted_on(*broker, ports.member, m1_gateway));
}

TEST_F(BrokerListenerTest, LocalMemberListenerRejectsDeviceOfAnotherMemberOfTheSameRec) {
  const ClientFiles own = device("m1", "meter");
  const ClientFiles neighbour = device("m2", "meter");
  const LocalPorts ports;
  auto broker = start_local(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.member, own));
  EXPECT_TRUE(refused_on(*broker, ports.member, neighbour));
}

TEST_F(BrokerListenerTest, LocalMemberListenerRejectsRevokedDevice) {
  const ClientFiles kept = device("m1", "pv1");
  const ClientFiles revoked = device("m1", "pv2");
  const LocalPorts ports;
  {
    // Before the revocation the certificate is good: the CRL is what turns it away below.
    auto broker = start_local(ports);
    ASSERT_TRUE(accepted_on(*broker, ports.member, revoked));
  }
  revoke_certificate(revoked.common_name);
  auto broker = start_local(ports);  // re-rendered: member-crl.pem now lists pv2

  EXPECT_TRUE(accepted_on(*broker, ports.member, kept));
  EXPECT_TRUE(refused_on(*broker, ports.member, revoked));
}

TEST_F(BrokerListenerTest, LocalMemberListenerRejectsExpiredDevice) {
  const ClientFiles current = device("m1", "battery1");
  const ClientFiles expired = issue(IdentityKind::kDevice, "r1", "m1", "battery2",
                                    SystemClock::instance().now() - std::chrono::days(30), 1);
  const LocalPorts ports;
  auto broker = start_local(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.member, current));
  EXPECT_TRUE(refused_on(*broker, ports.member, expired));
}

TEST_F(BrokerListenerTest, LocalMemberListenerRejectsBridgeCertificate) {
  const ClientFiles meter = device("m1", "meter");
  const ClientFiles m1_bridge = bridge("m1");
  const LocalPorts ports;
  auto broker = start_local(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.member, meter));
  EXPECT_TRUE(refused_on(*broker, ports.member, m1_bridge));
}

// --- local broker, bridge listener (Bridge CA) ------------------------------------------------

TEST_F(BrokerListenerTest, LocalBridgeListenerAcceptsBridgeCertificateOfItsMember) {
  const ClientFiles m1_bridge = bridge("m1");
  const LocalPorts ports;
  auto broker = start_local(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.bridge, m1_bridge));
}

TEST_F(BrokerListenerTest, LocalBridgeListenerRejectsMemberCaCertificates) {
  const ClientFiles m1_bridge = bridge("m1");
  const ClientFiles meter = device("m1", "meter");
  const ClientFiles m1_gateway = gateway("m1");
  const LocalPorts ports;
  auto broker = start_local(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.bridge, m1_bridge));
  EXPECT_TRUE(refused_on(*broker, ports.bridge, meter));
  EXPECT_TRUE(refused_on(*broker, ports.bridge, m1_gateway));
}

// --- local broker, management listener (EMS CA) -----------------------------------------------

TEST_F(BrokerListenerTest, ManagementListenerAcceptsSecurityManager) {
  const ClientFiles secmgr = service("secmgr");
  const LocalPorts ports;
  auto broker = start_local(ports, /*management=*/true);

  EXPECT_TRUE(accepted_on(*broker, ports.management, secmgr));
  // The member listener, whose CA did not issue it, does not take it.
  EXPECT_TRUE(refused_on(*broker, ports.member, secmgr));
}

TEST_F(BrokerListenerTest, ManagementListenerRejectsDevice) {
  const ClientFiles secmgr = service("secmgr");
  const ClientFiles meter = device("m1", "meter");
  const LocalPorts ports;
  auto broker = start_local(ports, /*management=*/true);

  EXPECT_TRUE(accepted_on(*broker, ports.management, secmgr));
  EXPECT_TRUE(accepted_on(*broker, ports.member, meter));
  EXPECT_TRUE(refused_on(*broker, ports.management, meter));
}

// --- central broker ----------------------------------------------------------------------------

TEST_F(BrokerListenerTest, CentralEmsListenerAcceptsEmsEngine) {
  const ClientFiles engine = service("engine");
  const CentralPorts ports;
  auto broker = start_central(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.ems, engine));
}

TEST_F(BrokerListenerTest, CentralEmsListenerRejectsBridgeCertificate) {
  const ClientFiles engine = service("engine");
  const ClientFiles m1_bridge = bridge("m1");
  const CentralPorts ports;
  auto broker = start_central(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.ems, engine));
  EXPECT_TRUE(refused_on(*broker, ports.ems, m1_bridge));
}

TEST_F(BrokerListenerTest, CentralEmsListenerRejectsMemberCertificates) {
  const ClientFiles engine = service("engine");
  const ClientFiles meter = device("m1", "meter");
  const ClientFiles m1_gateway = gateway("m1");
  const CentralPorts ports;
  auto broker = start_central(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.ems, engine));
  EXPECT_TRUE(refused_on(*broker, ports.ems, meter));
  EXPECT_TRUE(refused_on(*broker, ports.ems, m1_gateway));
}

TEST_F(BrokerListenerTest, CentralBridgeListenerAcceptsBridgeCertificate) {
  const ClientFiles m1_bridge = bridge("m1");
  const ClientFiles engine = service("engine");
  const CentralPorts ports;
  auto broker = start_central(ports);

  EXPECT_TRUE(accepted_on(*broker, ports.bridge, m1_bridge));
  // An EMS service belongs on the EMS listener, not on the backbone.
  EXPECT_TRUE(refused_on(*broker, ports.bridge, engine));
}

TEST_F(BrokerListenerTest, CentralBridgeListenerRejectsBridgeOfRevokedMember) {
  const ClientFiles m1_bridge = bridge("m1");
  const ClientFiles m2_bridge = bridge("m2");
  const CentralPorts ports;
  {
    auto broker = start_central(ports);
    ASSERT_TRUE(accepted_on(*broker, ports.bridge, m2_bridge));
  }
  // Revokes its member CA and every certificate naming r1/m2.
  revoke_member("m2");
  auto broker = start_central(ports);  // re-rendered: bridge-crl.pem now lists bridge_r1_m2

  EXPECT_TRUE(accepted_on(*broker, ports.bridge, m1_bridge));
  EXPECT_TRUE(refused_on(*broker, ports.bridge, m2_bridge));
}

// --- end to end through Mosquitto's built-in bridge ------------------------------------------

TEST_F(BrokerListenerTest, BuiltinBridgeCarriesGatewayMetricsUpAndEmsControlDown) {
  const ClientFiles m1_gateway = gateway("m1");
  const ClientFiles engine = service("engine");
  const CentralPorts central_ports;
  auto central = start_central(central_ports);
  const LocalPorts local_ports;
  auto local = start_local(local_ports, /*management=*/false, central_ports.bridge);
  ASSERT_TRUE(central->wait_for_log(" as bridge_r1_m1 ", kDeliveryTimeout))
      << "the bridge did not connect\ncentral log:\n"
      << central->log() << "\nlocal log:\n"
      << local->log();

  // Each client verifies its broker with the bundle the PKI issued alongside its certificate.
  testing::MqttTestClient ems(engine.common_name);
  const testing::ConnectOutcome ems_connected =
      ems.connect(central_ports.ems, engine.cafile, engine.chain, engine.key);
  ASSERT_TRUE(ems_connected.accepted()) << ems_connected;
  ASSERT_TRUE(ems.subscribe("/r1/m1/metrics/power", 1)) << ems.last_error();
  testing::MqttTestClient gw(m1_gateway.common_name);
  const testing::ConnectOutcome gw_connected =
      gw.connect(local_ports.member, m1_gateway.cafile, m1_gateway.chain, m1_gateway.key);
  ASSERT_TRUE(gw_connected.accepted()) << gw_connected;
  ASSERT_TRUE(gw.subscribe("/platform/control", 1)) << gw.last_error();

  const std::string metric = R"({"power_w":1234})";
  ASSERT_TRUE(gw.publish("/platform/metrics/power", metric, 1)) << gw.last_error();
  const auto up = ems.wait_for_message(kDeliveryTimeout);
  ASSERT_TRUE(up.has_value()) << "central log:\n"
                              << central->log() << "\nlocal log:\n"
                              << local->log();
  EXPECT_EQ(up->topic, "/r1/m1/metrics/power");
  EXPECT_EQ(up->payload, metric);
  EXPECT_EQ(up->qos, 1);

  // The bridge subscribed to /r1/m1/control on connecting, before it forwarded the metric over
  // the same connection; so the central broker now routes control to it.
  const std::string control = R"({"id":"c-1","action":"store-surplus"})";
  ASSERT_TRUE(ems.publish("/r1/m1/control", control, 1)) << ems.last_error();
  const auto down = gw.wait_for_message(kDeliveryTimeout);
  ASSERT_TRUE(down.has_value()) << "central log:\n"
                                << central->log() << "\nlocal log:\n"
                                << local->log();
  EXPECT_EQ(down->topic, "/platform/control");
  EXPECT_EQ(down->payload, control);
}

// --- the generated configuration itself -------------------------------------------------------

TEST_F(BrokerListenerTest, GeneratedConfigsHardenEveryListener) {
  const LocalPorts local_ports;
  const CentralPorts central_ports;
  const fs::path local = render_local(local_ports, true, central_ports.bridge);
  const fs::path central = render_central(central_ports);

  const std::map<fs::path, std::set<int>> expected_ports{
      {local, {local_ports.member, local_ports.bridge, local_ports.management}},
      {central, {central_ports.ems, central_ports.bridge}}};
  for (const auto& [path, ports] : expected_ports) {
    SCOPED_TRACE(path.string());
    const ParsedConfig config = parse_config(path);
    EXPECT_EQ(setting(config.global, "set_tcp_nodelay"), "true");
    std::set<int> seen;
    for (const auto& listener : config.listeners) {
      ASSERT_EQ(listener.header.size(), 3U) << "listener without an explicit bind address";
      SCOPED_TRACE("listener " + listener.header[1]);
      seen.insert(std::stoi(listener.header[1]));
      EXPECT_EQ(listener.header[2], "127.0.0.1");
      const auto& s = listener.settings;
      EXPECT_EQ(setting(s, "require_certificate"), "true");
      EXPECT_EQ(setting(s, "tls_version"), "tlsv1.3");
      EXPECT_EQ(setting(s, "allow_anonymous"), "false");
      // The CRL is what confines a listener to its one CA: its bundle ends in the RootCA, so
      // without the CRL check any certificate of the hierarchy would verify.
      EXPECT_TRUE(fs::is_regular_file(setting(s, "crlfile"))) << setting(s, "crlfile");
      EXPECT_TRUE(fs::is_regular_file(setting(s, "cafile"))) << setting(s, "cafile");
    }
    EXPECT_EQ(seen, ports);
  }
  const ParsedConfig local_config = parse_config(local);
  EXPECT_EQ(setting(local_config.bridge, "bridge_tls_version"), "tlsv1.3");
  EXPECT_EQ(setting(local_config.bridge, "bridge_insecure"), "false");
}

TEST_F(BrokerListenerTest, GeneratedKeyFilesAreOwnerOnly) {
  const LocalPorts local_ports;
  const CentralPorts central_ports;
  const fs::path local = render_local(local_ports, true, central_ports.bridge);
  const fs::path central = render_central(central_ports);

  std::set<fs::path> keys;
  for (const fs::path& path : {local, central}) {
    const ParsedConfig config = parse_config(path);
    for (const auto& listener : config.listeners) {
      keys.insert(setting(listener.settings, "keyfile"));
    }
    if (config.bridge.contains("bridge_keyfile")) {
      keys.insert(config.bridge.at("bridge_keyfile"));
    }
    for (const auto& entry : fs::directory_iterator(path.parent_path())) {
      if (entry.path().extension() == ".key") {
        keys.insert(entry.path());
      }
    }
  }
  EXPECT_EQ(keys.size(), 5U)
      << "two server keys, the bridge's client key and the guard's two policy-store keys";
  for (const fs::path& key : keys) {
    struct stat info {};
    ASSERT_EQ(::stat(key.c_str(), &info), 0) << key;
    EXPECT_EQ(info.st_mode & 07777, 0600U) << key;
  }
}

}  // namespace
}  // namespace recmesh
