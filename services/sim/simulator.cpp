#include "sim/simulator.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <netinet/in.h>
#include <regex>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/loopback.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/pki/pki.hpp"

#include "sim/attack_runner.hpp"
#include "sim/backbone_proxy.hpp"
#include "sim/community_observer.hpp"
#include "sim/community_registration.hpp"
#include "sim/component_launchers.hpp"
#include "sim/process_supervisor.hpp"
#include "sim/sim_report.hpp"

namespace recmesh::sim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

bool log_contains(const fs::path& log, const std::string& needle) {
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// Sums the numbers a daemon logs at each clean stop ("gateway stopped: 12 aggregates, ...").
std::uint64_t sum_logged(const fs::path& log, const std::regex& pattern) {
  std::ifstream in(log);
  std::string line;
  std::uint64_t total = 0;
  std::smatch match;
  while (std::getline(in, line)) {
    if (std::regex_search(line, match, pattern)) {
      total += std::stoull(match[1].str());
    }
  }
  return total;
}

// Only a directory we made before (or an empty one) is wiped and reused.
void prepare_directory(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("{} is not a directory", dir.string()));
    }
    const bool ours = fs::exists(dir / "state.json", ec) || fs::is_empty(dir, ec);
    if (!ours) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("{} exists and is not a simulation directory (no state.json); "
                              "choose another --dir",
                              dir.string()));
    }
    fs::remove_all(dir, ec);
  }
  fs::create_directories(dir / "logs");
  // Mosquitto started as root reads its files as the account `mosquitto`.
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
}

class Simulation {
 public:
  Simulation(const Scenario& scenario, const SimOptions& options)
      : scenario_(scenario), options_(options) {
    duration_s_ = options.duration_s.value_or(scenario.duration_s);
    live_ = options.live_view.value_or(::isatty(STDOUT_FILENO) == 1);
    paths_.dir = fs::absolute(options.dir);
    paths_.recmesh = options.recmesh.empty() ? fs::read_symlink("/proc/self/exe") : options.recmesh;
    paths_.mosquitto = find_mosquitto();
    report_path_ =
        options.report.empty() ? paths_.dir / "report.json" : fs::absolute(options.report);
  }

  int run();

 private:
  struct Member {
    const MemberSpec* spec = nullptr;
    MemberPorts ports;
    std::unique_ptr<BackboneProxy> proxy;
    std::size_t broker = 0;
    std::size_t bridge = 0;
    std::size_t gateway = 0;
    std::size_t devices = 0;
    std::uint64_t seed = 0;
  };

  void prepare();
  // Ends the current start-up phase: logs and records how long it took since the last one.
  void phase_done(std::string name);
  // Starts the Security Manager, registers the community and returns the brokers' bundles.
  std::map<std::string, std::string> start_secmgr(const std::vector<BrokerRegistration>& brokers);
  void start_central();
  void wait_until_up(const std::vector<std::size_t>& processes, const std::function<void()>& then);
  void plan_device_crashes();
  void on_up();
  void tick();
  void inject(const TimelineEvent& event);
  std::optional<std::size_t> component_index(const TimelineEvent& event) const;
  void record_fault(const TimelineEvent& event, std::string outcome);
  void on_process_exit(const ProcessExit& exit, bool gave_up);
  void begin_stop(std::string reason, bool failure);
  void finish();
  void write_state(bool running);
  void show(const Sample& sample, const EmsView& view);
  double since_up() const;
  double since_start() const;
  SimReport build_report();

  const Scenario& scenario_;
  SimOptions options_;
  double duration_s_ = 0;
  bool live_ = false;
  SimPaths paths_;
  fs::path report_path_;
  mqtt::EventLoop loop_;
  std::optional<pki::Pki> pki_;
  CentralPorts central_ports_;
  std::vector<int> ports_;
  std::unique_ptr<ProcessSupervisor> supervisor_;
  std::size_t central_ = 0;
  std::size_t ems_ = 0;
  std::size_t secmgr_ = 0;
  std::vector<Member> members_;
  std::unique_ptr<CommunityObserver> observer_;
  std::unique_ptr<AttackRunner> attacker_;
  std::vector<mqtt::EventLoop::TimerId> timers_;
  std::vector<std::unique_ptr<std::function<void()>>> pollers_;
  mqtt::EventLoop::TimerId tick_timer_ = 0;
  mqtt::MonotonicClock::TimePoint started_;
  std::optional<mqtt::MonotonicClock::TimePoint> up_at_;
  mqtt::MonotonicClock::TimePoint phase_started_;
  std::vector<StartupPhase> phases_;
  bool stopping_ = false;
  bool failed_ = false;
  std::string stop_reason_;
  std::vector<InjectedFault> faults_;
  std::vector<ProcessExit> crashes_;
  std::vector<Sample> samples_;
  EmsView last_view_;
  std::uint64_t last_up_ = 0;
  std::uint64_t last_down_ = 0;
  int signal_fd_ = -1;
  int signals_seen_ = 0;
  int ticks_ = 0;
};

