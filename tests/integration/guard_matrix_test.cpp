// SPEC §6's matrix, generated from the derivation and enforced by recmesh-guard on real
// Mosquitto brokers: every identity publishes on every topic of the matrix; each message must
// reach exactly the identities whose grant lets them read it, and only if its publisher may
// write it. Subscriptions outside a grant are refused.
#include <set>

#include <fmt/format.h>

#include "recmesh/protocol/topics.hpp"

#include "guard_harness.hpp"

namespace recmesh::guard_test {
namespace {

using policy::BrokerId;
using policy::filter_matches;
using policy::MemberRegistration;

// A topic name a filter covers.
std::string concrete(std::string filter) {
  for (std::size_t pos = filter.find('+'); pos != std::string::npos; pos = filter.find('+')) {
    filter.replace(pos, 1, "INFO");
  }
  if (!filter.empty() && filter.back() == '#') {
    filter.replace(filter.size() - 1, 1, "snapshot");
  }
  return filter;
}

bool any_matches(const std::vector<std::string>& filters, const std::string& topic) {
  for (const auto& f : filters) {
    if (filter_matches(f, topic)) {
      return true;
    }
  }
  return false;
}

struct Party {
  policy::Grant grant;
  std::unique_ptr<GuardClient> client;
};

class GuardMatrixTest : public GuardFixture {
 protected:
  // Every party publishes every topic; checks deliveries against the grants.
  void check_matrix(std::vector<Party>& parties, const std::vector<std::string>& extra_topics) {
    std::set<std::string> universe(extra_topics.begin(), extra_topics.end());
    for (const auto& p : parties) {
      for (const auto& f : p.grant.publish) {
        universe.insert(concrete(f));
      }
      for (const auto& f : p.grant.subscribe) {
        universe.insert(concrete(f));
      }
    }
    std::erase_if(universe, [](const std::string& t) { return t.starts_with("$"); });

    // Subscriptions: own read filters granted; another row's filter that the grant does not
    // touch is refused.
    for (auto& p : parties) {
      for (const auto& f : p.grant.subscribe) {
        if (!f.starts_with("$")) {
          EXPECT_TRUE(p.client->subscribe(f)) << p.grant.identity << " may subscribe " << f;
        }
      }
      for (const auto& q : parties) {
        for (const auto& f : q.grant.subscribe) {
          bool touches = false;
          for (const auto& mine : p.grant.subscribe) {
            touches = touches || policy::filters_intersect(mine, f);
          }
          if (!touches && !f.starts_with("$")) {
            EXPECT_FALSE(p.client->subscribe(f)) << p.grant.identity << " must not subscribe " << f;
          }
        }
      }
      ASSERT_TRUE(p.client->subscribe("#")) << "a wide filter is admitted, delivery is checked";
      p.client->take_all();
    }

    std::map<std::string, std::set<std::string>> expected;
    std::size_t allowed_writes = 0;
    std::size_t refused_writes = 0;
    for (auto& p : parties) {
      for (const auto& topic : universe) {
        const std::string payload = p.grant.identity + "|" + topic;
        ASSERT_TRUE(p.client->publish(topic, payload)) << p.grant.identity << " " << topic;
        const bool may_write = any_matches(p.grant.publish, topic);
        (may_write ? allowed_writes : refused_writes) += 1;
        for (const auto& q : parties) {
          if (may_write && any_matches(q.grant.subscribe, topic)) {
            expected[q.grant.identity].insert(payload);
          }
        }
      }
    }
    EXPECT_GT(allowed_writes, 20u);
    EXPECT_GT(refused_writes, 50u);
    std::size_t security_events = 0;
    for (auto& p : parties) {
      std::set<std::string> got;
      // The guard's own reports of the refused writes reach the reader of security events.
      const auto collect = [&] {
        for (auto& m : p.client->take_all()) {
          if (m.payload.starts_with("{\"")) {
            EXPECT_NE(m.payload.find("\"type\":\"acl-denied\""), std::string::npos);
            ++security_events;
          } else {
            got.insert(m.payload);
          }
        }
      };
      const auto& want = expected[p.grant.identity];
      eventually([&] {
        collect();
        return got.size() >= want.size();
      });
      std::this_thread::sleep_for(300ms);  // anything more would be a leak
      collect();
      EXPECT_EQ(got, want) << p.grant.identity;
      EXPECT_FALSE(want.empty()) << p.grant.identity << " reads something in the matrix";
    }
    EXPECT_GT(security_events, 0u) << "refused writes are reported";
  }
};

TEST_F(GuardMatrixTest, LocalBrokerEnforcesEveryRow) {
  LocalBroker broker = local_broker("m1");
  const std::vector<MemberRegistration> members{{"r1", "m1", {"pv1", "bat1"}}};
  const auto bundle = matrix_bundle(BrokerId::local("r1", "m1"), members, 1);
  auto secmgr = publisher(broker.management, "secmgr-matrix");
  push_ok(*secmgr, bundle);

  std::vector<Party> parties;
  for (const auto& grant : bundle.grants) {
    auto identity = policy::parse_identity_key(grant.identity);
    ASSERT_TRUE(identity.ok());
    const std::string cn = identity->common_name;
    if (cn == "ems_secmgr") {
      continue;  // the publisher itself; its channel is tested in guard_policy_test
    }
    Cert cert;
    int port = broker.member;
    if (cn.starts_with("bridge_")) {
      cert = bridge("m1");
      port = broker.bridge;
    } else if (cn == "rec_r1_m1_gateway") {
      cert = gateway("m1");
    } else {
      cert = device("m1", cn.substr(std::string("rec_r1_m1_").size()));
    }
    auto client = std::make_unique<GuardClient>("matrix-" + cn);
    ASSERT_TRUE(client->connect(port, root_ca(), cert)) << cn;
    parties.push_back({grant, std::move(client)});
  }
  ASSERT_EQ(parties.size(), 4u);
  check_matrix(parties,
               {"/device/pv9/status", "/device/pv9/control", "/unlisted", "/r1/m1/control"});

  // Identities outside the matrix do not get in at all.
  GuardClient unregistered("matrix-pv9");
  EXPECT_FALSE(unregistered.connect(broker.member, root_ca(), device("m1", "pv9")));
  GuardClient engine("matrix-engine");
  EXPECT_FALSE(engine.connect(broker.management, root_ca(), service("engine")));
  EXPECT_TRUE(broker.process->wait_for_log("the policy grants this identity nothing", 3s));
}

TEST_F(GuardMatrixTest, CentralBrokerEnforcesEveryRow) {
  CentralBroker broker = central_broker();
  const std::vector<MemberRegistration> members{{"r1", "m1", {"pv1"}}, {"r1", "m2", {"meter"}}};
  const auto bundle = matrix_bundle(BrokerId::central(), members, 1);
  auto secmgr = publisher(broker.ems, "secmgr-matrix");
  push_ok(*secmgr, bundle);

  std::vector<Party> parties;
  for (const auto& grant : bundle.grants) {
    const std::string cn = policy::parse_identity_key(grant.identity)->common_name;
    if (cn == "ems_secmgr") {
      continue;
    }
    Cert cert;
    int port = broker.ems;
    if (cn.starts_with("bridge_")) {
      cert = bridge(cn.substr(std::string("bridge_r1_").size()));
      port = broker.bridge;
    } else {
      cert = service(cn.substr(4));
    }
    auto client = std::make_unique<GuardClient>("matrix-" + cn);
    ASSERT_TRUE(client->connect(port, root_ca(), cert)) << cn;
    parties.push_back({grant, std::move(client)});
  }
  ASSERT_EQ(parties.size(), 4u);  // two bridges, engine, log management
  check_matrix(parties, {"/r1/m3/control", "/r2/m1/metrics/snapshot", "/ems/other"});
}

// Regression: the engine subscribes once, when it starts. With its rows listing each member's
// exact topics, an engine that started before any member was registered had its subscriptions
// refused and never received the members registered later. Its rows are SPEC §6's wildcards now.
TEST_F(GuardMatrixTest, TheEngineSubscribedBeforeAnyMemberReceivesMembersRegisteredLater) {
  CentralBroker broker = central_broker();
  auto secmgr = publisher(broker.ems, "secmgr-empty");
  push_ok(*secmgr, matrix_bundle(BrokerId::central(), {}, 1));

  GuardClient engine("matrix-engine");
  ASSERT_TRUE(engine.connect(broker.ems, root_ca(), service("engine")));
  for (const auto& filter : protocol::ems_engine_subscriptions()) {
    EXPECT_TRUE(engine.subscribe(filter)) << filter;
  }
  EXPECT_TRUE(engine.subscribe(protocol::member_logs_subscription()));
  EXPECT_FALSE(engine.subscribe("/+/+/security/events")) << "log management's, not the engine's";

  push_ok(*secmgr, matrix_bundle(BrokerId::central(), {{"r1", "m1", {"pv1"}}}, 2));
  GuardClient m1_bridge("matrix-bridge-m1");
  ASSERT_TRUE(m1_bridge.connect(broker.bridge, root_ca(), bridge("m1")));
  ASSERT_TRUE(m1_bridge.publish("/r1/m1/metrics/snapshot", "sealed aggregate"));
  ASSERT_TRUE(m1_bridge.publish("/r1/m1/device/pv1/status", "online"));
  std::set<std::string> got;
  ASSERT_TRUE(eventually([&] {
    for (auto& m : engine.take_all()) {
      got.insert(m.topic + " " + m.payload);
    }
    return got.size() >= 2;
  })) << "the engine's subscriptions did not carry the member registered after them";
  EXPECT_EQ(got, (std::set<std::string>{"/r1/m1/metrics/snapshot sealed aggregate",
                                        "/r1/m1/device/pv1/status online"}));
}

}  // namespace
}  // namespace recmesh::guard_test
