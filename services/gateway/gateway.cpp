#include "gateway/gateway.hpp"

#include <algorithm>
#include <csignal>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"
#include "recmesh/crypto/base64url.hpp"
#include "recmesh/protocol/topics.hpp"

#include "common/stop_on_signal.hpp"

namespace recmesh::gateway {

using services::StopOnSignal;
namespace {

using protocol::Channel;
using protocol::DeviceCommandStatus;
using protocol::DeviceCommandType;
using protocol::DeviceKind;
using protocol::DeviceOutcome;
using protocol::DeviceResult;
using protocol::DeviceState;
using protocol::LogLevel;
using protocol::MemberControl;
using protocol::MemberControlStatus;
using protocol::MemberControlType;

constexpr std::string_view kAggregateTopic = "/platform/metrics/aggregate";
// What the gateway did while the platform was unreachable (a metrics extension name).
constexpr std::string_view kIslandReportTopic = "/platform/metrics/island-report";
constexpr std::size_t kMaxIslandActions = 1000;  // the report stays bounded in a long outage
// Outbox messages handed to the client and not yet acknowledged, at most.
constexpr std::size_t kOutboxWindow = 100;

bool looks_signed(std::string_view payload) {
  const auto first = payload.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && payload[first] != '{';
}

std::string device_topic(Channel channel, const std::string& device) {
  auto topic = protocol::local_device_topic(channel, device);
  return topic ? std::move(topic).value() : std::string();
}

double hours(std::chrono::milliseconds window) {
  return std::chrono::duration<double, std::ratio<3600>>(window).count();
}

}  // namespace

Gateway::Gateway(mqtt::EventLoop& loop, GatewayConfig config)
    : loop_(loop),
      config_(std::move(config)),
      log_(config_.database),
      outbox_(config_.database, config_.outbox_max_messages) {
  gateway_id_ = config_.common_name();
  for (const auto& device : config_.devices) {
    devices_[device.id].device = &device;
  }
  mqtt::MqttClientOptions options;
  options.host = config_.broker_host;
  options.port = config_.broker_port;
  options.client_id = gateway_id_;
  options.cafile = config_.cafile;
  options.certfile = config_.certfile;
  options.keyfile = config_.keyfile;
  options.status_topic = std::string(protocol::kGatewayStatusTopic);
  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [this] { on_connect(); };
  callbacks.on_message = [this](const mqtt::IncomingMessage& message) {
    handle_message(message.topic, message.payload);
  };
  callbacks.on_delivered = [this](mqtt::MessageId id) { on_delivered(id); };
  callbacks.on_stopped = [this, alive = std::weak_ptr<int>(alive_)] {
    loop_.post([this, alive] {
      if (!alive.expired() && on_stopped_) {
        std::exchange(on_stopped_, nullptr)();
      }
    });
  };
  client_ = std::make_unique<mqtt::MqttClient>(loop_, std::move(options), std::move(callbacks));
  if (config_.e2e.enabled) {
    e2e_ = std::make_unique<GatewayE2e>(
        loop_, config_,
        [this](const std::string& topic, const std::string& payload, bool retain) {
          if (auto sent = client_->publish(topic, payload, 1, retain); !sent) {
            spdlog::warn("gateway: cannot publish on {}: {}", topic, sent.status().message);
            return false;
          }
          return true;
        },
        [this](std::string_view kind, std::string_view detail) {
          forward_security_event(kind, detail);
        });
    // A new session re-seals everything the engine has not confirmed, oldest first: what was
    // sealed in an earlier one may be lost with the process that held it (docs/protocol/e2e.md
    // §6.1). The engine drops what it already stored.
    e2e_->on_established = [this] {
      outbox_handed_ = 0;
      pump_outbox();
    };
    e2e_->on_acknowledged = [this](const e2e::Acknowledgement& ack) {
      try {
        counters_.outbox_delivered += outbox_.confirm(ack);
      } catch (const std::exception& e) {
        // Kept: sent once more, and dropped by the engine as already stored.
        spdlog::error("gateway: cannot clear confirmed outbox messages: {}", e.what());
      }
    };
    e2e_->resume_after(outbox_.last_id());
  }
  // SPEC §6: the exact topics of each configured device, never a wildcard over devices.
  std::vector<std::string> ids;
  for (const auto& device : config_.devices) {
    ids.push_back(device.id);
  }
  auto filters = protocol::gateway_subscriptions(ids);
  if (!filters) {
    throw Error(ErrorCode::kInvalidArgument, filters.status().message);
  }
  if (config_.island_after.count() > 0) {
    filters->emplace_back(protocol::kBridgeStatusTopic);
  }
  for (const auto& filter : *filters) {
    if (auto subscribed = client_->subscribe(filter, 1); !subscribed) {
      throw Error(ErrorCode::kInvalidArgument, subscribed.status().message);
    }
  }
}

Gateway::~Gateway() {
  for (const auto timer : {aggregate_timer_, log_timer_, island_timer_}) {
    if (timer != 0) {
      loop_.cancel_timer(timer);
    }
  }
  for (auto& [id, active] : active_) {
    for (auto& work : active.work) {
      if (work.timer != 0) {
        loop_.cancel_timer(work.timer);
      }
    }
  }
}

protocol::Timestamp Gateway::wall_now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

void Gateway::start() {
  window_start_ = wall_now();
  client_->start();
  schedule_aggregate();
  schedule_log_batch();
  resume_unfinished();
  arm_island_timer();  // until the bridge is seen online
}

void Gateway::stop(std::function<void()> done) {
  stopping_ = true;
  for (auto* timer : {&aggregate_timer_, &log_timer_, &island_timer_}) {
    if (*timer != 0) {
      loop_.cancel_timer(*timer);
      *timer = 0;
    }
  }
  flush_log_batch();
  publish_status_info(protocol::StatusFlag::kOffline, "stopped");
  if (e2e_) {
    e2e_->stop();
  }
  on_stopped_ = std::move(done);
  client_->stop();
}

void Gateway::abort() {
  stopping_ = true;
  client_->abort();
}

void Gateway::on_connect() {
  if (e2e_) {
    e2e_->start();
  }
  publish_status_info(protocol::StatusFlag::kOnline, "connected");
  if (outbox_drop_logged_) {
    spdlog::warn("gateway: {} platform message(s) dropped so far while the outbox was full",
                 counters_.outbox_dropped);
    outbox_drop_logged_ = false;
  }
  pump_outbox();
}

void Gateway::publish_status_info(protocol::StatusFlag flag, std::string reason) {
  protocol::StatusInfo info;
  info.timestamp = wall_now();
  info.status = flag;
  info.reason = std::move(reason);
  info.reconnect_attempts = static_cast<std::uint32_t>(client_->stats().connect_attempts);
  info.fields = nlohmann::json{{"devices", config_.devices.size()}};
  if (auto encoded = info.encode()) {
    publish(protocol::kGatewayStatusInfoTopic, *encoded, true);
  }
}

void Gateway::publish(std::string_view topic, std::string_view payload, bool retain) {
  if (e2e_ && !e2e::bound_topic(config_.rec, config_.member, topic).empty()) {
    publish_platform(topic, payload, retain);  // for the platform: sealed, through the outbox
    return;
  }
  if (auto sent = client_->publish(topic, payload, 1, retain); !sent) {
    spdlog::warn("gateway: cannot publish on {}: {}", topic, sent.status().message);
  }
}

void Gateway::publish_platform(std::string_view topic, std::string_view payload, bool retain) {
  const std::size_t dropped = outbox_.push(topic, payload, retain);
  if (dropped > 0) {
    counters_.outbox_dropped += dropped;
    if (!outbox_drop_logged_) {
      outbox_drop_logged_ = true;
      spdlog::error("gateway: outbox full ({} messages): dropping the oldest platform messages",
                    outbox_.capacity());
    }
  }
  pump_outbox();
}

// Hands the outbox to the client in order, a window at a time. What is handed over and not yet
// acknowledged when the link breaks, libmosquitto sends again after the reconnect (clean
// session false); what is still in the outbox after a crash goes out after the next start.
// With e2e each message is sealed as it is handed over, with its row ID as its sequence number,
// so the outbox waits for a session; a row stays until the engine confirms it.
void Gateway::pump_outbox() {
  while (client_->connected() && (!e2e_ || e2e_->established()) &&
         outbox_in_flight_.size() < kOutboxWindow) {
    const auto batch = outbox_.after(outbox_handed_, kOutboxWindow - outbox_in_flight_.size());
    if (batch.empty()) {
      return;
    }
    for (const auto& entry : batch) {
      std::optional<std::string> sealed;
      if (e2e_ && !(sealed = e2e_->seal(entry.topic, entry.payload,
                                        static_cast<std::uint64_t>(entry.id)))) {
        return;  // the session ended meanwhile: the next one resumes
      }
      auto sent = client_->publish(entry.topic, sealed ? *sealed : entry.payload, 1, entry.retain);
      if (!sent) {
        if (sent.status().code == ErrorCode::kInvalidArgument) {
          spdlog::error("gateway: outbox message on {} cannot be published: {}", entry.topic,
                        sent.status().message);
          outbox_.remove(entry.id);
          outbox_handed_ = entry.id;
          continue;
        }
        return;  // the client cannot take more now: the next connect or PUBACK resumes
      }
      outbox_in_flight_[*sent] = entry.id;
      outbox_handed_ = entry.id;
    }
  }
}

void Gateway::on_delivered(mqtt::MessageId id) {
  const auto it = outbox_in_flight_.find(id);
  if (it == outbox_in_flight_.end()) {
    return;  // a local message
  }
  if (!e2e_) {  // with e2e the row waits for the engine's ack
    try {
      outbox_.remove(it->second);
      ++counters_.outbox_delivered;
    } catch (const std::exception& e) {
      // Left in the outbox: sent once more after a restart, which QoS 1 allows.
      spdlog::error("gateway: cannot clear a delivered outbox message: {}", e.what());
    }
  }
  outbox_in_flight_.erase(it);
  pump_outbox();
}

void Gateway::refuse(std::uint64_t& counter, std::string_view why, std::string_view detail) {
  ++counter;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_refusal_log_ < std::chrono::seconds(1)) {
    ++refusals_unlogged_;
    return;
  }
  last_refusal_log_ = now;
  spdlog::warn("gateway: refused: {}{}{} ({} refusals not logged since the last line)", why,
               detail.empty() ? "" : ": ", detail.substr(0, 200),
               std::exchange(refusals_unlogged_, 0));
}

