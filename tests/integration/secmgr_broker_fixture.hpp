#pragma once

// A running Security Manager with one member (r1/m1: pv-1, load-1, the gateway and the bridge,
// each with a certificate issued through the API) and that member's local broker, rendered by
// `recmesh broker-config`'s library and registered with the manager under a connector.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <pwd.h>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "recmesh/broker/mosquitto_config.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/pki.hpp"
#include "recmesh/policy/access_matrix.hpp"
#include "recmesh/policy/policy_matcher.hpp"

#include "forged_certificate.hpp"
#include "free_port.hpp"
#include "mosquitto_broker.hpp"
#include "mqtt_probe.hpp"
#include "secmgr/dynsec_connector.hpp"
#include "secmgr_harness.hpp"

namespace recmesh::testing {

// A topic name that `filter` matches: wildcards filled with sample levels.
inline std::string concrete(const std::string& filter) {
  std::string out;
  for (char c : filter) {
    if (c == '+') {
      out += "x1";
    } else if (c == '#') {
      out += "x2";
    } else {
      out += c;
    }
  }
  return out;
}

class SecmgrBrokerFixture : public ::testing::Test {
 protected:
  struct Ports {
    int member = free_tcp_port();
    int bridge = free_tcp_port();
    int management = free_tcp_port();
  };

  static std::vector<std::string> local_identities() {
    return {"rec_r1_m1_pv-1", "rec_r1_m1_load-1", "rec_r1_m1_gateway", "bridge_r1_m1"};
  }

  // `connector`: dynsec (stock Mosquitto with the Dynamic Security plugin) or guard. `devices`
  // of r1/m1 are registered and `identities` enrolled before the broker is.
  void start_local(const std::string& connector,
                   const std::vector<std::string>& devices = {"pv-1", "load-1", "gateway"},
                   const std::vector<std::string>& identities = local_identities()) {
    let_mosquitto_through(sm_.dir().path());
    sm_.start();
    sm_.register_community("r1", "m1", devices);
    for (const auto& cn : identities) {
      enrol(cn);
    }
    render(connector);
    broker_ = std::make_unique<MosquittoBroker>(
        broker_dir() / "mosquitto.conf",
        std::vector<int>{ports_.member, ports_.bridge, ports_.management});
    const nlohmann::json added = sm_.post("/v1/brokers", {{"id", "broker_r1_m1"},
                                                          {"host", "127.0.0.1"},
                                                          {"port", ports_.management},
                                                          {"connector", connector}});
    ASSERT_EQ(added["pushed"]["broker_r1_m1"], "ok") << added << broker_->log();
  }

  std::filesystem::path broker_dir() const { return sm_.dir() / "broker"; }
  std::filesystem::path client_dir(const std::string& cn) const {
    return sm_.dir() / "clients" / cn;
  }

  // A key made here, a CSR without a CN, the chain from the API.
  void enrol(const std::string& cn) {
    const crypto::PkeyPtr key = crypto::generate_p256_key();
    create_directories(client_dir(cn), 0700);
    write_file_atomic(client_dir(cn) / "key.pem", crypto::private_key_to_pem(key.get()), 0600);
    const nlohmann::json issued = sm_.post("/v1/identities/" + cn + "/certificate",
                                           {{"csr", secmgr::make_csr_pem(key.get(), "")}});
    write_file_atomic(client_dir(cn) / "chain.pem", issued["chain_pem"].get<std::string>(), 0644);
  }

  // Connected (or not, see connected()) to the listener of its CA.
  std::unique_ptr<MqttTestClient> connect_client(const std::string& cn) {
    auto client = std::make_unique<MqttTestClient>(cn);
    const int port = cn.starts_with("bridge_") ? ports_.bridge : ports_.member;
    (void)client->connect(port, sm_.dir() / "pki" / "ca" / "member_r1_m1" / "chain.pem",
                          client_dir(cn) / "chain.pem", client_dir(cn) / "key.pem");
    return client;
  }

  // A certificate named `cn` signed by this member's CA outside the PKI's naming rules (what
  // the member can make), presented on the member listener.
  std::unique_ptr<MqttTestClient> connect_forged(const std::string& cn, ConnectOutcome& outcome) {
    const auto ca = sm_.dir() / "pki" / "ca" / "member_r1_m1";
    const auto forged =
        forge_client_certificate(ca, kTestPassphrase, cn, sm_.dir() / "forged" / cn);
    auto client = std::make_unique<MqttTestClient>("forged-" + cn);
    outcome = client->connect(ports_.member, ca / "chain.pem", forged.cert, forged.key);
    return client;
  }

  // The grants of this member's broker by common name, from the derived rules.
  static std::map<std::string, policy::Grant> local_grants() {
    const std::vector<policy::MemberRegistration> members = {{"r1", "m1", {"pv-1", "load-1"}}};
    auto derived = policy::derive_access_matrix(policy::BrokerId::local("r1", "m1"), members);
    std::map<std::string, policy::Grant> out;
    if (derived.ok()) {
      for (const auto& row : *derived) {
        out[row.grant.identity.substr(row.grant.identity.rfind(':') + 1)] = row.grant;
      }
    }
    return out;
  }

