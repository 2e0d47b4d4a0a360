#include "sim/attack_runner.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"

namespace recmesh::sim {

namespace fs = std::filesystem;

namespace {
// What the insiders publish to (device topics of devices the gateway does not know).
constexpr std::string_view kFloodTopic = "/device/flood/metrics/snapshot";
constexpr std::string_view kSpamTopic = "/device/spam/status/info";
}  // namespace

// One connection the attacker holds, with what it has seen so far.
struct AttackRunner::Attempt {
  std::unique_ptr<mqtt::MqttClient> client;
  std::vector<mqtt::EventLoop::TimerId> timers;
  std::function<void()> on_finish;
  bool finished = false;
  bool connected = false;
  std::string failure;
  std::uint64_t sent = 0;
  std::uint64_t acknowledged = 0;
  std::function<void()> tick;  // a flood's next burst; re-arms itself
};

AttackRunner::AttackRunner(mqtt::EventLoop& loop, pki::Pki& pki, fs::path dir)
    : loop_(loop), pki_(pki), dir_(std::move(dir)) {}

AttackRunner::~AttackRunner() {
  for (auto& attempt : attempts_) {
    for (const auto timer : attempt->timers) {
      loop_.cancel_timer(timer);
    }
    if (attempt->client) {
      attempt->client->abort();
    }
  }
}

pki::Pki& AttackRunner::foreign_pki(const AttackTarget& target) {
  if (!foreign_) {
    // Another organisation's hierarchy with the very same naming scheme: only the issuer differs.
    foreign_ = pki::Pki::create(dir_ / "foreign-pki", Secret("foreign pki passphrase, not ours"));
  }
  const auto has = [this](const std::string& id) {
    for (const auto& authority : foreign_->authorities()) {
      if (authority.id == id) {
        return true;
      }
    }
    return false;
  };
  if (!has(pki::authority_id(pki::AuthorityKind::kRec, target.rec))) {
    foreign_->add_rec(target.rec);
  }
  if (!has(pki::authority_id(pki::AuthorityKind::kMember, target.rec, target.member))) {
    foreign_->add_member(target.rec, target.member);
  }
  return *foreign_;
}

void AttackRunner::finish(Attempt* attempt) {
  if (attempt->finished) {
    return;
  }
  attempt->finished = true;
  for (const auto timer : attempt->timers) {
    loop_.cancel_timer(timer);
  }
  attempt->timers.clear();
  auto callback = std::move(attempt->on_finish);
  // The client may be inside one of its callbacks: release it from a posted task.
  loop_.post([this, attempt] {
    attempts_.remove_if([attempt](const auto& a) {
      if (a.get() == attempt && a->client) {
        a->client->abort();
      }
      return a.get() == attempt;
    });
  });
  if (callback) {
    callback();
  }
}

void AttackRunner::try_connect(const std::string& label, mqtt::MqttClientOptions options,
                               const std::function<void(bool, std::string)>& done) {
  auto attempt = std::make_unique<Attempt>();
  Attempt* a = attempt.get();
  options.clean_session = true;
  options.connect_timeout = std::chrono::milliseconds(5000);
  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [this, a] {
    a->connected = true;
    finish(a);
  };
  callbacks.on_connect_failed = [this, a](const Status& reason) {
    a->failure = reason.message;
    finish(a);
  };
  a->on_finish = [a, done, label] {
    spdlog::info("sim: attack {}: {}", label, a->connected ? "accepted" : "refused");
    done(a->connected, a->connected ? "session accepted" : a->failure);
  };
  try {
    a->client = std::make_unique<mqtt::MqttClient>(loop_, std::move(options), std::move(callbacks));
  } catch (const Error& e) {
    done(false, e.what());
    return;
  }
  a->timers.push_back(loop_.add_timer(std::chrono::seconds(8), [this, a] {
    a->failure = "no CONNACK within 8 s";
    finish(a);
  }));
  attempts_.push_back(std::move(attempt));
  a->client->start();
}

std::vector<InsiderIdentity> insider_identities(const Scenario& scenario) {
  std::vector<InsiderIdentity> out;
  for (const TimelineEvent& event : scenario.timeline) {
    if (event.action != FaultAction::kAttack || !event.attack) {
      continue;
    }
    InsiderIdentity insider{event.rec, event.member, "", ""};
    if (*event.attack == AttackKind::kPublishFlood) {
      insider.device = "flood";
      insider.topic = kFloodTopic;
    } else if (*event.attack == AttackKind::kRetainedSpam) {
      insider.device = "spam";
      insider.topic = fmt::format("{}/+", kSpamTopic);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), insider) == out.end()) {
      out.push_back(std::move(insider));
    }
  }
  return out;
}