void Gateway::forward_security_event(std::string_view kind, std::string_view detail) {
  protocol::LogRecord record;
  record.level = LogLevel::kError;
  record.timestamp = wall_now();
  record.source = "smart-gateway";
  record.message = fmt::format("security event: {}", kind);
  record.fields = nlohmann::json{{"event", "security"}, {"kind", kind}, {"detail", detail}};
  if (auto encoded = record.encode()) {
    publish_platform(fmt::format("/platform/logs/{}", protocol::to_string(LogLevel::kError)),
                     *encoded);
  }
}

void Gateway::handle_message(std::string_view topic, std::string_view payload) {
  try {
    if (payload.size() > config_.max_payload_bytes) {
      refuse(counters_.refused_oversize, "oversize payload",
             fmt::format("{} bytes on {}", payload.size(), topic));
      return;
    }
    auto parsed = protocol::parse_local_topic(topic);
    if (!parsed) {
      refuse(counters_.refused_malformed, "topic", parsed.status().message);
      return;
    }
    if (protocol::is_device_channel(parsed->channel) && !devices_.contains(parsed->device)) {
      refuse(counters_.refused_unknown_device, "device not configured", parsed->device);
      return;
    }
    std::string opened;  // what the platform sent, once the e2e layer has opened it
    if (e2e_) {
      auto plaintext = e2e_->receive(*parsed, topic, payload);
      if (!plaintext) {
        return;  // a handshake message, or a refusal the e2e layer counted and reported
      }
      opened = std::move(*plaintext);
      payload = opened;
    }
    switch (parsed->channel) {
      case Channel::kDeviceMetrics:
        if (parsed->metric == protocol::kDeviceSnapshotMetric) {
          on_metrics(parsed->device, payload);
        }
        return;
      case Channel::kDeviceStatus:
        on_status(parsed->device, payload);
        return;
      case Channel::kDeviceStatusInfo:
        return;  // informative only
      case Channel::kDeviceLog:
        on_log(parsed->device, parsed->level, payload);
        return;
      case Channel::kDeviceControlResponse:
        on_device_response(parsed->device, payload);
        return;
      case Channel::kMemberControl:
        if (looks_signed(payload)) {
          on_signed_control(payload);
        } else {
          on_control(payload);
        }
        return;
      case Channel::kBridgeStatus:
        if (config_.island_after.count() > 0) {
          on_bridge_status(payload);
        } else {
          refuse(counters_.refused_malformed, "unexpected topic", topic);
        }
        return;
      case Channel::kMemberKeys:
        refuse(counters_.refused_unsupported, "end-to-end key exchange", "e2e is disabled");
        return;
      default:
        refuse(counters_.refused_malformed, "unexpected topic", topic);
        return;
    }
  } catch (const std::exception& e) {
    // A failure of the store or the model must not take the gateway down with one message.
    refuse(counters_.refused_malformed, "handling failed", e.what());
  }
}

