// Scenario files (docs/scenarios.md): the community to start and the timeline of faults and
// attacks to inject, read with the daemons' strict YAML readers.
#include "sim/scenario.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/policy/access_matrix.hpp"

#include "common/yaml_mapping_reader.hpp"

namespace recmesh::sim {
namespace {

using services::fail_at;
using services::MappingReader;
using Node = YAML::Node;
using Key = const std::string&;

constexpr int kMaxMembers = 10000;
constexpr int kMaxDevicesPerKind = 1000;
constexpr std::int64_t kHourMs = 3600000;

template <typename E>
struct Names {
  std::vector<std::pair<std::string_view, E>> items;

  std::string_view name(E value) const {
    for (const auto& [n, v] : items) {
      if (v == value) {
        return n;
      }
    }
    return "?";
  }
  std::string list() const {
    std::string out;
    for (const auto& [n, v] : items) {
      out += out.empty() ? "" : ", ";
      out += n;
    }
    return out;
  }
  E read(const MappingReader& r, std::string_view source, const Node& v, Key k) const {
    const std::string text = r.text(v, k);
    for (const auto& [n, value] : items) {
      if (n == text) {
        return value;
      }
    }
    fail_at(source, v, k, fmt::format("expected one of {}", list()));
  }
};

const Names<ComponentKind>& component_names() {
  static const Names<ComponentKind> names{{{"central-broker", ComponentKind::kCentralBroker},
                                           {"ems", ComponentKind::kEms},
                                           {"secmgr", ComponentKind::kSecmgr},
                                           {"local-broker", ComponentKind::kLocalBroker},
                                           {"bridge", ComponentKind::kBridge},
                                           {"gateway", ComponentKind::kGateway},
                                           {"devices", ComponentKind::kDevices}}};
  return names;
}

const Names<FaultAction>& action_names() {
  static const Names<FaultAction> names{{{"kill", FaultAction::kKill},
                                         {"stop", FaultAction::kStop},
                                         {"restart", FaultAction::kRestart},
                                         {"cut-backbone", FaultAction::kCutBackbone},
                                         {"restore-backbone", FaultAction::kRestoreBackbone},
                                         {"slow-backbone", FaultAction::kSlowBackbone},
                                         {"crash-devices", FaultAction::kCrashDevices},
                                         {"crash-device", FaultAction::kCrashDevice},
                                         {"attack", FaultAction::kAttack}}};
  return names;
}

const Names<AttackKind>& attack_names() {
  static const Names<AttackKind> names{{{"publish-flood", AttackKind::kPublishFlood},
                                        {"foreign-ca", AttackKind::kForeignCa},
                                        {"colliding-cn", AttackKind::kCollidingCn},
                                        {"replay-control", AttackKind::kReplayControl},
                                        {"retained-spam", AttackKind::kRetainedSpam}}};
  return names;
}

const Names<RestartPolicy>& restart_names() {
  static const Names<RestartPolicy> names{{{"never", RestartPolicy::kNever},
                                           {"on-failure", RestartPolicy::kOnFailure},
                                           {"always", RestartPolicy::kAlways}}};
  return names;
}

int millis(const MappingReader& r, const Node& v, Key k, std::int64_t min, std::int64_t max) {
  return static_cast<int>(r.integer(v, k, min, max));
}

DeviceCounts parse_devices(std::string_view source, const Node& node, Key prefix) {
  DeviceCounts counts;
  MappingReader r(source, node, prefix, {});
  const auto count = [&](int DeviceCounts::*field) {
    return [&r, &counts, field](const Node& v, Key k) {
      counts.*field = static_cast<int>(r.integer(v, k, 0, kMaxDevicesPerKind));
    };
  };
  r.on("pv", count(&DeviceCounts::pv));
  r.on("battery", count(&DeviceCounts::battery));
  r.on("controllable_load", count(&DeviceCounts::controllable_load));
  r.on("passive_load", count(&DeviceCounts::passive_load));
  r.on("smart_meter",
       [&](const Node& v, Key k) { counts.smart_meter = static_cast<int>(r.integer(v, k, 0, 1)); });
  r.read();
  if (counts.total() == 0) {
    fail_at(source, node, prefix, "a member needs at least one device");
  }
  if (static_cast<std::size_t>(counts.total()) > policy::kMaxDevicesPerMember) {
    fail_at(source, node, prefix,
            fmt::format("{} devices; a member registers at most {}", counts.total(),
                        policy::kMaxDevicesPerMember));
  }
  return counts;
}

MemberSpec parse_member(std::string_view source, const Node& node, Key prefix,
                        const std::string& rec) {
  MemberSpec member{rec, {}, {}};
  bool has_devices = false;
  MappingReader r(source, node, prefix, {});
  r.on("id", [&](const Node& v, Key k) { member.id = r.identifier(v, k); });
  r.on("devices", [&](const Node& v, Key k) {
    member.devices = parse_devices(source, v, k);
    has_devices = true;
  });
  r.read();
  if (member.id.empty()) {
    fail_at(source, node, prefix + ".id", "required");
  }
  if (!has_devices) {
    fail_at(source, node, prefix + ".devices", "required");
  }
  return member;
}

// `generate: {count: N, prefix: m, devices: {...}}` adds members m01 .. mN.
void parse_generated(std::string_view source, const Node& node, Key prefix, RecSpec& rec) {
  int count = 0;
  std::string name_prefix = "m";
  std::optional<DeviceCounts> devices;
  MappingReader r(source, node, prefix, {});
  r.on("count",
       [&](const Node& v, Key k) { count = static_cast<int>(r.integer(v, k, 1, kMaxMembers)); });
  r.on("prefix", [&](const Node& v, Key k) { name_prefix = r.identifier(v, k); });
  r.on("devices", [&](const Node& v, Key k) { devices = parse_devices(source, v, k); });
  r.read();
  if (count == 0) {
    fail_at(source, node, prefix + ".count", "required");
  }
  if (!devices) {
    fail_at(source, node, prefix + ".devices", "required");
  }
  const int width = std::max<int>(2, static_cast<int>(std::to_string(count).size()));
  if (name_prefix.size() + static_cast<std::size_t>(width) > 32) {
    fail_at(source, node, prefix + ".prefix", "too long for the member IDs it would make");
  }
  for (int i = 1; i <= count; ++i) {
    rec.members.push_back({rec.id, fmt::format("{}{:0{}}", name_prefix, i, width), *devices});
  }
}

RecSpec parse_rec(std::string_view source, const Node& node, Key prefix) {
  RecSpec rec;
  MappingReader r(source, node, prefix, {});
  // The ID first: members take it.
  if (node.IsMap() && node["id"]) {
    rec.id = r.identifier(node["id"], prefix + ".id");
  } else {
    fail_at(source, node, prefix + ".id", "required");
  }
  r.on("id", [](const Node&, Key) {});
  r.on("members", [&](const Node& v, Key k) {
    if (!v.IsSequence()) {
      fail_at(source, v, k, "expected a list of members");
    }
    std::size_t index = 0;
    for (const auto& item : v) {
      rec.members.push_back(parse_member(source, item, fmt::format("{}[{}]", k, index++), rec.id));
    }
  });
  r.on("generate", [&](const Node& v, Key k) { parse_generated(source, v, k, rec); });
  r.read();
  if (rec.members.empty()) {
    fail_at(source, node, prefix + ".members", "a REC needs at least one member");
  }
  std::set<std::string> seen;
  for (const auto& member : rec.members) {
    if (!seen.insert(member.id).second) {
      fail_at(source, node, prefix + ".members",
              fmt::format("member {} is defined twice", member.id));
    }
  }
  return rec;
}

TimelineEvent parse_event(std::string_view source, const Node& node, Key prefix) {
  TimelineEvent event;
  event.line = node.Mark().line + 1;
  bool has_at = false;
  bool has_action = false;
  std::set<std::string> given;
  MappingReader r(source, node, prefix, {});
  const auto mark = [&given](Key k) { given.insert(k.substr(k.rfind('.') + 1)); };
  r.on("at_s", [&](const Node& v, Key k) {
    event.at_s = r.number(v, k, 0, 31536000);
    has_at = true;
  });
  r.on("action", [&](const Node& v, Key k) {
    event.action = action_names().read(r, source, v, k);
    has_action = true;
  });
  r.on("component", [&](const Node& v, Key k) {
    event.component = component_names().read(r, source, v, k);
    mark(k);
  });
  r.on("rec", [&](const Node& v, Key k) {
    event.rec = r.identifier(v, k);
    mark(k);
  });
  r.on("member", [&](const Node& v, Key k) {
    event.member = r.identifier(v, k);
    mark(k);
  });
  r.on("attack", [&](const Node& v, Key k) {
    event.attack = attack_names().read(r, source, v, k);
    mark(k);
  });
  r.on("device", [&](const Node& v, Key k) {
    event.device = r.identifier(v, k);
    mark(k);
  });
  r.on("delay_ms", [&](const Node& v, Key k) {
    event.delay_ms = millis(r, v, k, 0, 60000);
    mark(k);
  });
  r.on("rate_per_s", [&](const Node& v, Key k) {
    event.rate_per_s = static_cast<int>(r.integer(v, k, 1, 100000));
    mark(k);
  });
  r.on("duration_s", [&](const Node& v, Key k) {
    event.duration_s = r.number(v, k, 0.1, 3600);
    mark(k);
  });
  r.on("count", [&](const Node& v, Key k) {
    event.count = static_cast<int>(r.integer(v, k, 1, 1000000));
    mark(k);
  });
  r.read();
  if (!has_at) {
    fail_at(source, node, prefix + ".at_s", "required");
  }
  if (!has_action) {
    fail_at(source, node, prefix + ".action", "required");
  }
  // Which keys each action takes; anything else is a mistake worth reporting.
  std::set<std::string> allowed;
  switch (event.action) {
    case FaultAction::kKill:
    case FaultAction::kStop:
    case FaultAction::kRestart:
      allowed = {"component", "rec", "member"};
      if (!event.component) {
        fail_at(source, node, prefix + ".component",
                fmt::format("required for {}: one of {}", to_string(event.action),
                            component_names().list()));
      }
      break;
    case FaultAction::kCutBackbone:
    case FaultAction::kRestoreBackbone:
    case FaultAction::kCrashDevices:
      allowed = {"rec", "member"};
      break;
    case FaultAction::kCrashDevice:
      allowed = {"rec", "member", "device"};
      if (event.device.empty()) {
        fail_at(source, node, prefix + ".device", "required for crash-device");
      }
      break;
    case FaultAction::kSlowBackbone:
      allowed = {"rec", "member", "delay_ms"};
      break;
    case FaultAction::kAttack:
      allowed = {"attack", "rec", "member", "rate_per_s", "duration_s", "count"};
      if (!event.attack) {
        fail_at(source, node, prefix + ".attack",
                fmt::format("required for attack: one of {}", attack_names().list()));
      }
      break;
  }
  for (const auto& key : given) {
    if (!allowed.contains(key)) {
      fail_at(source, node[key], fmt::format("{}.{}", prefix, key),
              fmt::format("not used by action {}", to_string(event.action)));
    }
  }
  return event;
}

// Cross-checks of the timeline against the community, in file order.
void check_timeline(std::string_view source, Scenario& scenario) {
  const auto fail = [&](const TimelineEvent& event, const std::string& key,
                        const std::string& problem) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}:{}: timeline.{}: {}", source, event.line, key, problem));
  };
  std::map<std::string, bool> cut;  // member label -> backbone cut at this point
  std::stable_sort(scenario.timeline.begin(), scenario.timeline.end(),
                   [](const auto& a, const auto& b) { return a.at_s < b.at_s; });
  for (auto& event : scenario.timeline) {
    if (scenario.duration_s > 0 && event.at_s >= scenario.duration_s) {
      fail(event, "at_s",
           fmt::format("{} s is not before the end of the run ({} s)", event.at_s,
                       scenario.duration_s));
    }
    const bool member_component = event.component && is_member_component(*event.component);
    const bool process_action = event.action == FaultAction::kKill ||
                                event.action == FaultAction::kStop ||
                                event.action == FaultAction::kRestart;
    const bool needs_member = member_component ||
                              (!process_action && event.action != FaultAction::kAttack) ||
                              (event.attack && *event.attack != AttackKind::kReplayControl);
    if (event.rec.empty() && (needs_member || !event.member.empty())) {
      if (scenario.recs.size() != 1) {
        fail(event, "rec", "required when the scenario has several RECs");
      }
      event.rec = scenario.recs.front().id;
    }
    if (needs_member && event.member.empty()) {
      fail(event, "member", fmt::format("required for {}", event.describe()));
    }
    if (event.component && !member_component && !event.member.empty()) {
      fail(event, "member",
           fmt::format("{} is not a member's component", to_string(*event.component)));
    }
    const MemberSpec* member =
        event.member.empty() ? nullptr : scenario.find_member(event.rec, event.member);
    if (!event.member.empty() && member == nullptr) {
      fail(event, "member",
           fmt::format("no member {}/{} in the scenario", event.rec, event.member));
    }
    if (!event.device.empty()) {
      const auto devices = member->device_list();
      if (std::none_of(devices.begin(), devices.end(),
                       [&event](const SimDevice& d) { return d.id == event.device; })) {
        fail(event, "device",
             fmt::format("{} has no device {}", event.member_label(), event.device));
      }
    }
    const std::string label = event.member_label();
    if (event.action == FaultAction::kCutBackbone) {
      if (cut[label]) {
        fail(event, "action", fmt::format("the backbone of {} is already cut", label));
      }
      cut[label] = true;
    } else if (event.action == FaultAction::kRestoreBackbone) {
      if (!cut[label]) {
        fail(event, "action", fmt::format("the backbone of {} is not cut", label));
      }
      cut[label] = false;
    }
  }
}

}  // namespace