mqtt::MqttClientOptions AttackRunner::insider(const AttackTarget& target,
                                              const std::string& device) {
  // A certificate the member's CA really issued, for a device the gateway does not know.
  const std::string cn = fmt::format("rec_{}_{}_{}", target.rec, target.member, device);
  pki::IssuedFiles files;
  try {
    files = pki_.files_of(pki_.find_by_common_name(cn));
  } catch (const Error&) {
    pki::IssueRequest request;
    request.identity =
        pki::Identity::make(pki::IdentityKind::kDevice, target.rec, target.member, device);
    files = pki_.issue(request).files;
  }
  mqtt::MqttClientOptions options;
  options.port = target.member_port;
  options.client_id = cn;
  options.cafile = target.member_cafile;
  options.certfile = files.chain;
  options.keyfile = files.key;
  options.max_pending_messages = 60000;
  options.max_inflight_messages = 100;
  return options;
}

void AttackRunner::run(const TimelineEvent& event, double at_s, const AttackTarget& target,
                       CommunityObserver& observer, const Done& done) {
  const std::string what = event.describe();
  switch (*event.attack) {
    case AttackKind::kForeignCa: {
      pki::Pki& foreign = foreign_pki(target);
      pki::IssueRequest request;
      request.identity =
          pki::Identity::make(pki::IdentityKind::kDevice, target.rec, target.member,
                              fmt::format("intruder{}", at_s > 0 ? static_cast<int>(at_s) : 0));
      const auto issued = foreign.issue(request);
      mqtt::MqttClientOptions options;
      options.port = target.member_port;
      options.client_id = issued.record.common_name;
      options.cafile = target.member_cafile;
      options.certfile = issued.files.chain;
      options.keyfile = issued.files.key;
      try_connect(what, options, [done, what, at_s](bool accepted, const std::string& why) {
        done({at_s, what,
              accepted ? "ACCEPTED: a foreign CA's certificate got a session on the member listener"
                       : "refused: " + why,
              !accepted});
      });
      return;
    }
    case AttackKind::kCollidingCn: {
      // The foreign PKI names its certificates exactly like ours: rec_<r>_<m>_gateway and
      // ems_engine. Only the issuing CA tells them apart.
      pki::Pki& foreign = foreign_pki(target);
      const auto issue = [&foreign](pki::IdentityKind kind, const std::string& rec,
                                    const std::string& member, const std::string& name) {
        const std::string cn = pki::Identity::make(kind, rec, member, name).common_name();
        try {
          return foreign.files_of(foreign.find_by_common_name(cn));
        } catch (const Error&) {
          pki::IssueRequest request;
          request.identity = pki::Identity::make(kind, rec, member, name);
          return foreign.issue(request).files;
        }
      };
      const auto gateway = issue(pki::IdentityKind::kGateway, target.rec, target.member, "");
      const auto engine = issue(pki::IdentityKind::kService, "", "", "engine");
      mqtt::MqttClientOptions local;
      local.port = target.member_port;
      local.client_id = fmt::format("rec_{}_{}_gateway-x", target.rec, target.member);
      local.cafile = target.member_cafile;
      local.certfile = gateway.chain;
      local.keyfile = gateway.key;
      mqtt::MqttClientOptions central;
      central.port = target.central_ems_port;
      central.client_id = "ems_engine-x";
      central.cafile = target.ems_cafile;
      central.certfile = engine.chain;
      central.keyfile = engine.key;
      try_connect(what + " (member listener)", local,
                  [this, central, done, what, at_s](bool local_ok, const std::string& local_why) {
                    try_connect(what + " (EMS listener)", central,
                                [done, what, at_s, local_ok, local_why](bool central_ok,
                                                                        const std::string& why) {
                                  const std::string outcome = fmt::format(
                                      "member listener: {}; EMS listener: {}",
                                      local_ok ? "ACCEPTED" : "refused (" + local_why + ")",
                                      central_ok ? "ACCEPTED" : "refused (" + why + ")");
                                  done({at_s, what, outcome, !local_ok && !central_ok});
                                });
                  });
      return;
    }
    case AttackKind::kPublishFlood:
      flood(event, at_s, target, observer, done);
      return;
    case AttackKind::kRetainedSpam:
      retained_spam(event, at_s, target, observer, done);
      return;
    case AttackKind::kReplayControl:
      replay(event, at_s, observer, done);
      return;
  }
}

