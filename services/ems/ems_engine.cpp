#include "ems/ems_engine.hpp"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/protocol/limits.hpp"
#include "recmesh/protocol/timestamp.hpp"
#include "recmesh/protocol/topics.hpp"

#include "common/stop_on_signal.hpp"

namespace recmesh::ems {

using services::StopOnSignal;
namespace {

using protocol::Channel;
using protocol::MemberControlType;

// The first refusals of a run are logged one by one, then one line per kLogEvery.
constexpr std::uint64_t kLogFirst = 20;
constexpr std::uint64_t kLogEvery = 1000;
// How often the engine looks whether ctl queued a request (one PRAGMA read when nothing did).
constexpr std::chrono::milliseconds kRequestPoll{100};

[[noreturn]] void fail(const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, why);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int status_rank(std::string_view state) {
  if (state == kStateIssued) {
    return 0;
  }
  if (state == "RECEIVED") {
    return 1;
  }
  if (state == "EXECUTING") {
    return 2;
  }
  return 3;  // final
}

bool looks_like_jws(std::string_view payload) {
  if (payload.empty() || payload.size() > crypto::kMaxJwsSize) {
    return false;
  }
  int dots = 0;
  for (const char c : payload) {
    if (c == '.') {
      ++dots;
    } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_')) {
      return false;
    }
  }
  return dots == 2;
}

std::string component_of(const protocol::Topic& topic) {
  switch (topic.channel) {
    case Channel::kDeviceStatus:
    case Channel::kDeviceStatusInfo:
    case Channel::kDeviceDiagnostic:
      return "device/" + topic.device;
    case Channel::kGatewayStatus:
    case Channel::kGatewayStatusInfo:
    case Channel::kGatewayDiagnostic:
      return "smart-gateway";
    default:
      return "bridge";
  }
}

}  // namespace

protocol::Timestamp now_timestamp() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

EmsEngine::EmsEngine(mqtt::EventLoop& loop, EmsConfig config)
    : loop_(loop),
      config_(std::move(config)),
      store_(config_.database, SqliteDatabase::Mode::kCreate) {
  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [this] {
    spdlog::info("ems: connected as {}", config_.client_id);
    resume_unconfirmed_controls();
  };
  callbacks.on_message = [this](const mqtt::IncomingMessage& m) { on_message(m); };
  callbacks.on_stopped = [this] {
    if (on_stopped_) {
      auto done = std::move(on_stopped_);
      done();
    }
  };
  client_ = std::make_unique<mqtt::MqttClient>(loop_, config_.mqtt_options(), std::move(callbacks));
  for (const auto& filter : protocol::ems_engine_subscriptions()) {
    (void)client_->subscribe(filter, 1);
  }
  if (config_.e2e.enabled) {
    e2e_ = std::make_unique<EngineE2e>(
        loop_, config_, store_, [this](const std::string& t, const std::string& p) {
          if (auto sent = client_->publish(t, p, 1); !sent) {
            spdlog::warn("ems: cannot publish on {}: {}", t, sent.status().message);
            return false;
          }
          return true;
        });
    e2e_->on_established = [this](const std::string& rec, const std::string& member) {
      resend_unconfirmed_controls(rec, member);
    };
    // Member logs are sealed for the engine, which opens them for log management.
    (void)client_->subscribe(protocol::member_logs_subscription(), 1);
  }
}

EmsEngine::~EmsEngine() {
  for (auto& [id, tracked] : tracked_) {
    if (tracked.timer != 0) {
      loop_.cancel_timer(tracked.timer);
    }
  }
  if (policy_timer_ != 0) {
    loop_.cancel_timer(policy_timer_);
  }
  if (requests_timer_ != 0) {
    loop_.cancel_timer(requests_timer_);
  }
}

void EmsEngine::start() {
  resume_open_controls();
  if (e2e_) {
    e2e_->start();
  }
  client_->start();
  schedule_policy();
  take_requests();
  schedule_requests();
}

