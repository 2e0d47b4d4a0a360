#pragma once

#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/pki/pki.hpp"

#include "sim/community_observer.hpp"
#include "sim/scenario.hpp"
#include "sim/sim_report.hpp"

namespace recmesh::sim {

// Where an attack is aimed.
struct AttackTarget {
  std::string rec;
  std::string member;
  int member_port = 0;                  // the member's local broker, member listener
  int central_ems_port = 0;             // the central broker's EMS listener
  std::filesystem::path member_cafile;  // what a client of the member listener trusts
  std::filesystem::path ems_cafile;     // what a client of the EMS listener trusts
};

// An insider of the timeline's floods and spam: a device certificate the member's CA really
// issued, registered with the Security Manager (so the device quota applies to it) and granted
// publishing on `topic` by a custom rule, so that what stops it is the quota, not the ACL.
struct InsiderIdentity {
  std::string rec;
  std::string member;
  std::string device;  // `flood` or `spam`
  std::string topic;   // the filter it publishes to

  bool operator==(const InsiderIdentity&) const = default;
};

// The insiders the timeline's publish-flood and retained-spam attacks use, without duplicates.
std::vector<InsiderIdentity> insider_identities(const Scenario& scenario);

// The attacker client of the timeline. Each attack runs on the simulator's loop and ends with
// one InjectedFault saying whether the platform refused it.
class AttackRunner {
 public:
  using Done = std::function<void(InjectedFault)>;

  // `pki` is the community's (for the insider identities of floods and spam); a foreign PKI is
  // created under `dir` on first use.
  AttackRunner(mqtt::EventLoop& loop, pki::Pki& pki, std::filesystem::path dir);
  ~AttackRunner();

  void run(const TimelineEvent& event, double at_s, const AttackTarget& target,
           CommunityObserver& observer, const Done& done);

 private:
  struct Attempt;

  // The foreign PKI, with a REC and member CA named like the target's.
  pki::Pki& foreign_pki(const AttackTarget& target);
  // Connects once with the given files; reports whether the broker accepted the session.
  void try_connect(const std::string& label, mqtt::MqttClientOptions options,
                   const std::function<void(bool accepted, std::string why)>& done);
  void flood(const TimelineEvent& event, double at_s, const AttackTarget& target,
             CommunityObserver& observer, const Done& done);
  void retained_spam(const TimelineEvent& event, double at_s, const AttackTarget& target,
                     CommunityObserver& observer, const Done& done);
  void replay(const TimelineEvent& event, double at_s, CommunityObserver& observer,
              const Done& done);
  mqtt::MqttClientOptions insider(const AttackTarget& target, const std::string& device);
  void finish(Attempt* attempt);

  mqtt::EventLoop& loop_;
  pki::Pki& pki_;
  std::filesystem::path dir_;
  std::optional<pki::Pki> foreign_;
  std::list<std::unique_ptr<Attempt>> attempts_;
};

}  // namespace recmesh::sim