void AttackRunner::flood(const TimelineEvent& event, double at_s, const AttackTarget& target,
                         CommunityObserver& observer, const Done& done) {
  auto attempt = std::make_unique<Attempt>();
  Attempt* a = attempt.get();
  const std::string what = event.describe();
  const std::string topic(kFloodTopic);
  const int rate = event.rate_per_s;
  const auto period = std::chrono::milliseconds(100);
  const int per_tick = std::max(1, rate / 10);
  a->tick = [this, a, topic, per_tick, period] {
    if (a->finished) {
      return;
    }
    for (int i = 0; i < per_tick; ++i) {
      if (a->client->publish(topic, R"({"flood":true})", 1, false)) {
        ++a->sent;
      }
    }
    a->timers.push_back(loop_.add_timer(period, [a] { a->tick(); }));
  };
  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [a] {
    if (!a->connected) {
      a->connected = true;
      a->tick();
    }
  };
  callbacks.on_connect_failed = [a](const Status& reason) { a->failure = reason.message; };
  callbacks.on_disconnect = [a](const Status& reason) { a->failure = reason.message; };
  callbacks.on_delivered = [a](mqtt::MessageId) { ++a->acknowledged; };
  auto options = insider(target, "flood");
  const std::string cn = options.client_id;
  const std::uint64_t events_before = observer.security_events_about(cn);
  a->on_finish = [a, done, what, at_s, &observer, cn, events_before] {
    const std::uint64_t events = observer.security_events_about(cn) - events_before;
    // A broker acknowledges a QoS 1 publish that its access control dropped (MQTT 3.1.1 has no
    // way to refuse one): the security events say whether the quota stopped the flood.
    const bool refused = !a->connected || a->acknowledged * 2 < a->sent || events > 0;
    done({at_s, what,
          fmt::format("{} publishes sent, {} acknowledged, {} security events about {}{}", a->sent,
                      a->acknowledged, events, cn,
                      a->failure.empty() ? "" : "; connection: " + a->failure),
          refused});
  };
  a->client = std::make_unique<mqtt::MqttClient>(loop_, std::move(options), std::move(callbacks));
  a->timers.push_back(
      loop_.add_timer(std::chrono::milliseconds(static_cast<int>(event.duration_s * 1000) + 2000),
                      [this, a] { finish(a); }));
  attempts_.push_back(std::move(attempt));
  a->client->start();
}

void AttackRunner::retained_spam(const TimelineEvent& event, double at_s,
                                 const AttackTarget& target, CommunityObserver& observer,
                                 const Done& done) {
  auto attempt = std::make_unique<Attempt>();
  Attempt* a = attempt.get();
  const std::string what = event.describe();
  const int count = event.count;
  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [a, count] {
    if (a->connected) {
      return;
    }
    a->connected = true;
    for (int i = 0; i < count; ++i) {
      if (a->client->publish(fmt::format("{}/{}", kSpamTopic, i), "spam", 1, true)) {
        ++a->sent;
      }
    }
  };
  callbacks.on_connect_failed = [a](const Status& reason) { a->failure = reason.message; };
  callbacks.on_disconnect = [a](const Status& reason) { a->failure = reason.message; };
  callbacks.on_delivered = [this, a](mqtt::MessageId) {
    if (++a->acknowledged == a->sent) {
      // The broker's security events cross the backbone to the observer in the meantime.
      a->timers.push_back(loop_.add_timer(std::chrono::seconds(3), [this, a] { finish(a); }));
    }
  };
  auto options = insider(target, "spam");
  const std::string cn = options.client_id;
  const std::uint64_t events_before = observer.security_events_about(cn);
  a->on_finish = [a, done, what, at_s, &observer, cn, events_before] {
    const std::uint64_t events = observer.security_events_about(cn) - events_before;
    done({at_s, what,
          fmt::format("{} retained messages sent, {} acknowledged, {} security events about {}{}",
                      a->sent, a->acknowledged, events, cn,
                      a->failure.empty() ? "" : "; connection: " + a->failure),
          !a->connected || a->acknowledged * 2 < a->sent || events > 0});
  };
  a->client = std::make_unique<mqtt::MqttClient>(loop_, std::move(options), std::move(callbacks));
  a->timers.push_back(loop_.add_timer(std::chrono::seconds(15), [this, a] { finish(a); }));
  attempts_.push_back(std::move(attempt));
  a->client->start();
}

void AttackRunner::replay(const TimelineEvent& event, double at_s, CommunityObserver& observer,
                          const Done& done) {
  const std::string what = event.describe();
  const auto captured = observer.last_control(event.member_label());
  if (!captured) {
    done({at_s, what, "nothing to replay: no control captured yet", false});
    return;
  }
  const std::string control_id = CommunityObserver::control_id_of(captured->second);
  const std::uint64_t before = observer.executions(control_id);
  (void)observer.client().publish(captured->first, captured->second, 1, false);
  auto attempt = std::make_unique<Attempt>();
  Attempt* a = attempt.get();
  a->on_finish = [&observer, done, what, at_s, control_id, before] {
    const std::uint64_t after = observer.executions(control_id);
    done({at_s, what,
          after > before
              ? fmt::format("EXECUTED AGAIN: control {} was run a second time", control_id)
              : fmt::format("control {} replayed; not executed again", control_id),
          after == before});
  };
  a->timers.push_back(loop_.add_timer(std::chrono::seconds(3), [this, a] { finish(a); }));
  attempts_.push_back(std::move(attempt));
}

}  // namespace recmesh::sim