  void render(const std::string& connector) {
    pki::Pki pki = pki::Pki::open(sm_.pki(), pki::Pki::Access::kReadWrite,
                                  Secret(std::string(kTestPassphrase)));
    broker::LocalBrokerOptions options;
    options.rec = "r1";
    options.member = "m1";
    options.member_port = ports_.member;
    options.bridge_port = ports_.bridge;
    options.management_port = ports_.management;
    customise(options, connector);
    broker::render_local_broker(pki, options, broker_dir());
    if (connector == "dynsec") {
      use_dynsec();
    }
  }

  // Stock Mosquitto: one Dynamic Security plugin for all listeners, started with the manager's
  // bootstrap configuration.
  void use_dynsec() {
    const auto conf = broker_dir() / "mosquitto.conf";
    std::string text = read_file(conf);
    const std::string per_listener = "per_listener_settings true";
    text.replace(text.find(per_listener), per_listener.size(), "per_listener_settings false");
    const auto state = broker_dir() / "data" / "dynamic-security.json";
    write_file_atomic(state, secmgr::dynsec_bootstrap_config("ems_secmgr"), 0600);
    if (::geteuid() == 0) {
      const passwd* account = ::getpwnam("mosquitto");
      ASSERT_NE(account, nullptr);
      ASSERT_EQ(::chown(state.c_str(), account->pw_uid, account->pw_gid), 0);
    }
    text +=
        "\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
        "plugin_opt_config_file " +
        state.string() + "\n";
    write_file_atomic(conf, text, 0644);
  }

  // SPEC §6's matrix for this member, generated from the derived rules: every allowed
  // publication reaches its consumer, every other identity's attempt on the same topic does
  // not, and nobody subscribes to what it may not read.
  void expect_matrix_enforced() {
    const auto derived = local_grants();

    // Every identity of the member broker, connected on its listener.
    std::map<std::string, std::unique_ptr<MqttTestClient>> clients;
    for (const auto& cn : local_identities()) {
      clients[cn] = connect_client(cn);
      ASSERT_TRUE(clients[cn]->connected()) << cn;
    }
    std::vector<std::pair<std::string, const policy::Grant*>> grants;  // cn, grant
    for (const auto& [cn, grant] : derived) {
      if (clients.contains(cn)) {
        grants.emplace_back(cn, &grant);
      }
    }
    ASSERT_EQ(grants.size(), 4U);  // two devices, the gateway, the bridge on its listener

    int positive = 0;
    int negative = 0;
    std::set<std::string> subscribed;  // "cn filter"
    for (const auto& [producer, grant] : grants) {
      for (const std::string& filter : grant->publish) {
        const std::string topic = concrete(filter);
        // The consumer of this channel: an identity whose read rules match it.
        std::string consumer;
        std::string consumer_filter;
        for (const auto& [cn, other] : grants) {
          for (const std::string& f : other->subscribe) {
            if (cn != producer && consumer.empty() && policy::filter_matches(f, topic)) {
              consumer = cn;
              consumer_filter = f;
            }
          }
        }
        if (consumer.empty()) {
          continue;  // read only on the other side of the bridge
        }
        SCOPED_TRACE(producer + " -> " + topic + " -> " + consumer);
        MqttTestClient& reader = *clients[consumer];
        if (subscribed.insert(consumer + " " + consumer_filter).second) {
          ASSERT_TRUE(reader.subscribe(consumer_filter, 1)) << reader.last_error();
        }
        // Everyone else first: accepted at the TCP level, never delivered.
        for (const auto& [intruder, client] : clients) {
          if (intruder != producer) {
            client->publish(topic, "from " + intruder, 1);
            ++negative;
          }
        }
        ASSERT_TRUE(clients[producer]->publish(topic, "from " + producer, 1));
        std::optional<ReceivedMessage> got;
        while ((got = reader.wait_for_message(std::chrono::seconds(5)))) {
          if (got->topic == topic) {
            break;
          }
        }
        ASSERT_TRUE(got.has_value()) << "the allowed publication did not arrive";
        EXPECT_EQ(got->payload, "from " + producer) << "an identity without the right got through";
        ++positive;
      }
      // Subscriptions: to what it may not read, every identity is refused.
      for (const auto& [cn, other] : grants) {
        for (const std::string& filter : other->subscribe) {
          if (cn == producer) {
            continue;
          }
          // Unless it shares a topic with one of its own filters (the bridge's `/device/+/…` and
          // the gateway's per-device filters): recmesh-guard admits such a subscription and
          // checks each delivery.
          const bool may = std::any_of(
              grant->subscribe.begin(), grant->subscribe.end(),
              [&](const std::string& f) { return policy::filters_intersect(f, filter); });
          if (!may) {
            EXPECT_FALSE(clients[producer]->subscribe(filter, 1))
                << producer << " subscribed to " << filter << " of " << cn;
            ++negative;
          }
        }
      }
    }
    EXPECT_GT(positive, 15);
    EXPECT_GT(negative, 60);
  }

  // Hook for the guard variant (plugin options).
  virtual void customise(broker::LocalBrokerOptions& options, const std::string& connector) {
    (void)options;
    (void)connector;
  }

  SecmgrHarness sm_;
  Ports ports_;
  std::unique_ptr<MosquittoBroker> broker_;
};

}  // namespace recmesh::testing