// ---- Metrics ------------------------------------------------------------------------------

void Gateway::on_metrics(const std::string& device, std::string_view payload) {
  auto decoded = protocol::DeviceMetrics::decode(payload);
  if (!decoded) {
    refuse(counters_.refused_malformed, "device metrics", decoded.status().message);
    return;
  }
  ++counters_.metrics_received;
  DeviceView& view = devices_.at(device);
  view.online = true;
  if (!view.window_first) {
    view.window_first = view.last ? view.last : decoded.value();
  }
  view.power_sum_w += decoded->power_w;
  ++view.samples;
  view.last = std::move(decoded).value();
}

void Gateway::on_status(const std::string& device, std::string_view payload) {
  if (payload.empty()) {
    return;  // a cleared retained flag
  }
  auto flag = protocol::parse_status_flag(payload);
  if (!flag) {
    refuse(counters_.refused_malformed, "device status", flag.status().message);
    return;
  }
  devices_.at(device).online = *flag == protocol::StatusFlag::kOnline;
}

void Gateway::schedule_aggregate() {
  aggregate_timer_ = loop_.add_timer(config_.metrics_interval, [this] {
    aggregate_timer_ = 0;
    publish_aggregate();
    schedule_aggregate();
  });
}

void Gateway::publish_aggregate() {
  protocol::MemberMetrics m;
  m.window_start = window_start_;
  m.window_end = std::max(wall_now(), window_start_ + std::chrono::milliseconds(1));
  double storage_capacity = 0;
  double storage_energy = 0;
  bool has_meter = false;
  double meter_w = 0;
  for (auto& [id, view] : devices_) {
    const DeviceKind kind = view.device->kind;
    if (!view.online || !view.last) {
      ++m.devices[DeviceState::kOffline];
    } else {
      ++m.devices[view.last->state];
    }
    if (!view.last) {
      continue;
    }
    const double power =
        view.samples > 0 ? view.power_sum_w / view.samples : (view.online ? view.last->power_w : 0);
    const double delivered =
        view.window_first ? view.last->energy_delivered_wh - view.window_first->energy_delivered_wh
                          : 0;
    const double absorbed =
        view.window_first ? view.last->energy_absorbed_wh - view.window_first->energy_absorbed_wh
                          : 0;
    switch (kind) {
      case DeviceKind::kGenerator:
        m.production_w += std::max(power, 0.0);
        m.energy.produced_wh += std::max(delivered, 0.0);
        break;
      case DeviceKind::kLoad:
      case DeviceKind::kPassiveLoad:
        m.consumption_w += std::max(-power, 0.0);
        m.energy.consumed_wh += std::max(absorbed, 0.0);
        break;
      case DeviceKind::kAccumulator:
        m.storage_power_w += power;
        m.energy.discharged_wh += std::max(delivered, 0.0);
        m.energy.charged_wh += std::max(absorbed, 0.0);
        if (view.last->soc_percent && view.online) {
          storage_capacity += view.device->capacity_wh;
          storage_energy += view.device->capacity_wh * *view.last->soc_percent;
        }
        break;
      case DeviceKind::kMeter:
        has_meter = true;
        meter_w += power;
        m.energy.exported_wh += std::max(delivered, 0.0);
        m.energy.imported_wh += std::max(absorbed, 0.0);
        break;
    }
    // The next window starts from the counters seen last.
    view.window_first = view.last;
    view.power_sum_w = 0;
    view.samples = 0;
  }
  if (storage_capacity > 0) {
    m.storage_soc_percent = std::clamp(storage_energy / storage_capacity, 0.0, 100.0);
  }
  m.net_exchange_w = has_meter ? meter_w : m.production_w - m.consumption_w + m.storage_power_w;
  if (!has_meter) {
    const double net_wh =
        m.net_exchange_w *
        hours(std::chrono::duration_cast<std::chrono::milliseconds>(m.window_end - m.window_start));
    m.energy.exported_wh = std::max(net_wh, 0.0);
    m.energy.imported_wh = std::max(-net_wh, 0.0);
  }
  window_start_ = m.window_end;
  auto encoded = m.encode();
  if (!encoded) {
    spdlog::error("gateway: aggregate not encodable: {}", encoded.status().message);
    return;
  }
  publish_platform(kAggregateTopic, *encoded);
  ++counters_.aggregates_published;
  last_aggregate_ = m;
  if (island_) {
    apply_island_policy(m);
  }
}