void EmsEngine::schedule_requests() {
  requests_timer_ = loop_.add_timer(kRequestPoll, [this] {
    requests_timer_ = 0;
    try {
      // data_version moves only when another connection (ctl) committed: one cheap read.
      if (const auto version = store_.data_version(); version != requests_version_) {
        requests_version_ = version;
        take_requests();
      }
    } catch (const std::exception& e) {
      spdlog::error("ems: cannot read operator requests: {}", e.what());
    }
    schedule_requests();
  });
}

void EmsEngine::track(const std::string& control_id, Tracked tracked,
                      mqtt::MonotonicClock::Duration left) {
  tracked.timer = loop_.add_timer(left, [this, control_id] { on_timeout(control_id); });
  tracked_[control_id] = std::move(tracked);
}

// Controls an earlier run issued and did not see to a final state: their deadline counts from
// when they were issued, not from this start, so a long outage times them out at once.
void EmsEngine::resume_open_controls() {
  const auto now = now_timestamp();
  for (const auto& row : store_.open_controls()) {
    const auto issued_at = protocol::parse_timestamp(row.issued_at);
    const auto type = protocol::parse_member_control_type(row.type);
    if (!issued_at || !type) {
      spdlog::error("ems: stored control {} is unreadable; marking it TIMED_OUT", row.control_id);
      store_.update_control(row.control_id, kStateTimedOut, row.last_response,
                            protocol::format_timestamp(now));
      ++counters_.controls_timed_out;
      continue;
    }
    const auto left = *issued_at + config_.control_timeout - now;
    ++counters_.controls_resumed;
    track(row.control_id, Tracked{row.rec, row.member, *type, row.state, 0},
          std::max<mqtt::MonotonicClock::Duration>(left, std::chrono::milliseconds(0)));
  }
  if (counters_.controls_resumed > 0) {
    spdlog::info("ems: tracking {} open control(s) of an earlier run again",
                 counters_.controls_resumed);
  }
}

void EmsEngine::stop(std::function<void()> done) {
  if (policy_timer_ != 0) {
    loop_.cancel_timer(policy_timer_);
    policy_timer_ = 0;
  }
  if (requests_timer_ != 0) {
    loop_.cancel_timer(requests_timer_);
    requests_timer_ = 0;
  }
  // Open controls stay open in the database: the next start tracks them again.
  for (auto& [id, tracked] : tracked_) {
    if (tracked.timer != 0) {
      loop_.cancel_timer(tracked.timer);
      tracked.timer = 0;
    }
  }
  if (e2e_) {
    e2e_->stop();
  }
  on_stopped_ = std::move(done);
  client_->stop();
}

void EmsEngine::schedule_policy() {
  if (config_.policy_period.count() == 0) {
    return;
  }
  policy_timer_ = loop_.add_timer(config_.policy_period, [this] {
    policy_timer_ = 0;
    try {
      run_policy();
    } catch (const std::exception& e) {
      spdlog::error("ems: policy round failed: {}", e.what());
    }
    schedule_policy();
  });
}

void EmsEngine::refuse(std::string_view topic, std::string_view why) {
  ++counters_.bad_input;
  if (counters_.bad_input <= kLogFirst || counters_.bad_input % kLogEvery == 0) {
    spdlog::warn("ems: refused a message on {} ({} refused so far): {}",
                 topic.substr(0, protocol::kMaxTopicBytes), counters_.bad_input, why);
  }
}