std::string_view to_string(ComponentKind kind) {
  return component_names().name(kind);
}
std::string_view to_string(FaultAction action) {
  return action_names().name(action);
}
std::string_view to_string(AttackKind kind) {
  return attack_names().name(kind);
}

bool is_member_component(ComponentKind kind) {
  return kind != ComponentKind::kCentralBroker && kind != ComponentKind::kEms &&
         kind != ComponentKind::kSecmgr;
}

std::string TimelineEvent::describe() const {
  std::string out(to_string(action));
  if (attack) {
    out += fmt::format(" {}", to_string(*attack));
  }
  if (component) {
    out += fmt::format(" {}", to_string(*component));
  }
  if (!member.empty()) {
    out += " " + member_label();
  }
  if (!device.empty()) {
    out += "/" + device;
  }
  if (action == FaultAction::kSlowBackbone) {
    out += fmt::format(" +{} ms", delay_ms);
  }
  return out;
}

std::vector<SimDevice> MemberSpec::device_list() const {
  std::vector<SimDevice> out;
  const auto add = [&out](int count, std::string_view stem, protocol::DeviceKind kind) {
    for (int i = 1; i <= count; ++i) {
      out.push_back({fmt::format("{}{}", stem, i), kind});
    }
  };
  add(devices.pv, "pv", protocol::DeviceKind::kGenerator);
  add(devices.battery, "battery", protocol::DeviceKind::kAccumulator);
  add(devices.controllable_load, "load", protocol::DeviceKind::kLoad);
  add(devices.passive_load, "passive", protocol::DeviceKind::kPassiveLoad);
  if (devices.smart_meter > 0) {
    out.push_back({"meter", protocol::DeviceKind::kMeter});
  }
  return out;
}