// ---- Logs ---------------------------------------------------------------------------------

void Gateway::on_log(const std::string& device, LogLevel level, std::string_view payload) {
  auto record = protocol::LogRecord::decode(payload);
  if (!record) {
    refuse(counters_.refused_malformed, "device log", record.status().message);
    return;
  }
  if (record->level != level) {
    refuse(counters_.refused_malformed, "device log", "level differs from the topic's");
    return;
  }
  const auto canonical = record->encode();
  if (!canonical) {
    refuse(counters_.refused_malformed, "device log", canonical.status().message);
    return;
  }
  const std::int64_t row =
      log_.insert_log(device, protocol::to_string(level),
                      protocol::format_timestamp(record->timestamp), *canonical);
  ++counters_.logs_stored;
  if (level >= LogLevel::kError) {
    if (record->fields && record->fields->is_object() &&
        record->fields->value("event", "") == "security") {
      ++counters_.security_events_forwarded;
    }
    publish_platform(fmt::format("/platform/logs/{}", protocol::to_string(level)), *canonical);
    log_.mark_log_forwarded(row);
    ++counters_.logs_forwarded;
  } else if (level == LogLevel::kInfo) {
    info_batch_.emplace_back(row, *canonical);
  }
  // DEBUG and WARN stay in the local store.
}

void Gateway::schedule_log_batch() {
  log_timer_ = loop_.add_timer(config_.log_batch_interval, [this] {
    log_timer_ = 0;
    flush_log_batch();
    schedule_log_batch();
  });
}

void Gateway::flush_log_batch() {
  const std::string topic = fmt::format("/platform/logs/{}", protocol::to_string(LogLevel::kInfo));
  for (const auto& [row, payload] : info_batch_) {
    publish_platform(topic, payload);
    log_.mark_log_forwarded(row);
    ++counters_.logs_forwarded;
  }
  info_batch_.clear();
}

// ---- Control protocol ---------------------------------------------------------------------

void Gateway::respond(const MemberControl& control, MemberControlStatus status,
                      std::optional<std::string> general, std::vector<DeviceResult> per_device) {
  protocol::MemberControlResponse response;
  response.control_id = control.control_id;
  response.gateway_id = gateway_id_;
  response.status = status;
  response.general = std::move(general);
  response.per_device = std::move(per_device);
  response.issued_at = wall_now();
  auto encoded = response.encode();
  if (!encoded) {
    spdlog::error("gateway: response not encodable: {}", encoded.status().message);
    return;
  }
  log_.update_control(control.control_id.str(), protocol::to_string(status), *encoded);
  publish_platform(protocol::kPlatformControlResponseTopic, *encoded);
}

void Gateway::refuse_control(const MemberControl& control, std::string reason) {
  respond(control, MemberControlStatus::kFailed, std::move(reason), {});
}

bool Gateway::admit(const std::string& control_id, const std::string& issued_by,
                    std::uint64_t sequence, protocol::Timestamp expire_at,
                    const MemberControl& control, std::string_view payload) {
  if (auto stored = log_.find_control(control_id)) {
    // Never executed twice: answer with what was recorded.
    ++counters_.controls_duplicate;
    if (stored->response) {
      publish_platform(protocol::kPlatformControlResponseTopic, *stored->response);
    }
    return false;
  }
  const auto last = log_.last_sequence(issued_by);
  if (last && sequence <= *last) {
    refuse(counters_.refused_sequence, "control sequence not increasing",
           fmt::format("{} after {} from {}", sequence, *last, issued_by));
    return false;
  }
  log_.set_last_sequence(issued_by, sequence);
  log_.insert_control(control_id, issued_by, sequence, protocol::to_string(control.type),
                      protocol::to_string(control.intent), payload, "RECEIVED");
  if (expire_at <= wall_now()) {
    ++counters_.refused_expired;
    refuse_control(control, "expired before it reached the gateway");
    return false;
  }
  ++counters_.controls_accepted;
  respond(control, MemberControlStatus::kReceived, std::nullopt, {});
  return true;
}