void EmsEngine::on_message(const mqtt::IncomingMessage& received) {
  ++counters_.received;
  const auto topic = protocol::parse_central_topic(received.topic);
  if (!topic) {
    refuse(received.topic, topic.status().message);
    return;
  }
  // From here on `message` carries what the member sent: opened, or dropped by the e2e layer.
  std::optional<EngineE2e::Received> opened;
  mqtt::IncomingMessage message = received;
  std::optional<e2e::SequenceWindow> delivery;  // the member's stored message IDs with this one
  if (e2e_) {
    opened = e2e_->receive(*topic, received);
    if (!opened) {
      return;
    }
    message.payload = opened->payload;
    if (opened->sequence != 0) {
      delivery = e2e_->accepting(topic->rec, topic->member, opened->sequence);
      if (!delivery) {
        ++counters_.duplicates;  // stored before: re-sealed after a restart, or a QoS 1 repeat
        return;
      }
    }
  }
  try {
    // What the message changes and the record that it was stored commit together, so that a
    // crash can lose neither alone (docs/protocol/e2e.md §6.1).
    SqliteTransaction tx(store_.db());
    handle(*topic, message);
    if (delivery) {
      store_.put_delivery(topic->rec, topic->member, {delivery->highest(), delivery->bitmap()});
    }
    tx.commit();
  } catch (const std::exception& e) {
    // The database refused the write: the gateway's copy stays unconfirmed and comes again.
    spdlog::error("ems: cannot store the message on {}: {}", message.topic, e.what());
    ++counters_.bad_input;
    return;
  }
  if (delivery) {
    e2e_->stored(topic->rec, topic->member, std::move(*delivery));
  }
}

void EmsEngine::handle(const protocol::Topic& topic, const mqtt::IncomingMessage& message) {
  const std::string now = protocol::format_timestamp(now_timestamp());
  const std::string& rec = topic.rec;
  const std::string& member = topic.member;
  switch (topic.channel) {
    case Channel::kMemberMetrics: {
      if (topic.metric == protocol::kMemberAggregateMetric) {
        auto metrics = protocol::MemberMetrics::decode(message.payload);
        if (!metrics) {
          refuse(message.topic, metrics.status().message);
          return;
        }
        store_.put_member_metrics(rec, member, topic.metric, metrics->encode().value(), now);
        latest_[{rec, member}] = Latest{*metrics, loop_.now()};
      } else {
        // Extension metrics: any JSON object within the message limit, stored as it came.
        if (message.payload.size() > protocol::kMaxMessageBytes) {
          refuse(message.topic, "payload over the message limit");
          return;
        }
        const auto parsed = nlohmann::json::parse(message.payload, nullptr, false);
        if (parsed.is_discarded() || !parsed.is_object()) {
          refuse(message.topic, "not a JSON object");
          return;
        }
        store_.put_member_metrics(rec, member, topic.metric, message.payload, now);
      }
      ++counters_.metrics_stored;
      return;
    }
    case Channel::kMemberControlResponse:
      handle_response(rec, member, message.payload);
      return;
    case Channel::kDeviceStatus:
    case Channel::kGatewayStatus:
    case Channel::kBridgeStatus: {
      const auto flag = protocol::parse_status_flag(message.payload);
      if (!flag) {
        refuse(message.topic, flag.status().message);
        return;
      }
      store_.put_status(rec, member, component_of(topic), protocol::to_string(*flag), std::nullopt,
                        now);
      ++counters_.statuses_stored;
      return;
    }
    case Channel::kDeviceStatusInfo:
    case Channel::kGatewayStatusInfo:
    case Channel::kBridgeStatusInfo: {
      std::string info;  // empty: the retained info was cleared
      if (!message.payload.empty()) {
        auto decoded = protocol::StatusInfo::decode(message.payload);
        if (!decoded) {
          refuse(message.topic, decoded.status().message);
          return;
        }
        info = decoded->encode().value();
      }
      store_.put_status(rec, member, component_of(topic), std::nullopt, info, now);
      ++counters_.statuses_stored;
      return;
    }
    case Channel::kDeviceDiagnostic:
    case Channel::kGatewayDiagnostic:
    case Channel::kBridgeDiagnostic:
      // Signed by the reporter; a report that answers an operator's request is verified
      // against the member CA and kept with the request.
      if (!looks_like_jws(message.payload)) {
        refuse(message.topic, "not a JWS compact serialization");
        return;
      }
      store_.put_diagnostic(rec, member, component_of(topic), message.payload, now);
      ++counters_.diagnostics_stored;
      if (topic.channel == Channel::kDeviceDiagnostic) {
        match_diagnostic_report(rec, member, topic.device, message.payload);
      }
      return;
    case Channel::kMemberKeysResponse:
      ++counters_.ignored;
      return;
    case Channel::kMemberLogs: {
      auto record = protocol::LogRecord::decode(message.payload);
      if (!record) {
        refuse(message.topic, record.status().message);
        return;
      }
      ++counters_.logs_received;
      spdlog::info("ems: log of {}/{} [{}] {}: {}", rec, member, protocol::to_string(record->level),
                   record->source, record->message);
      return;
    }
    default:
      refuse(message.topic, "not a channel the EMS engine reads");
      return;
  }
}