double Simulation::since_start() const {
  return std::chrono::duration<double>(loop_.now() - started_).count();
}

double Simulation::since_up() const {
  return up_at_ ? std::chrono::duration<double>(loop_.now() - *up_at_).count() : 0;
}

void Simulation::phase_done(std::string name) {
  const auto now = loop_.now();
  const double seconds = std::chrono::duration<double>(now - phase_started_).count();
  phase_started_ = now;
  spdlog::info("sim: startup: {} in {:.2f} s", name, seconds);
  phases_.push_back({std::move(name), seconds});
}

void Simulation::prepare() {
  phase_started_ = started_;
  prepare_directory(paths_.dir);
  const std::string passphrase = random_passphrase();
  write_file_atomic(paths_.passphrase(), passphrase, 0600);
  pki_ = pki::Pki::create(paths_.pki(), Secret(passphrase));
  issue_community(*pki_, scenario_);
  phase_done("pki");
  central_ports_ = {free_loopback_port(ports_), free_loopback_port(ports_),
                    free_loopback_port(ports_)};
  SupervisionPolicy policy;
  policy.restart = scenario_.restart;
  policy.max_restarts = scenario_.max_restarts;
  policy.restart_delay = std::chrono::milliseconds(scenario_.restart_delay_ms);
  policy.stop_grace = options_.stop_grace;
  supervisor_ = std::make_unique<ProcessSupervisor>(
      loop_, policy,
      [this](const ProcessExit& exit, bool gave_up) { on_process_exit(exit, gave_up); });
  std::vector<BrokerRegistration> brokers;
  const std::string central_id =
      pki::Identity::make(pki::IdentityKind::kCentralBroker, "", "", "").common_name();
  brokers.push_back({central_id, central_ports_.ems});
  for (const MemberSpec* spec : scenario_.members()) {
    Member member;
    member.spec = spec;
    member.ports = {free_loopback_port(ports_), free_loopback_port(ports_),
                    free_loopback_port(ports_), free_loopback_port(ports_)};
    brokers.push_back({pki::Identity::make(pki::IdentityKind::kLocalBroker, spec->rec, spec->id, "")
                           .common_name(),
                       member.ports.management});
    members_.push_back(std::move(member));
  }
  const auto bundles = start_secmgr(brokers);
  central_ = supervisor_->add(
      launch_central_broker(*pki_, paths_, central_ports_, bundles.at(central_id)));
  ems_ = supervisor_->add(launch_ems(paths_, scenario_, central_ports_));
  std::uint64_t seed = scenario_.seed;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    Member& member = members_[i];
    const MemberSpec* spec = member.spec;
    member.proxy =
        std::make_unique<BackboneProxy>(loop_, member.ports.proxy, central_ports_.bridge);
    fs::create_directories(paths_.member_dir(*spec));
    member.broker = supervisor_->add(
        launch_local_broker(*pki_, paths_, *spec, member.ports, bundles.at(brokers[i + 1].id)));
    member.bridge = supervisor_->add(launch_bridge(*pki_, paths_, *spec, member.ports));
    member.gateway = supervisor_->add(launch_gateway(paths_, scenario_, *spec, member.ports));
    member.seed = seed++;
    member.devices =
        supervisor_->add(launch_devices(paths_, scenario_, *spec, member.ports, member.seed));
  }
  phase_done("configurations");
  // The observer: an EMS-CA identity of its own, never the engine's.
  mqtt::MqttClientOptions observer;
  observer.port = central_ports_.ems;
  observer.client_id = "ems_sim";
  observer.cafile = pki_->authority_chain_path("ems");
  const auto files = pki_->files_of(pki_->find_by_common_name("ems_sim"));
  observer.certfile = files.chain;
  observer.keyfile = files.key;
  observer.reconnect.initial = std::chrono::milliseconds(200);
  observer_ = std::make_unique<CommunityObserver>(loop_, observer);
  attacker_ = std::make_unique<AttackRunner>(loop_, *pki_, paths_.dir / "attacker");
}