void Gateway::on_control(std::string_view payload) {
  auto decoded = MemberControl::decode(payload);
  if (!decoded) {
    refuse(counters_.refused_malformed, "member control", decoded.status().message);
    return;
  }
  MemberControl control = std::move(decoded).value();
  if (control.member_id != config_.member) {
    refuse(counters_.refused_other_member, "member control for another member", control.member_id);
    return;
  }
  if (!admit(control.control_id.str(), control.issued_by, control.sequence, control.expire_at,
             control, payload)) {
    return;
  }
  execute(ActiveControl{std::move(control), {}}, false);
}

// Reads an EMS-signed device command (a JWS over the command, bound to the device's control
// topic) only to route it: which device, which response ends it. The gateway is not trusted
// with diagnostics, so it never verifies or alters the signed bytes; the device does.
namespace {

Result<protocol::DeviceCommand> read_signed_command(std::string_view compact) {
  const auto first_dot = compact.find('.');
  const auto second_dot =
      first_dot == std::string_view::npos ? first_dot : compact.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos) {
    return Result<protocol::DeviceCommand>::failure(ErrorCode::kInvalidArgument,
                                                    "not a JWS compact string");
  }
  const auto header_json = crypto::base64url_decode(compact.substr(0, first_dot));
  const auto body =
      crypto::base64url_decode(compact.substr(first_dot + 1, second_dot - first_dot - 1));
  if (!header_json || !body) {
    return Result<protocol::DeviceCommand>::failure(ErrorCode::kInvalidArgument,
                                                    "invalid base64url");
  }
  auto command = protocol::DeviceCommand::decode(*body);
  if (!command) {
    return command;
  }
  const nlohmann::json header = nlohmann::json::parse(*header_json, nullptr, false);
  const std::string topic = device_topic(Channel::kDeviceControl, command->device_id);
  if (!header.is_object() || !header.contains("rmt") || header["rmt"] != topic) {
    return Result<protocol::DeviceCommand>::failure(ErrorCode::kInvalidArgument,
                                                    "not bound to the device's topic");
  }
  if (command->type != DeviceCommandType::kDiagnostic) {
    return Result<protocol::DeviceCommand>::failure(ErrorCode::kInvalidArgument,
                                                    "only diagnostics are signed");
  }
  return command;
}

}  // namespace

// A diagnostic may also arrive bare, as the signed device command itself.
void Gateway::on_signed_control(std::string_view payload) {
  const std::string_view compact = payload.substr(payload.find_first_not_of(" \t\r\n"));
  auto command = read_signed_command(compact);
  if (!command) {
    refuse(counters_.refused_malformed, "signed control", command.status().message);
    return;
  }

  if (!devices_.contains(command->device_id)) {
    refuse(counters_.refused_unknown_device, "signed control", command->device_id);
    return;
  }
  MemberControl control;
  control.control_id = command->control_id.value_or(command->command_id);
  control.member_id = config_.member;
  control.device_ids = {command->device_id};
  control.type = MemberControlType::kDiagnostic;
  control.intent = protocol::ControlIntent::kIdempotent;
  control.issued_by = command->issued_by;
  control.issued_at = command->issued_at;
  control.expire_at = command->expire_at;
  control.sequence = command->sequence;
  if (!admit(control.control_id.str(), control.issued_by, control.sequence, control.expire_at,
             control, compact)) {
    return;
  }
  DeviceWork work;
  work.device_id = command->device_id;
  work.type = DeviceCommandType::kDiagnostic;
  work.signed_payload = std::string(compact);
  work.command_id = command->command_id.str();
  ActiveControl active{std::move(control), {}};
  active.work.push_back(std::move(work));
  execute(std::move(active), false);
}