void EmsEngine::handle_response(const std::string& rec, const std::string& member,
                                std::string_view payload) {
  const std::string topic = fmt::format("/{}/{}/control/response", rec, member);
  auto response = protocol::MemberControlResponse::decode(payload);
  if (!response) {
    refuse(topic, response.status().message);
    return;
  }
  const std::string gateway = fmt::format("rec_{}_{}_gateway", rec, member);
  if (response->gateway_id != gateway) {
    refuse(topic, fmt::format("gateway_id {} is not the member's gateway {}", response->gateway_id,
                              gateway));
    return;
  }
  const auto it = tracked_.find(response->control_id.str());
  if (it == tracked_.end()) {
    // Not one this engine tracks: already final and forgotten, or never issued here.
    ++counters_.ignored;
    return;
  }
  Tracked& tracked = it->second;
  if (tracked.rec != rec || tracked.member != member) {
    refuse(topic,
           fmt::format("control {} was issued to {}/{}", it->first, tracked.rec, tracked.member));
    return;
  }
  const std::string state(protocol::to_string(response->status));
  if (is_final_state(tracked.state) || status_rank(state) <= status_rank(tracked.state)) {
    ++counters_.ignored;  // a duplicate or a late response: the state only moves forward
    return;
  }
  tracked.state = state;
  store_.update_control(it->first, state, response->encode().value(),
                        protocol::format_timestamp(now_timestamp()));
  ++counters_.responses_applied;
  if (is_final_state(state)) {
    ++counters_.controls_final;
    if (tracked.timer != 0) {
      loop_.cancel_timer(tracked.timer);
      tracked.timer = 0;
    }
    spdlog::info("ems: control {} to {}/{}: {}", it->first, rec, member, state);
  }
  if (observer_) {
    observer_(it->first, state);
  }
}

void EmsEngine::on_timeout(const std::string& control_id) {
  const auto it = tracked_.find(control_id);
  if (it == tracked_.end() || is_final_state(it->second.state)) {
    return;
  }
  it->second.timer = 0;
  it->second.state = std::string(kStateTimedOut);
  ++counters_.controls_timed_out;
  ++counters_.controls_final;
  try {
    store_.update_control(control_id, kStateTimedOut, "",
                          protocol::format_timestamp(now_timestamp()));
  } catch (const std::exception& e) {
    spdlog::error("ems: cannot record the timeout of {}: {}", control_id, e.what());
  }
  spdlog::warn("ems: control {} to {}/{}: no final response, TIMED_OUT", control_id, it->second.rec,
               it->second.member);
  if (observer_) {
    observer_(control_id, std::string(kStateTimedOut));
  }
}

protocol::MemberControl EmsEngine::make_control(const std::string& member, MemberControlType type,
                                                nlohmann::json params,
                                                std::vector<std::string> devices,
                                                const protocol::Uuid& control_id) {
  protocol::MemberControl control;
  control.control_id = control_id;
  control.member_id = member;
  control.device_ids = std::move(devices);
  control.type = type;
  control.intent = type == MemberControlType::kDiagnostic ? protocol::ControlIntent::kIdempotent
                                                          : protocol::ControlIntent::kNonIdempotent;
  control.params = std::move(params);
  control.issued_by = config_.client_id;
  control.issued_at = now_timestamp();
  control.expire_at = control.issued_at + config_.control_ttl;
  control.sequence = store_.next_sequence(
      static_cast<std::uint64_t>(control.issued_at.time_since_epoch().count()));
  control.retry_policy = config_.retry_policy;
  return control;
}