std::map<std::string, std::string> Simulation::start_secmgr(
    const std::vector<BrokerRegistration>& brokers) {
  secmgr_ = supervisor_->add(launch_secmgr(paths_, central_ports_));
  supervisor_->start(secmgr_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(scenario_.startup_timeout_ms);
  while (!loopback_accepts(central_ports_.secmgr)) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ErrorCode::kUnavailable,
                  fmt::format("the Security Manager did not open 127.0.0.1:{} within {} ms; see {}",
                              central_ports_.secmgr, scenario_.startup_timeout_ms,
                              supervisor_->spec(secmgr_).log.string()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  phase_done("security manager");
  secmgr::ApiClientOptions api;
  api.port = central_ports_.secmgr;
  api.cafile = pki_->authority_chain_path("ems");
  const auto files = pki_->files_of(pki_->find_by_common_name("ems_operator-sim"));
  api.certfile = files.chain;
  api.keyfile = files.key;
  secmgr::ApiClient client(api);
  register_community(client, scenario_);
  phase_done("registration");
  auto bundles = register_brokers(client, brokers);
  phase_done("policy bundles");
  return bundles;
}

void Simulation::wait_until_up(const std::vector<std::size_t>& processes,
                               const std::function<void()>& then) {
  const auto deadline = loop_.now() + std::chrono::milliseconds(scenario_.startup_timeout_ms);
  // Kept until the run ends: the poll re-arms itself through this pointer.
  pollers_.push_back(std::make_unique<std::function<void()>>());
  std::function<void()>* poll = pollers_.back().get();
  *poll = [this, processes, then, deadline, poll] {
    if (stopping_) {
      return;
    }
    for (const std::size_t index : processes) {
      const ProcessSpec& spec = supervisor_->spec(index);
      std::string missing;
      for (const int port : spec.ports) {
        if (missing.empty() && !loopback_accepts(port)) {
          missing = fmt::format("open 127.0.0.1:{}", port);
        }
      }
      if (missing.empty() && !spec.ready_log.empty() && !log_contains(spec.log, spec.ready_log)) {
        missing = fmt::format("log \"{}\"", spec.ready_log);
      }
      if (missing.empty()) {
        continue;
      }
      if (loop_.now() > deadline) {
        begin_stop(fmt::format("failure: {} did not {} within {} ms; see {}", spec.name, missing,
                               scenario_.startup_timeout_ms, spec.log.string()),
                   true);
        return;
      }
      timers_.push_back(loop_.add_timer(std::chrono::milliseconds(100), *poll));
      return;
    }
    then();
  };
  loop_.post(*poll);
}

void Simulation::start_central() {
  supervisor_->start(central_);
  write_state(true);
  wait_until_up({central_}, [this] {
    phase_done("central broker");
    supervisor_->start(ems_);
    std::vector<std::size_t> brokers;
    for (const auto& member : members_) {
      supervisor_->start(member.broker);
      brokers.push_back(member.broker);
    }
    write_state(true);
    wait_until_up(brokers, [this] {
      phase_done("local brokers");
      // Each bridge subscribes on its local broker before anything publishes there.
      std::vector<std::size_t> bridges;
      for (const auto& member : members_) {
        supervisor_->start(member.bridge);
        bridges.push_back(member.bridge);
      }
      write_state(true);
      wait_until_up(bridges, [this] {
        phase_done("bridges");
        plan_device_crashes();
        for (const auto& member : members_) {
          supervisor_->start(member.gateway);
          supervisor_->start(member.devices);
        }
        observer_->start();
        write_state(true);
        phase_done("gateways and devices");
        on_up();
      });
    });
  });
}

// A device crashes inside its device process: its configuration names the instant, taken from
// now, which is when the timeline starts.
void Simulation::plan_device_crashes() {
  const auto now =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  for (const auto& member : members_) {
    std::map<std::string, protocol::Timestamp> crash_at;
    for (const auto& event : scenario_.timeline) {
      if (event.action == FaultAction::kCrashDevice && event.rec == member.spec->rec &&
          event.member == member.spec->id) {
        crash_at.emplace(event.device, now + std::chrono::milliseconds(
                                                 static_cast<std::int64_t>(event.at_s * 1000)));
      }
    }
    if (!crash_at.empty()) {
      (void)launch_devices(paths_, scenario_, *member.spec, member.ports, member.seed, crash_at);
    }
  }
}

void Simulation::on_up() {
  up_at_ = loop_.now();
  std::string phases;
  for (const StartupPhase& phase : phases_) {
    phases += fmt::format("{}{} {:.1f} s", phases.empty() ? "" : ", ", phase.name, phase.seconds);
  }
  spdlog::info("sim: {} members, {} devices, {} processes up in {:.1f} s ({}); files in {}",
               scenario_.member_count(), scenario_.device_count(), supervisor_->size(),
               since_start(), phases, paths_.dir.string());
  for (const auto& event : scenario_.timeline) {
    timers_.push_back(
        loop_.add_timer(std::chrono::milliseconds(static_cast<std::int64_t>(event.at_s * 1000)),
                        [this, &event] { inject(event); }));
  }
  if (duration_s_ > 0) {
    timers_.push_back(
        loop_.add_timer(std::chrono::milliseconds(static_cast<std::int64_t>(duration_s_ * 1000)),
                        [this] { begin_stop("duration", false); }));
  }
}

std::optional<std::size_t> Simulation::component_index(const TimelineEvent& event) const {
  const ComponentKind kind = event.component.value_or(ComponentKind::kDevices);
  if (kind == ComponentKind::kCentralBroker) {
    return central_;
  }
  if (kind == ComponentKind::kEms) {
    return ems_;
  }
  if (kind == ComponentKind::kSecmgr) {
    return secmgr_;
  }
  for (const auto& member : members_) {
    if (member.spec->rec != event.rec || member.spec->id != event.member) {
      continue;
    }
    switch (kind) {
      case ComponentKind::kLocalBroker:
        return member.broker;
      case ComponentKind::kBridge:
        return member.bridge;
      case ComponentKind::kGateway:
        return member.gateway;
      default:
        return member.devices;
    }
  }
  return std::nullopt;
}

void Simulation::record_fault(const TimelineEvent& event, std::string outcome) {
  spdlog::info("sim: {:.1f} s: {}: {}", since_up(), event.describe(), outcome);
  faults_.push_back({since_up(), event.describe(), std::move(outcome), false});
}

void Simulation::inject(const TimelineEvent& event) {
  if (stopping_) {
    return;
  }
  Member* member = nullptr;
  for (auto& m : members_) {
    if (m.spec->rec == event.rec && m.spec->id == event.member) {
      member = &m;
    }
  }
  switch (event.action) {
    case FaultAction::kKill:
    case FaultAction::kStop:
    case FaultAction::kRestart:
    case FaultAction::kCrashDevices: {
      const auto index = component_index(event);
      if (!index) {
        return;
      }
      const pid_t pid = supervisor_->pid(*index);
      if (event.action == FaultAction::kRestart) {
        supervisor_->restart(*index);
      } else {
        supervisor_->signal(*index, event.action == FaultAction::kStop ? SIGTERM : SIGKILL,
                            event.action == FaultAction::kStop);
      }
      record_fault(event, pid > 0 ? fmt::format("{} (pid {})", supervisor_->spec(*index).name, pid)
                                  : supervisor_->spec(*index).name + " was not running");
      return;
    }
    case FaultAction::kCrashDevice:
      record_fault(event, fmt::format("{} crashes in {} (pid {}): UNHEALTHY until a reboot command",
                                      event.device, supervisor_->spec(member->devices).name,
                                      supervisor_->pid(member->devices)));
      return;
    case FaultAction::kCutBackbone:
      member->proxy->cut();
      record_fault(event, "backbone link down");
      return;
    case FaultAction::kRestoreBackbone:
      member->proxy->restore();
      record_fault(event, "backbone link up");
      return;
    case FaultAction::kSlowBackbone:
      member->proxy->set_delay(std::chrono::milliseconds(event.delay_ms));
      record_fault(event, fmt::format("every chunk delayed {} ms", event.delay_ms));
      return;
    case FaultAction::kAttack: {
      AttackTarget target;
      target.rec = event.rec;
      target.member = event.member;
      target.central_ems_port = central_ports_.ems;
      target.ems_cafile = pki_->authority_chain_path("ems");
      if (member != nullptr) {
        target.member_port = member->ports.member;
        target.member_cafile = pki_->authority_chain_path(
            pki::authority_id(pki::AuthorityKind::kMember, event.rec, event.member));
      }
      try {
        attacker_->run(event, since_up(), target, *observer_, [this](InjectedFault fault) {
          spdlog::info("sim: {:.1f} s: {}: {}", fault.at_s, fault.what, fault.outcome);
          faults_.push_back(std::move(fault));
        });
      } catch (const Error& e) {
        record_fault(event, fmt::format("could not be run: {}", e.what()));
      }
      return;
    }
  }
}

void Simulation::on_process_exit(const ProcessExit& exit, bool gave_up) {
  if (!exit.expected) {
    spdlog::warn("sim: {} (pid {}) exited unexpectedly ({}){}", exit.name, exit.pid,
                 exit.signal != 0 ? fmt::format("signal {}", exit.signal)
                                  : fmt::format("exit {}", exit.exit_code),
                 exit.restarted ? "; restarting" : "");
    crashes_.push_back(exit);
  }
  write_state(true);
  if (gave_up) {
    begin_stop(fmt::format("failure: {} exited and is not restarted (see {})", exit.name,
                           supervisor_->spec(*supervisor_->find(exit.name)).log.string()),
               true);
  }
}

void Simulation::tick() {
  tick_timer_ = loop_.add_timer(std::chrono::seconds(1), [this] { tick(); });
  if (!up_at_ || stopping_) {
    return;
  }
  last_view_ = read_ems_view(paths_.ems_database());
  Sample sample;
  sample.t_s = since_up();
  const CommunityPower power = observer_->power();
  sample.production_w = power.production_w;
  sample.consumption_w = power.consumption_w;
  sample.storage_power_w = power.storage_power_w;
  sample.net_exchange_w = power.net_exchange_w;
  sample.soc_percent = power.soc_percent;
  const double dt = samples_.empty() ? std::max(1e-3, sample.t_s)
                                     : std::max(1e-3, sample.t_s - samples_.back().t_s);
  sample.up_per_s = static_cast<double>(observer_->messages_up() - last_up_) / dt;
  sample.down_per_s = static_cast<double>(observer_->messages_down() - last_down_) / dt;
  last_up_ = observer_->messages_up();
  last_down_ = observer_->messages_down();
  sample.members_online = last_view_.online_members.size();
  samples_.push_back(sample);
  show(sample, last_view_);
  if (++ticks_ % 5 == 0) {
    write_state(true);
  }
}

void Simulation::show(const Sample& sample, const EmsView& view) {
  std::size_t running = 0;
  int restarts = 0;
  for (std::size_t i = 0; i < supervisor_->size(); ++i) {
    running += supervisor_->running(i) ? 1U : 0U;
    restarts += supervisor_->restarts(i);
  }
  if (!live_) {
    if (ticks_ % 10 == 0) {
      std::cout << fmt::format(
                       "sim: {:.0f} s: members {}/{} online, devices {}/{}, up {:.1f} msg/s, "
                       "down {:.1f} msg/s, controls {} issued {} completed {} failed {} in "
                       "flight, security events {}, faults {}, processes {}/{}",
                       sample.t_s, sample.members_online, scenario_.member_count(),
                       view.devices_online, scenario_.device_count(), sample.up_per_s,
                       sample.down_per_s, view.controls_issued, view.controls_completed,
                       view.controls_failed, view.controls_in_flight, observer_->security_events(),
                       faults_.size(), running, supervisor_->size())
                << std::endl;
    }
    return;
  }
  std::string screen = "\x1b[H\x1b[2J";
  screen += fmt::format("\x1b[1mrecmesh simulation {}\x1b[0m   {:.0f} s{}   (Ctrl-C stops)\n\n",
                        scenario_.name, sample.t_s,
                        duration_s_ > 0 ? fmt::format(" / {:.0f} s", duration_s_) : "");
  screen += fmt::format("  members online     {:>6} / {}\n", sample.members_online,
                        scenario_.member_count());
  screen += fmt::format("  devices online     {:>6} / {}\n", view.devices_online,
                        scenario_.device_count());
  screen += fmt::format("  messages up        {:>8.1f} /s   down {:>8.1f} /s\n", sample.up_per_s,
                        sample.down_per_s);
  screen += fmt::format("  aggregates at EMS  {:>6}\n", view.metrics_received);
  screen += fmt::format(
      "  controls           {:>6} issued   {} in flight   {} completed   {} "
      "failed\n",
      view.controls_issued, view.controls_in_flight, view.controls_completed, view.controls_failed);
  screen += fmt::format(
      "  community          production {:.0f} W   consumption {:.0f} W   "
      "storage {:+.0f} W   exchange {:+.0f} W\n",
      sample.production_w, sample.consumption_w, sample.storage_power_w, sample.net_exchange_w);
  screen += fmt::format("  security events    {:>6}\n", observer_->security_events());
  screen += fmt::format(
      "  processes          {:>6} / {} running, {} restarts, {} unexpected "
      "exits\n",
      running, supervisor_->size(), restarts, crashes_.size());
  screen += fmt::format("  faults injected    {:>6}\n", faults_.size());
  const std::size_t first = faults_.size() > 6 ? faults_.size() - 6 : 0;
  for (std::size_t i = first; i < faults_.size(); ++i) {
    screen += fmt::format("    {:>6.1f} s  {}: {}\n", faults_[i].at_s, faults_[i].what,
                          faults_[i].outcome.substr(0, 100));
  }
  std::cout << screen << std::flush;
}

void Simulation::begin_stop(std::string reason, bool failure) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  failed_ = failure;
  stop_reason_ = std::move(reason);
  spdlog::info("sim: stopping ({})", stop_reason_);
  // The report gives the community online as the stop found it, before the gateways go: the
  // last tick's view may be up to a second older, and miss members that came online since.
  if (up_at_) {
    last_view_ = read_ems_view(paths_.ems_database());
  }
  for (const auto timer : timers_) {
    loop_.cancel_timer(timer);
  }
  timers_.clear();
  // Devices and gateways first, so that their last messages cross the backbone while the
  // brokers and the EMS are still up; then everything else.
  std::vector<std::size_t> edge;
  for (const auto& member : members_) {
    edge.push_back(member.devices);
    edge.push_back(member.gateway);
  }
  supervisor_->stop(edge, [this] {
    timers_.push_back(loop_.add_timer(std::chrono::milliseconds(1500), [this] {
      observer_->stop([] {});
      supervisor_->stop({}, [this] { finish(); });
    }));
  });
}

void Simulation::finish() {
  const SimReport report = build_report();
  write_file_atomic(report_path_, report_json(report).dump(2) + "\n", 0644);
  fs::path html = report_path_;
  html.replace_extension(".html");
  write_file_atomic(html, report_html(report), 0644);
  write_state(false);
  std::cout << fmt::format(
                   "sim: stopped ({}). members {}/{} online, {} aggregates published, {} "
                   "received by the EMS, lost {}, controls {} issued / {} completed / {} failed, "
                   "security events {}.\nReport: {} and {}",
                   report.stop_reason, report.members_online, report.members,
                   report.metrics_published, report.metrics_received_by_ems, report.lost_qos1,
                   report.controls_issued, report.controls_completed, report.controls_failed,
                   report.security_events, report_path_.string(), html.string())
            << std::endl;
  loop_.stop();
}

SimReport Simulation::build_report() {
  SimReport r;
  r.scenario = scenario_.name;
  r.stop_reason = stop_reason_;
  r.duration_s = since_up();
  r.startup_s = up_at_ ? std::chrono::duration<double>(*up_at_ - started_).count() : 0;
  r.startup_phases = phases_;
  r.members = scenario_.member_count();
  r.devices = scenario_.device_count();
  r.members_online = last_view_.online_members.size();
  r.devices_online = last_view_.devices_online;
  const EmsView final_view = read_ems_view(paths_.ems_database());
  r.metrics_received_by_ems = final_view.metrics_received;
  r.controls_issued = final_view.controls_issued;
  r.controls_completed = final_view.controls_completed;
  r.controls_failed = final_view.controls_failed;
  r.controls_in_flight = final_view.controls_in_flight;
  r.metrics_duplicates = final_view.metrics_duplicates;
  static const std::regex aggregates(R"(gateway stopped: (\d+) aggregates)");
  static const std::regex device_metrics(R"(stopped: (\d+) metrics published)");
  // Per member, so that one member's repeats cannot hide another's losses.
  for (const auto& member : members_) {
    const std::uint64_t published = sum_logged(supervisor_->spec(member.gateway).log, aggregates);
    const auto received = final_view.metrics_by_member.find(member.spec->label());
    const std::uint64_t stored =
        received == final_view.metrics_by_member.end() ? 0 : received->second;
    r.metrics_published += published;
    r.lost_qos1 += published > stored ? static_cast<std::int64_t>(published - stored) : 0;
    r.device_metrics_published += sum_logged(supervisor_->spec(member.devices).log, device_metrics);
  }
  r.security_events = observer_ ? observer_->security_events() : 0;
  r.messages_up = observer_ ? observer_->messages_up() : 0;
  r.messages_down = observer_ ? observer_->messages_down() : 0;
  r.faults = faults_;
  r.crashes = crashes_;
  r.samples = samples_;
  for (std::size_t i = 0; supervisor_ && i < supervisor_->size(); ++i) {
    ProcessRecord record;
    record.name = supervisor_->spec(i).name;
    for (const pid_t pid : supervisor_->pids(i)) {
      record.pids.push_back(pid);
    }
    record.ports = supervisor_->spec(i).ports;
    record.restarts = supervisor_->restarts(i);
    r.processes.push_back(std::move(record));
  }
  return r;
}

void Simulation::write_state(bool running) {
  Json processes = Json::array();
  for (std::size_t i = 0; supervisor_ && i < supervisor_->size(); ++i) {
    processes.push_back({{"name", supervisor_->spec(i).name},
                         {"pid", supervisor_->pid(i)},
                         {"pids", supervisor_->pids(i)},
                         {"ports", supervisor_->spec(i).ports},
                         {"log", supervisor_->spec(i).log.string()}});
  }
  Json proxies = Json::array();
  for (const auto& member : members_) {
    proxies.push_back({{"member", member.spec->label()},
                       {"port", member.proxy->port()},
                       {"cut", member.proxy->is_cut()},
                       {"delay_ms", member.proxy->delay().count()}});
  }
  const Json state = {
      {"pid", ::getpid()},
      {"running", running},
      {"scenario", scenario_.name},
      {"report", report_path_.string()},
      {"central", {{"ems_port", central_ports_.ems}, {"bridge_port", central_ports_.bridge}}},
      {"ems_database", paths_.ems_database().string()},
      {"ports", ports_},
      {"processes", processes},
      {"proxies", proxies}};
  write_file_atomic(paths_.dir / "state.json", state.dump(2) + "\n", 0644);
}

int Simulation::run() {
  // A large community holds several descriptors per member here (proxy sockets, pidfds) and
  // in the central broker: use the whole allowance, which the children inherit.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigset_t previous;
  ::sigprocmask(SIG_BLOCK, &signals, &previous);
  signal_fd_ = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    throw Error(ErrorCode::kInternal, "cannot open a signalfd");
  }
  started_ = loop_.now();
  // Whatever happens, nothing started outlives this call: the supervisor's destructor kills
  // and reaps what still runs.
  struct Cleanup {
    Simulation& sim;
    sigset_t previous;
    ~Cleanup() {
      sim.observer_.reset();
      sim.attacker_.reset();
      sim.supervisor_.reset();
      sim.members_.clear();
      sim.loop_.unwatch(sim.signal_fd_);
      ::close(sim.signal_fd_);
      ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    }
  } cleanup{*this, previous};
  prepare();
  (void)loop_.watch(signal_fd_, true, false, [this](mqtt::FdEvents) {
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      if (++signals_seen_ == 1) {
        begin_stop(fmt::format("signal {}", strsignal(static_cast<int>(info.ssi_signo))), false);
      } else {
        // A second signal: no more patience.
        spdlog::warn("sim: second signal; killing every process now");
        for (std::size_t i = 0; i < supervisor_->size(); ++i) {
          supervisor_->signal(i, SIGKILL, true);
        }
      }
    }
  });
  tick_timer_ = loop_.add_timer(std::chrono::seconds(1), [this] { tick(); });
  start_central();
  loop_.run();
  return failed_ ? 3 : 0;
}

}  // namespace

int run_simulation(const Scenario& scenario, const SimOptions& options) {
  Simulation simulation(scenario, options);
  return simulation.run();
}

}  // namespace recmesh::sim