std::vector<Gateway::DeviceWork> Gateway::translate(const MemberControl& control,
                                                    std::vector<DeviceResult>& refused) {
  std::vector<DeviceWork> out;
  const auto fail = [&](const std::string& device, std::int32_t code, std::string why) {
    DeviceResult r;
    r.device_id = device;
    r.status = DeviceOutcome::kFailed;
    r.exit_code = code;
    r.details = std::move(why);
    r.executed_at = wall_now();
    refused.push_back(std::move(r));
  };
  const auto add = [&](const std::string& device, DeviceCommandType type, nlohmann::json params) {
    DeviceWork work;
    work.device_id = device;
    work.type = type;
    work.params = std::move(params);
    out.push_back(std::move(work));
  };
  // The devices a control names; energy controls without names apply to every suitable device.
  std::vector<std::string> targets = control.device_ids;
  const auto kinds_for = [&](std::initializer_list<DeviceKind> kinds) {
    if (targets.empty()) {
      for (const auto& device : config_.devices) {
        if (std::find(kinds.begin(), kinds.end(), device.kind) != kinds.end()) {
          targets.push_back(device.id);
        }
      }
    }
  };
  DeviceCommandType type = DeviceCommandType::kPowerOn;
  nlohmann::json params = nlohmann::json::object();
  switch (control.type) {
    case MemberControlType::kDiagnostic: {
      // params.signed_commands holds, per device, the command the EMS engine signed.
      const nlohmann::json signed_commands =
          control.params.value("signed_commands", nlohmann::json::object());
      for (const auto& device : targets) {
        const auto entry = signed_commands.find(device);
        if (entry == signed_commands.end() || !entry->is_string()) {
          fail(device, protocol::kExitBadSignature,
               "a diagnostic must carry a device command signed by the EMS engine");
          continue;
        }
        const std::string compact = entry->get<std::string>();
        auto command = read_signed_command(compact);
        if (!command || command->device_id != device) {
          fail(device, protocol::kExitBadSignature,
               command ? "signed for another device" : command.status().message);
          continue;
        }
        DeviceWork work;
        work.device_id = device;
        work.type = DeviceCommandType::kDiagnostic;
        work.signed_payload = compact;
        work.command_id = command->command_id.str();
        out.push_back(std::move(work));
      }
      return out;
    }
    case MemberControlType::kDeviceCommand: {
      auto parsed = protocol::parse_device_command_type(control.params.value("command", ""));
      if (!parsed) {
        for (const auto& device : targets) {
          fail(device, protocol::kExitInvalidParams, "unknown device command");
        }
        return out;
      }
      if (*parsed == DeviceCommandType::kDiagnostic) {
        for (const auto& device : targets) {
          fail(device, protocol::kExitBadSignature,
               "a diagnostic must arrive as a device command signed by the EMS engine");
        }
        return out;
      }
      type = *parsed;
      if (control.params.contains("params")) {
        params = control.params["params"];
      }
      break;
    }
    case MemberControlType::kStoreSurplus:
      kinds_for({DeviceKind::kAccumulator});
      type = DeviceCommandType::kChargeMode;
      break;
    case MemberControlType::kCoverDeficit:
      kinds_for({DeviceKind::kAccumulator});
      type = DeviceCommandType::kDischargeMode;
      break;
    case MemberControlType::kActivateLoad:
      type = DeviceCommandType::kPowerOn;
      break;
  }
  for (const auto& device : targets) {
    const GatewayDevice* known = config_.find(device);
    if (known == nullptr) {
      fail(device, protocol::kExitFailed, "device not known to the gateway");
    } else if (!protocol::accepts_command(known->kind, type)) {
      fail(device, protocol::kExitUnsupported,
           fmt::format("a {} does not accept {}", protocol::to_string(known->kind),
                       protocol::to_string(type)));
    } else {
      add(device, type, params);
    }
  }
  return out;
}

void Gateway::execute(ActiveControl active, bool resumed) {
  const std::string id = active.control.control_id.str();
  std::vector<DeviceResult> refused;
  if (active.work.empty()) {
    active.work = translate(active.control, refused);
  }
  for (auto& r : refused) {
    DeviceWork work;
    work.device_id = r.device_id;
    work.done = true;
    work.result = std::move(r);
    active.work.push_back(std::move(work));
  }
  if (active.work.empty()) {
    refuse_control(active.control, "no device to act on");
    return;
  }
  respond(active.control, MemberControlStatus::kExecuting,
          resumed ? std::optional<std::string>("resumed after a gateway restart") : std::nullopt,
          {});
  const std::size_t count = active.work.size();
  active_[id] = std::move(active);
  for (std::size_t i = 0; i < count; ++i) {
    if (!active_[id].work[i].done) {
      send_attempt(id, i);
    }
  }
  finish_if_done(id);
}

void Gateway::send_attempt(const std::string& control_id, std::size_t index) {
  ActiveControl& active = active_.at(control_id);
  DeviceWork& work = active.work[index];
  ++work.attempt;
  std::string payload;
  const std::string topic = device_topic(Channel::kDeviceControl, work.device_id);
  if (work.signed_payload) {
    payload = *work.signed_payload;
    log_.insert_command(work.command_id, control_id, work.device_id, "diagnostic", work.attempt, 0,
                        payload);
  } else {
    protocol::DeviceCommand command;
    command.control_id = active.control.control_id;
    command.command_id = protocol::Uuid::random_v4();
    command.device_id = work.device_id;
    command.type = work.type;
    command.params = work.params;
    command.issued_by = gateway_id_;
    command.issued_at = wall_now();
    command.expire_at = command.issued_at + config_.device_timeout;
    command.sequence = log_.next_command_sequence();
    auto encoded = command.encode();
    if (!encoded) {
      on_device_outcome(control_id, index, DeviceOutcome::kFailed, protocol::kExitInvalidParams,
                        encoded.status().message, false);
      return;
    }
    payload = std::move(encoded).value();
    work.command_id = command.command_id.str();
    log_.insert_command(work.command_id, control_id, work.device_id, protocol::to_string(work.type),
                        work.attempt, command.sequence, payload);
  }
  pending_commands_[work.command_id] = {control_id, index};
  publish(topic, payload);
  ++counters_.device_commands_sent;
  work.timer = loop_.add_timer(
      config_.device_timeout, [this, control_id, index, command_id = work.command_id] {
        auto it = active_.find(control_id);
        if (it == active_.end()) {
          return;
        }
        it->second.work[index].timer = 0;
        ++counters_.device_timeouts;
        pending_commands_.erase(command_id);
        log_.update_command(command_id, "FAILED", protocol::kExitTimeout,
                            "no answer before the deadline");
        on_device_outcome(control_id, index, DeviceOutcome::kFailed, protocol::kExitTimeout,
                          "no answer before the deadline", true);
      });
}