Result<protocol::MemberControl> EmsEngine::issue(const std::string& rec, const std::string& member,
                                                 MemberControlType type, nlohmann::json params,
                                                 std::vector<std::string> devices) {
  if (auto topic = protocol::central_member_topic(Channel::kMemberControl, rec, member); !topic) {
    return topic.status();
  }
  return send(rec, make_control(member, type, std::move(params), std::move(devices),
                                protocol::Uuid::random_v4()));
}

Result<protocol::MemberControl> EmsEngine::send(const std::string& rec,
                                                protocol::MemberControl control) {
  const std::string& member = control.member_id;
  auto topic = protocol::central_member_topic(Channel::kMemberControl, rec, member);
  if (!topic) {
    return topic.status();
  }
  auto payload = control.encode();
  if (!payload) {
    return payload.status();
  }
  const std::string id = control.control_id.str();
  const std::string issued_at = protocol::format_timestamp(control.issued_at);
  const MemberControlType type = control.type;
  if (!e2e_) {
    if (auto published = client_->publish(*topic, *payload, 1); !published) {
      return published.status();
    }
  }
  // Stored before it is sealed: with e2e, the control table is what keeps it until the gateway
  // answers, through a restart of either side (docs/protocol/e2e.md §6.1).
  store_.put_control({id, rec, member, std::string(protocol::to_string(type)),
                      static_cast<std::int64_t>(control.sequence), issued_at,
                      std::string(kStateIssued), issued_at, ""},
                     *payload);
  if (e2e_) {
    if (auto sealed = e2e_->publish(rec, member, *topic, *payload); !sealed) {
      spdlog::info("ems: control {} to {}/{} waits for the end-to-end session ({})", id, rec,
                   member, sealed.status().message);
    }
  }
  track(id, Tracked{rec, member, type, std::string(kStateIssued), 0}, config_.control_timeout);
  ++counters_.controls_issued;
  spdlog::info("ems: issued {} {} to {}/{} (sequence {})", protocol::to_string(type), id, rec,
               member, control.sequence);
  return control;
}

// Controls the gateway has not answered yet go out again in each new session, in issue order:
// the copy sealed in an earlier one may have died with the process that held that session. The
// gateway executes a control once whatever the number of copies (it deduplicates by ID).
void EmsEngine::resend_unconfirmed_controls(const std::string& rec, const std::string& member) {
  const auto topic = protocol::central_member_topic(Channel::kMemberControl, rec, member);
  if (!topic || !e2e_) {
    return;
  }
  try {
    for (const auto& control : store_.unconfirmed_controls(rec, member)) {
      if (!tracked_.contains(control.control_id)) {
        continue;  // timed out meanwhile
      }
      if (auto sent = e2e_->publish(rec, member, *topic, control.payload); !sent) {
        return;  // the session ended again: the next one resumes
      }
      ++counters_.controls_resent;
    }
  } catch (const std::exception& e) {
    spdlog::error("ems: cannot read the open controls of {}/{}: {}", rec, member, e.what());
  }
}

// After a restart, members with unanswered controls get a session without waiting for traffic.
void EmsEngine::resume_unconfirmed_controls() {
  if (!e2e_) {
    return;
  }
  try {
    for (const auto& [rec, member] : store_.members_with_unconfirmed_controls()) {
      e2e_->connect(rec, member);
    }
  } catch (const std::exception& e) {
    spdlog::error("ems: cannot read the open controls: {}", e.what());
  }
}

void EmsEngine::take_requests() {
  for (const RequestRow& row : store_.queued_requests()) {
    if (row.take_by_ms < now_ms()) {
      if (store_.expire_request(row.control_id)) {
        ++counters_.requests_expired;
        spdlog::warn("ems: request {} of {} expired before it was taken; not sent", row.control_id,
                     row.requested_by);
      }
      continue;
    }
    try {
      // Taking the request and recording its control are one transaction: after a crash the
      // request is still queued (taken at the next start) or its control is ISSUED (sent again
      // in the member's next session), never taken and lost.
      SqliteTransaction tx(store_.db());
      if (!store_.take_request(row.control_id, now_ms())) {
        continue;  // ctl gave up on it meanwhile
      }
      take_request(row);
      tx.commit();
    } catch (const std::exception& e) {
      store_.refuse_request(row.control_id, e.what());
      ++counters_.requests_refused;
      spdlog::error("ems: request {} of {} refused: {}", row.control_id, row.requested_by,
                    e.what());
    }
  }
}