std::size_t Scenario::member_count() const {
  std::size_t n = 0;
  for (const auto& rec : recs) {
    n += rec.members.size();
  }
  return n;
}

std::size_t Scenario::device_count() const {
  std::size_t n = 0;
  for (const auto& rec : recs) {
    for (const auto& member : rec.members) {
      n += static_cast<std::size_t>(member.devices.total());
    }
  }
  return n;
}

const MemberSpec* Scenario::find_member(std::string_view rec, std::string_view member) const {
  for (const auto& r : recs) {
    if (r.id != rec) {
      continue;
    }
    for (const auto& m : r.members) {
      if (m.id == member) {
        return &m;
      }
    }
  }
  return nullptr;
}

std::vector<const MemberSpec*> Scenario::members() const {
  std::vector<const MemberSpec*> out;
  for (const auto& rec : recs) {
    for (const auto& member : rec.members) {
      out.push_back(&member);
    }
  }
  return out;
}

Scenario parse_scenario(std::string_view yaml, std::string_view source) {
  Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}:{}: {}", source, e.mark.line + 1, e.msg));
  }
  Scenario s;
  MappingReader r(source, root, "", {});
  r.on("name", [&](const Node& v, Key k) { s.name = r.identifier(v, k); });
  r.on("seed", [&](const Node& v, Key k) {
    s.seed = static_cast<std::uint64_t>(r.integer(v, k, 0, std::int64_t{1} << 53));
  });
  r.on("duration_s", [&](const Node& v, Key k) { s.duration_s = r.number(v, k, 0, 31536000); });
  r.on("rates", [&](const Node& v, Key k) {
    MappingReader m(source, v, k, {});
    m.on("metrics_interval_ms",
         [&](const Node& x, Key kk) { s.metrics_interval_ms = millis(m, x, kk, 50, kHourMs); });
    m.on("aggregate_interval_ms",
         [&](const Node& x, Key kk) { s.aggregate_interval_ms = millis(m, x, kk, 100, kHourMs); });
    m.on("device_timeout_ms",
         [&](const Node& x, Key kk) { s.device_timeout_ms = millis(m, x, kk, 100, kHourMs); });
    m.read();
  });
  r.on("physics", [&](const Node& v, Key k) {
    MappingReader m(source, v, k, {});
    m.on("start_hour", [&](const Node& x, Key kk) { s.start_hour = m.number(x, kk, 0, 23.999); });
    m.on("time_scale", [&](const Node& x, Key kk) { s.time_scale = m.number(x, kk, 0, 1e5); });
    m.on("cloudiness", [&](const Node& x, Key kk) { s.cloudiness = m.number(x, kk, 0, 1); });
    m.on("crash_fraction",
         [&](const Node& x, Key kk) { s.crash_fraction = m.number(x, kk, 0, 1); });
    m.read();
  });
  r.on("ems", [&](const Node& v, Key k) {
    MappingReader m(source, v, k, {});
    m.on("policy_period_ms",
         [&](const Node& x, Key kk) { s.policy_period_ms = millis(m, x, kk, 0, 86400000); });
    m.on("control_timeout_ms",
         [&](const Node& x, Key kk) { s.control_timeout_ms = millis(m, x, kk, 100, kHourMs); });
    m.on("surplus_threshold_w",
         [&](const Node& x, Key kk) { s.surplus_threshold_w = m.number(x, kk, 0, 1e9); });
    m.on("deficit_threshold_w",
         [&](const Node& x, Key kk) { s.deficit_threshold_w = m.number(x, kk, 0, 1e9); });
    m.on("max_soc_percent",
         [&](const Node& x, Key kk) { s.max_soc_percent = m.number(x, kk, 0, 100); });
    m.on("min_soc_percent",
         [&](const Node& x, Key kk) { s.min_soc_percent = m.number(x, kk, 0, 100); });
    m.read();
    if (s.min_soc_percent >= s.max_soc_percent) {
      fail_at(source, v, k + ".min_soc_percent", "must be below max_soc_percent");
    }
    if (s.policy_period_ms > 0 && s.policy_period_ms < 100) {
      fail_at(source, v, k + ".policy_period_ms", "0 (off) or 100 .. 86400000");
    }
  });
  r.on("supervision", [&](const Node& v, Key k) {
    MappingReader m(source, v, k, {});
    m.on("restart",
         [&](const Node& x, Key kk) { s.restart = restart_names().read(m, source, x, kk); });
    m.on("max_restarts", [&](const Node& x, Key kk) {
      s.max_restarts = static_cast<int>(m.integer(x, kk, 0, 1000));
    });
    m.on("restart_delay_ms",
         [&](const Node& x, Key kk) { s.restart_delay_ms = millis(m, x, kk, 0, 600000); });
    m.on("startup_timeout_ms",
         [&](const Node& x, Key kk) { s.startup_timeout_ms = millis(m, x, kk, 1000, 600000); });
    m.read();
  });
  r.on("recs", [&](const Node& v, Key k) {
    if (!v.IsSequence() || v.size() == 0) {
      fail_at(source, v, k, "expected a non-empty list of RECs");
    }
    std::size_t index = 0;
    std::set<std::string> seen;
    for (const auto& item : v) {
      const std::string prefix = fmt::format("{}[{}]", k, index++);
      s.recs.push_back(parse_rec(source, item, prefix));
      if (!seen.insert(s.recs.back().id).second) {
        fail_at(source, item, prefix + ".id", "REC defined twice");
      }
    }
  });
  r.on("timeline", [&](const Node& v, Key k) {
    if (!v.IsSequence()) {
      fail_at(source, v, k, "expected a list of events");
    }
    std::size_t index = 0;
    for (const auto& item : v) {
      s.timeline.push_back(parse_event(source, item, fmt::format("{}[{}]", k, index++)));
    }
  });
  r.read();
  if (s.recs.empty()) {
    fail_at(source, root, "recs", "required: at least one REC with members");
  }
  if (s.member_count() > static_cast<std::size_t>(kMaxMembers)) {
    fail_at(source, root["recs"], "recs",
            fmt::format("{} members; at most {}", s.member_count(), kMaxMembers));
  }
  if (s.aggregate_interval_ms < s.metrics_interval_ms) {
    fail_at(source, root["rates"], "rates.aggregate_interval_ms",
            "must not be shorter than metrics_interval_ms");
  }
  check_timeline(source, s);
  return s;
}

Scenario load_scenario(const std::filesystem::path& file) {
  return parse_scenario(read_file(file), file.string());
}

Scenario demo_scenario(int members) {
  Scenario s;
  s.name = "demo";
  s.metrics_interval_ms = 2000;
  s.aggregate_interval_ms = 5000;
  s.policy_period_ms = 5000;
  s.control_timeout_ms = 20000;
  // A small threshold so that the policy acts within the first minute at any hour.
  s.surplus_threshold_w = 100;
  s.deficit_threshold_w = 100;
  RecSpec rec{"sun", {}};
  for (int i = 1; i <= members; ++i) {
    rec.members.push_back({"sun", fmt::format("m{:02}", i), DeviceCounts{1, 1, 1, 1, 1}});
  }
  s.recs.push_back(std::move(rec));
  return s;
}

}  // namespace recmesh::sim