void Gateway::on_device_response(const std::string& device, std::string_view payload) {
  auto decoded = protocol::DeviceCommandResponse::decode(payload);
  if (!decoded) {
    refuse(counters_.refused_malformed, "device response", decoded.status().message);
    return;
  }
  if (decoded->device_id != device) {
    refuse(counters_.refused_malformed, "device response", "device differs from the topic's");
    return;
  }
  if (const auto island = island_commands_.find(decoded->command_id.str());
      island != island_commands_.end()) {
    log_.update_command(island->first, protocol::to_string(decoded->status), decoded->exit_code,
                        decoded->details.dump());
    if (decoded->status == DeviceCommandStatus::kCompleted ||
        decoded->status == DeviceCommandStatus::kFailed) {
      island_actions_.at(island->second)["outcome"] = protocol::to_string(decoded->status);
      if (decoded->status == DeviceCommandStatus::kFailed) {
        island_modes_.erase(device);  // try again at the next window
      }
      island_commands_.erase(island);
    }
    return;
  }
  const auto pending = pending_commands_.find(decoded->command_id.str());
  if (pending == pending_commands_.end()) {
    refuse(counters_.refused_unknown_command, "response for a command not pending",
           decoded->command_id.str());
    return;
  }
  const auto [control_id, index] = pending->second;
  DeviceWork& work = active_.at(control_id).work[index];
  if (work.device_id != device) {
    refuse(counters_.refused_malformed, "device response", "from another device");
    return;
  }
  std::string details = decoded->details.dump();
  log_.update_command(work.command_id, protocol::to_string(decoded->status), decoded->exit_code,
                      details);
  if (decoded->status != DeviceCommandStatus::kCompleted &&
      decoded->status != DeviceCommandStatus::kFailed) {
    return;
  }
  pending_commands_.erase(pending);
  if (work.timer != 0) {
    loop_.cancel_timer(work.timer);
    work.timer = 0;
  }
  const bool completed = decoded->status == DeviceCommandStatus::kCompleted;
  on_device_outcome(control_id, index, completed ? DeviceOutcome::kSuccess : DeviceOutcome::kFailed,
                    decoded->exit_code, decoded->details,
                    decoded->exit_code == protocol::kExitFailed);
}

void Gateway::on_device_outcome(const std::string& control_id, std::size_t index,
                                DeviceOutcome outcome, std::int32_t exit_code,
                                nlohmann::json details, bool retryable) {
  ActiveControl& active = active_.at(control_id);
  DeviceWork& work = active.work[index];
  const protocol::RetryPolicy& policy = active.control.retry_policy;
  // Only an idempotent intent may be sent again, and never a signed command (the device would
  // refuse the same bytes as a duplicate).
  if (outcome == DeviceOutcome::kFailed && retryable && !work.signed_payload &&
      active.control.intent == protocol::ControlIntent::kIdempotent &&
      work.attempt <= policy.max_retries && active.control.expire_at > wall_now()) {
    std::uint64_t delay_ms = policy.backoff_initial_ms;
    if (policy.backoff_exponential) {
      delay_ms <<= std::min<std::uint32_t>(work.attempt - 1, 20);
    }
    ++counters_.device_retries;
    work.timer = loop_.add_timer(std::chrono::milliseconds(static_cast<std::int64_t>(delay_ms)),
                                 [this, control_id, index] {
                                   auto it = active_.find(control_id);
                                   if (it != active_.end()) {
                                     it->second.work[index].timer = 0;
                                     send_attempt(control_id, index);
                                   }
                                 });
    return;
  }
  work.done = true;
  work.result.device_id = work.device_id;
  work.result.status = outcome;
  work.result.exit_code = outcome == DeviceOutcome::kSuccess ? protocol::kExitOk
                          : exit_code == protocol::kExitOk   ? protocol::kExitFailed
                                                             : exit_code;
  work.result.details = details.is_object() || details.is_string() ? std::move(details)
                                                                   : nlohmann::json(details.dump());
  work.result.executed_at = wall_now();
  finish_if_done(control_id);
}

void Gateway::finish_if_done(const std::string& control_id) {
  auto it = active_.find(control_id);
  if (it == active_.end()) {
    return;
  }
  std::vector<DeviceResult> results;
  std::size_t successes = 0;
  for (const auto& work : it->second.work) {
    if (!work.done) {
      return;
    }
    results.push_back(work.result);
    successes += work.result.status == DeviceOutcome::kSuccess ? 1 : 0;
  }
  const MemberControlStatus status = successes == results.size() ? MemberControlStatus::kSuccess
                                     : successes == 0            ? MemberControlStatus::kFailed
                                                                 : MemberControlStatus::kPartial;
  respond(it->second.control, status, std::nullopt, std::move(results));
  active_.erase(it);
}