// The request was written by someone allowed to write the database, and is still checked like
// any input: an ID, a type, a params object, device IDs; the control's encoder checks the rest.
void EmsEngine::take_request(const RequestRow& row) {
  const auto id = protocol::Uuid::parse(row.control_id);
  const auto type = protocol::parse_member_control_type(row.type);
  auto params = nlohmann::json::parse(row.params, nullptr, false);
  const auto devices = nlohmann::json::parse(row.devices, nullptr, false);
  if (!id || !type) {
    fail(!id ? fmt::format("control_id: {}", id.status().message)
             : fmt::format("type: {}", type.status().message));
  }
  if (!params.is_object()) {
    fail("params: expected a JSON object");
  }
  std::vector<std::string> device_ids;
  if (!devices.is_array()) {
    fail("devices: expected a JSON array");
  }
  for (const auto& d : devices) {
    if (!d.is_string()) {
      fail("devices: expected device IDs");
    }
    device_ids.push_back(d.get<std::string>());
  }
  if (auto topic = protocol::central_member_topic(Channel::kMemberControl, row.rec, row.member);
      !topic) {
    fail(topic.status().message);
  }
  protocol::MemberControl control =
      make_control(row.member, *type, std::move(params), std::move(device_ids), *id);
  if (!row.device.empty()) {
    const std::string command_id = sign_diagnostic(row.rec, row.member, row.device, control);
    store_.set_request_command(row.control_id, command_id);
  }
  auto sent = send(row.rec, std::move(control));
  if (!sent) {
    fail(sent.status().message);
  }
  ++counters_.requests_taken;
  spdlog::info("ems: request {} of {} issued", row.control_id, row.requested_by);
}

std::string EmsEngine::sign_diagnostic(const std::string& rec, const std::string& member,
                                       const std::string& device,
                                       protocol::MemberControl& control) const {
  const auto command_topic = protocol::local_device_topic(Channel::kDeviceControl, device);
  if (!command_topic) {
    throw Error(ErrorCode::kInvalidArgument, "device: " + command_topic.status().message);
  }
  protocol::DeviceCommand command;
  command.control_id = control.control_id;
  command.command_id = protocol::Uuid::random_v4();
  command.device_id = device;
  command.type = protocol::DeviceCommandType::kDiagnostic;
  command.issued_by = config_.client_id;
  command.issued_at = control.issued_at;
  command.expire_at = control.expire_at;
  command.sequence = control.sequence;
  auto encoded = command.encode();
  if (!encoded) {
    throw Error(ErrorCode::kInvalidArgument, encoded.status().message);
  }
  // Signed with the engine's own key: the device verifies it against the EMS CA and its CRL,
  // whoever carried it (docs/protocol/signed-messages.md).
  const auto signer = crypto::JwsSigner::from_files(config_.certfile, config_.keyfile);
  control.type = MemberControlType::kDiagnostic;
  control.device_ids = {device};
  control.params = {{"signed_commands", {{device, signer.sign(*command_topic, *encoded)}}}};
  spdlog::debug("ems: diagnostic command {} for {}/{}/{} signed", command.command_id.str(), rec,
                member, device);
  return command.command_id.str();
}

void EmsEngine::match_diagnostic_report(const std::string& rec, const std::string& member,
                                        const std::string& device, std::string_view payload) {
  const auto waiting = store_.awaiting_reports(rec, member, device);
  if (waiting.empty()) {
    return;
  }
  const auto local_topic = protocol::local_device_topic(Channel::kDeviceDiagnostic, device);
  if (!local_topic || config_.pki_dir.empty()) {
    return;
  }
  // The device signed it for its local topic; the bridge only renamed it.
  const auto member_ca = config_.pki_dir / "ca" / fmt::format("member_{}_{}", rec, member);
  crypto::SignerTrust trust;
  trust.issuer_pem = read_file(member_ca / "cert.pem");
  trust.crl_pem = read_file(member_ca / "crl.pem");
  trust.allowed_signers = {fmt::format("rec_{}_{}_{}", rec, member, device)};
  const crypto::JwsVerifier verifier(trust);
  const auto verified = verifier.verify(*local_topic, payload);
  if (!verified) {
    ++counters_.reports_refused;
    spdlog::warn("ems: security event: diagnostic report of {}/{}/{} refused: {}", rec, member,
                 device, verified.status().message);
    return;
  }
  const auto report = protocol::DiagnosticReport::decode(verified->payload);
  if (!report || !report->command_id) {
    return;  // a report after an update or reset, not an answer
  }
  for (const RequestRow& row : waiting) {
    if (row.command_id == report->command_id->str()) {
      const nlohmann::json kept{{"signer", verified->signer},
                                {"report", nlohmann::json::parse(verified->payload)}};
      store_.set_request_report(row.control_id, kept.dump());
      ++counters_.reports_verified;
      spdlog::info("ems: verified diagnostic report of {}/{}/{} for request {}", rec, member,
                   device, row.control_id);
    }
  }
}

bool EmsEngine::has_open_energy_control(const std::string& rec, const std::string& member) const {
  for (const auto& [id, tracked] : tracked_) {
    if (tracked.rec == rec && tracked.member == member && !is_final_state(tracked.state) &&
        (tracked.type == MemberControlType::kStoreSurplus ||
         tracked.type == MemberControlType::kCoverDeficit)) {
      return true;
    }
  }
  return false;
}

void EmsEngine::run_policy() {
  const auto now = loop_.now();
  for (const auto& [key, latest] : latest_) {
    if (now - latest.received > config_.metrics_max_age) {
      continue;
    }
    const auto& m = latest.metrics;
    if (!m.storage_soc_percent || has_open_energy_control(key.first, key.second)) {
      continue;  // members without storage have nothing to store or release
    }
    const double soc = *m.storage_soc_percent;
    std::optional<MemberControlType> type;
    if (m.net_exchange_w > config_.surplus_threshold_w && soc < config_.max_soc_percent) {
      type = MemberControlType::kStoreSurplus;
    } else if (-m.net_exchange_w > config_.deficit_threshold_w && soc > config_.min_soc_percent) {
      type = MemberControlType::kCoverDeficit;
    }
    if (!type) {
      continue;
    }
    const double power = std::round(std::abs(m.net_exchange_w));
    auto issued = issue(key.first, key.second, *type, nlohmann::json{{"power_w", power}});
    if (!issued) {
      spdlog::error("ems: cannot issue {} to {}/{}: {}", protocol::to_string(*type), key.first,
                    key.second, issued.status().message);
    }
  }
}

std::optional<std::string> EmsEngine::control_state(const std::string& control_id) const {
  const auto it = tracked_.find(control_id);
  if (it == tracked_.end()) {
    return std::nullopt;
  }
  return it->second.state;
}

int run_ems(EmsConfig config) {
  StopOnSignal signals;
  mqtt::EventLoop loop;
  EmsEngine engine(loop, std::move(config));
  signals.run(
      loop, "the EMS engine", [&] { engine.start(); },
      [&](std::function<void()> done) { engine.stop(std::move(done)); });
  const auto& c = engine.counters();
  spdlog::info("stopped: {} messages, {} refused, {} controls issued, {} timed out", c.received,
               c.bad_input, c.controls_issued, c.controls_timed_out);
  if (const EngineE2e* e2e = engine.e2e()) {
    const auto& s = e2e->stats();
    spdlog::info(
        "end-to-end: {} handshakes started, {} completed, {} timed out, {} unsent, {} hellos "
        "({} stale), {} opened, {} refused",
        s.handshakes_started, s.handshakes_completed, s.handshakes_timed_out, s.handshakes_unsent,
        s.hellos, s.stale_hellos, s.opened, s.refused_total());
  }
  return 0;
}

}  // namespace recmesh::ems