void Gateway::resume_unfinished() {
  for (const auto& stored : log_.unfinished_controls()) {
    const bool idempotent =
        stored.intent == protocol::to_string(protocol::ControlIntent::kIdempotent);
    auto decoded = MemberControl::decode(stored.payload);
    if (!decoded) {
      // A signed diagnostic: its bytes cannot be sent again (the device deduplicates them).
      log_.fail_open_commands(stored.control_id, "gateway restarted");
      log_.update_control(stored.control_id, "FAILED", std::nullopt);
      spdlog::warn("gateway: control {} left open by a restart; marked FAILED", stored.control_id);
      continue;
    }
    log_.fail_open_commands(stored.control_id, "gateway restarted before the answer");
    if (!idempotent || decoded->expire_at <= wall_now()) {
      spdlog::warn("gateway: control {} left open by a restart; marked FAILED, not re-executed",
                   stored.control_id);
      refuse_control(*decoded, idempotent
                                   ? "gateway restarted; the control expired meanwhile"
                                   : "gateway restarted during a non-idempotent control; not "
                                     "executed again, its outcome on the devices is unknown");
      continue;
    }
    spdlog::info("gateway: resuming idempotent control {} after a restart", stored.control_id);
    execute(ActiveControl{std::move(decoded).value(), {}}, true);
  }
}

// ---- Island mode --------------------------------------------------------------------------

void Gateway::arm_island_timer() {
  if (config_.island_after.count() == 0 || island_ || island_timer_ != 0 || stopping_) {
    return;
  }
  island_timer_ = loop_.add_timer(config_.island_after, [this] {
    island_timer_ = 0;
    enter_island();
  });
}

void Gateway::on_bridge_status(std::string_view payload) {
  if (payload.empty()) {
    return;
  }
  auto flag = protocol::parse_status_flag(payload);
  if (!flag) {
    refuse(counters_.refused_malformed, "bridge status", flag.status().message);
    return;
  }
  if (*flag == protocol::StatusFlag::kOnline) {
    if (island_timer_ != 0) {
      loop_.cancel_timer(island_timer_);
      island_timer_ = 0;
    }
    if (island_) {
      leave_island();
    }
  } else {
    arm_island_timer();
  }
}

void Gateway::enter_island() {
  island_ = true;
  island_since_ = wall_now();
  island_modes_.clear();
  island_actions_.clear();
  ++counters_.island_periods;
  spdlog::warn("gateway: platform unreachable for {} ms: island mode, local self-consumption",
               config_.island_after.count());
}

void Gateway::leave_island() {
  island_ = false;
  nlohmann::json report = {{"gateway_id", gateway_id_},
                           {"from", protocol::format_timestamp(island_since_)},
                           {"to", protocol::format_timestamp(wall_now())},
                           {"policy", "self-consumption"},
                           {"actions", island_actions_}};
  publish_platform(kIslandReportTopic, report.dump());
  spdlog::info("gateway: platform reachable again; island report with {} actions",
               island_actions_.size());
  island_actions_.clear();
  island_commands_.clear();
  island_modes_.clear();
}

// Surplus (production above consumption) charges the accumulators, a deficit discharges them.
void Gateway::apply_island_policy(const protocol::MemberMetrics& m) {
  const double surplus_w = m.production_w - m.consumption_w;
  std::optional<DeviceCommandType> wanted;
  if (surplus_w > config_.island_threshold_w) {
    wanted = DeviceCommandType::kChargeMode;
  } else if (surplus_w < -config_.island_threshold_w) {
    wanted = DeviceCommandType::kDischargeMode;
  }
  if (!wanted || island_actions_.size() >= kMaxIslandActions) {
    return;
  }
  for (const auto& [id, view] : devices_) {
    if (view.device->kind != DeviceKind::kAccumulator || !view.online) {
      continue;
    }
    const auto last = island_modes_.find(id);
    if (last != island_modes_.end() && last->second == *wanted) {
      continue;
    }
    protocol::DeviceCommand command;
    command.command_id = protocol::Uuid::random_v4();  // control_id null: the gateway's own
    command.device_id = id;
    command.type = *wanted;
    command.issued_by = gateway_id_;
    command.issued_at = wall_now();
    command.expire_at = command.issued_at + config_.device_timeout;
    command.sequence = log_.next_command_sequence();
    auto encoded = command.encode();
    if (!encoded) {
      continue;
    }
    log_.insert_command(command.command_id.str(), "", id, protocol::to_string(*wanted), 1,
                        command.sequence, *encoded);
    publish(device_topic(Channel::kDeviceControl, id), *encoded);
    island_modes_[id] = *wanted;
    island_commands_[command.command_id.str()] = island_actions_.size();
    island_actions_.push_back({{"device_id", id},
                               {"command", protocol::to_string(*wanted)},
                               {"command_id", command.command_id.str()},
                               {"at", protocol::format_timestamp(command.issued_at)},
                               {"surplus_w", surplus_w},
                               {"outcome", "SENT"}});
    ++counters_.island_commands;
    ++counters_.device_commands_sent;
  }
}

// ---- Process ------------------------------------------------------------------------------

int run_gateway(GatewayConfig config) {
  StopOnSignal signals;
  mqtt::EventLoop loop;
  Gateway gateway(loop, std::move(config));
  signals.run(
      loop, "the gateway", [&] { gateway.start(); },
      [&](std::function<void()> done) { gateway.stop(std::move(done)); });
  spdlog::info("gateway stopped: {} aggregates, {} controls, {} refused",
               gateway.counters().aggregates_published, gateway.counters().controls_accepted,
               gateway.counters().refused());
  return 0;
}

}  // namespace recmesh::gateway
