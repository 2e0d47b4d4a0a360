#include "device/simulated_device.hpp"

#include <cmath>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/protocol/telemetry_messages.hpp"
#include "recmesh/protocol/topics.hpp"

namespace recmesh::device {
namespace {

using protocol::Channel;
using protocol::DeviceCommandStatus;
using protocol::DeviceCommandType;
using protocol::DeviceKind;
using protocol::LogLevel;

constexpr std::string_view kSoftwareVersion = "recmesh-device-sim-0.1.0";
constexpr std::string_view kFirmwareVersion = "sim-fw-1.0";
// SHA-256 of the simulated firmware image: fixed, as for a device that was never updated.
constexpr std::string_view kFirmwareSha256 =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

std::string topic_of(Channel channel, const std::string& device) {
  auto topic = protocol::local_device_topic(channel, device);
  if (!topic) {
    throw Error(ErrorCode::kInvalidArgument, topic.status().message);
  }
  return std::move(topic).value();
}

std::string metrics_topic_of(const std::string& device) {
  protocol::Topic topic;
  topic.channel = Channel::kDeviceMetrics;
  topic.device = device;
  topic.metric = std::string(protocol::kDeviceSnapshotMetric);
  auto name = protocol::format_topic(topic);
  if (!name) {
    throw Error(ErrorCode::kInvalidArgument, name.status().message);
  }
  return std::move(name).value();
}

// A JWS compact string, not JSON: the only form a signed diagnostic arrives in.
bool looks_signed(std::string_view payload) {
  const auto first = payload.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && payload[first] != '{';
}

}  // namespace

double SimulationClock::hour_of_day(mqtt::MonotonicClock::TimePoint now) const {
  const double elapsed_s = std::chrono::duration<double>(now - origin).count();
  const double hours = start_hour + elapsed_s * time_scale / 3600.0;
  return std::fmod(hours, 24.0);
}

SimulatedDevice::SimulatedDevice(Environment env, DeviceSpec spec, std::uint64_t seed,
                                 std::optional<std::chrono::milliseconds> crash_after)
    : env_(std::move(env)),
      spec_(std::move(spec)),
      model_(spec_, env_.config->cloudiness, seed),
      signer_(crypto::JwsSigner::from_files(spec_.certfile, spec_.keyfile)),
      status_topic_(topic_of(Channel::kDeviceStatus, spec_.id)),
      control_topic_(topic_of(Channel::kDeviceControl, spec_.id)),
      response_topic_(topic_of(Channel::kDeviceControlResponse, spec_.id)),
      metrics_topic_(metrics_topic_of(spec_.id)),
      diagnostic_topic_(topic_of(Channel::kDeviceDiagnostic, spec_.id)),
      crash_after_(crash_after) {
  client_id_ = signer_.common_name().empty() ? spec_.id : signer_.common_name();
}

SimulatedDevice::~SimulatedDevice() {
  if (env_.loop != nullptr) {
    for (const auto timer : {metrics_timer_, crash_timer_, reboot_timer_}) {
      if (timer != 0) {
        env_.loop->cancel_timer(timer);
      }
    }
  }
}

protocol::Timestamp SimulatedDevice::wall_now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

void SimulatedDevice::create_client() {
  mqtt::MqttClientOptions options;
  options.host = env_.config->broker_host;
  options.port = env_.config->broker_port;
  options.client_id = client_id_;
  options.cafile = spec_.cafile;
  options.certfile = spec_.certfile;
  options.keyfile = spec_.keyfile;
  options.status_topic = status_topic_;
  options.reconnect.initial = std::chrono::milliseconds(500);
  options.reconnect.max = std::chrono::milliseconds(30000);

  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [this] { on_connect(); };
  callbacks.on_message = [this](const mqtt::IncomingMessage& message) {
    handle_message(message.topic, message.payload);
  };
  callbacks.on_stopped = [this, alive = std::weak_ptr<int>(alive_)] {
    // The client may not be destroyed inside its own callback chain: do it on the next turn.
    env_.loop->post([this, alive] {
      if (alive.expired()) {
        return;
      }
      client_.reset();
      if (stopping_) {
        if (on_stopped_) {
          std::exchange(on_stopped_, nullptr)();
        }
        return;
      }
      // A reboot: stay offline for reboot_delay, then come back healthy.
      reboot_timer_ = env_.loop->add_timer(env_.config->reboot_delay, [this] {
        reboot_timer_ = 0;
        model_.reset();
        next_status_reason_ = "rebooted";
        create_client();
        client_->start();
      });
    });
  };
  client_ =
      std::make_unique<mqtt::MqttClient>(*env_.loop, std::move(options), std::move(callbacks));
  if (auto subscribed = client_->subscribe(control_topic_, 1); !subscribed) {
    throw Error(ErrorCode::kInvalidArgument, subscribed.status().message);
  }
}

void SimulatedDevice::start() {
  started_at_ = env_.loop->now();
  last_step_ = started_at_;
  create_client();
  client_->start();
  schedule_metrics();
  if (crash_after_) {
    crash_timer_ = env_.loop->add_timer(*crash_after_, [this] {
      crash_timer_ = 0;
      crash();
    });
  }
}

void SimulatedDevice::on_connect() {
  publish_status_info(std::exchange(next_status_reason_, "reconnected"));
  if (!started_once_) {
    started_once_ = true;
    publish_log(LogLevel::kInfo, "device started",
                {{"kind", std::string(protocol::to_string(spec_.kind))}});
  } else {
    publish_log(LogLevel::kInfo, "device connected again");
  }
  publish_metrics();
}

void SimulatedDevice::stop(std::function<void()> done) {
  stopping_ = true;
  for (auto* timer : {&metrics_timer_, &crash_timer_, &reboot_timer_}) {
    if (*timer != 0) {
      env_.loop->cancel_timer(*timer);
      *timer = 0;
    }
  }
  if (!client_) {
    done();
    return;
  }
  on_stopped_ = std::move(done);
  client_->stop();
}

void SimulatedDevice::abort() {
  stopping_ = true;
  if (client_) {
    client_->abort();
  }
}

void SimulatedDevice::schedule_metrics() {
  metrics_timer_ = env_.loop->add_timer(env_.config->metrics_interval, [this] {
    metrics_timer_ = 0;
    publish_metrics();
    schedule_metrics();
  });
}

void SimulatedDevice::step_model() {
  const auto now = env_.loop->now();
  const double seconds =
      std::chrono::duration<double>(now - last_step_).count() * env_.clock->time_scale;
  last_step_ = now;
  const double net =
      spec_.kind == DeviceKind::kMeter && env_.member_net_w ? env_.member_net_w(spec_) : 0.0;
  model_.advance(seconds, env_.clock->hour_of_day(now), net);
}

void SimulatedDevice::publish_metrics() {
  step_model();
  if (!connected()) {
    return;  // readings while offline are lost, as on a real device without storage
  }
  const auto payload = model_.snapshot(wall_now()).encode();
  if (!payload) {
    spdlog::error("device {}: metrics do not encode: {}", spec_.id, payload.status().message);
    return;
  }
  if (client_->publish(metrics_topic_, *payload, 1, false)) {
    ++counters_.metrics_published;
  }
}

void SimulatedDevice::publish_status_info(std::string reason) {
  if (!client_) {
    return;
  }
  protocol::StatusInfo info;
  info.timestamp = wall_now();
  info.status = protocol::StatusFlag::kOnline;
  info.reason = std::move(reason);
  info.fields = nlohmann::json{{"health", model_.healthy() ? "HEALTHY" : "UNHEALTHY"},
                               {"kind", std::string(protocol::to_string(spec_.kind))}};
  const auto payload = info.encode();
  if (payload) {
    (void)client_->publish(status_topic_ + "/info", *payload, 1, true);
  }
}

void SimulatedDevice::publish_log(LogLevel level, std::string message, nlohmann::json fields) {
  switch (level) {
    case LogLevel::kWarn:
      spdlog::warn("device {}: {}", spec_.id, message);
      break;
    case LogLevel::kError:
    case LogLevel::kCritical:
    case LogLevel::kFatal:
      spdlog::error("device {}: {}", spec_.id, message);
      break;
    case LogLevel::kDebug:
    case LogLevel::kInfo:
      spdlog::debug("device {}: {}", spec_.id, message);
      break;
  }
  if (!client_) {
    return;
  }
  protocol::LogRecord record;
  record.level = level;
  record.timestamp = wall_now();
  record.source = spec_.id;
  record.message = std::move(message);
  if (fields.is_object() && !fields.empty()) {
    record.fields = std::move(fields);
  }
  protocol::Topic topic;
  topic.channel = Channel::kDeviceLog;
  topic.device = spec_.id;
  topic.level = level;
  const auto name = protocol::format_topic(topic);
  const auto payload = record.encode();
  if (name && payload) {
    (void)client_->publish(*name, *payload, 1, false);
  }
}

void SimulatedDevice::respond(const protocol::DeviceCommand& command, DeviceCommandStatus status,
                              std::int32_t exit_code, nlohmann::json details) {
  if (status == DeviceCommandStatus::kCompleted) {
    ++counters_.commands_completed;
  } else if (status == DeviceCommandStatus::kFailed) {
    ++counters_.commands_failed;
  }
  if (!client_) {
    return;
  }
  protocol::DeviceCommandResponse response;
  response.command_id = command.command_id;
  response.device_id = spec_.id;
  response.status = status;
  response.exit_code = exit_code;
  response.issued_at = wall_now();
  response.details = std::move(details);
  const auto payload = response.encode();
  if (!payload) {
    spdlog::error("device {}: response does not encode: {}", spec_.id, payload.status().message);
    return;
  }
  (void)client_->publish(response_topic_, *payload, 1, false);
}

void SimulatedDevice::refuse(std::uint64_t& counter, std::string_view why, std::string_view detail,
                             bool security) {
  ++counter;
  nlohmann::json fields{{"reason", std::string(why)},
                        {"detail", std::string(detail.substr(0, 512))}};
  if (!security) {
    publish_log(LogLevel::kWarn, fmt::format("command refused: {}", why), std::move(fields));
    return;
  }
  // SPEC §6 gives a device no write on /security/events: the event travels on its own log
  // topic at ERROR, which the gateway forwards to the platform at once.
  ++counters_.security_events;
  fields["event"] = "security";
  publish_log(LogLevel::kError, fmt::format("security event: command refused: {}", why),
              std::move(fields));
}

bool SimulatedDevice::remember_command(const std::string& command_id) {
  if (!recent_ids_.insert(command_id).second) {
    return false;
  }
  recent_order_.push_back(command_id);
  while (recent_order_.size() > env_.config->recent_command_ids) {
    recent_ids_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  return true;
}

void SimulatedDevice::handle_message(std::string_view topic, std::string_view payload) {
  if (topic != control_topic_) {
    return;
  }
  if (payload.size() > env_.config->max_command_bytes) {
    refuse(counters_.refused_oversize, "oversize",
           fmt::format("{} bytes, limit {}", payload.size(), env_.config->max_command_bytes));
    return;
  }
  std::string body;
  bool signed_by_ems = false;
  if (looks_signed(payload)) {
    if (env_.verifier == nullptr) {
      refuse(counters_.refused_signature, "signed command without EMS trust configured", "", true);
      return;
    }
    auto verified = env_.verifier->verify(topic, payload);
    if (!verified) {
      refuse(counters_.refused_signature, "bad signature", verified.status().message, true);
      return;
    }
    body = std::move(verified->payload);
    signed_by_ems = true;
  } else {
    body = std::string(payload);
  }
  auto decoded = protocol::DeviceCommand::decode(body);
  if (!decoded) {
    refuse(counters_.refused_malformed, "malformed", decoded.status().message);
    return;
  }
  const protocol::DeviceCommand& command = *decoded;
  if (command.device_id != spec_.id) {
    refuse(counters_.refused_other_device, "addressed to another device", command.device_id);
    return;
  }
  // A replayed, stale or reordered signed command (or a diagnostic) is an attack, not a hiccup.
  const bool security = signed_by_ems || command.type == DeviceCommandType::kDiagnostic;
  if (!remember_command(command.command_id.str())) {
    refuse(counters_.refused_duplicate, "duplicate command_id", command.command_id.str(), security);
    return;
  }
  if (command.expire_at <= wall_now()) {
    refuse(counters_.refused_expired, "expired", protocol::format_timestamp(command.expire_at),
           security);
    respond(command, DeviceCommandStatus::kFailed, protocol::kExitExpired,
            {{"reason", "expired at " + protocol::format_timestamp(command.expire_at)}});
    return;
  }
  const auto last = last_sequence_.find(command.issued_by);
  if (last != last_sequence_.end() && command.sequence <= last->second) {
    refuse(counters_.refused_sequence, "sequence not increasing",
           fmt::format("{} after {} from {}", command.sequence, last->second, command.issued_by),
           security);
    respond(
        command, DeviceCommandStatus::kFailed, protocol::kExitFailed,
        {{"reason", fmt::format("sequence {} is not after {}", command.sequence, last->second)}});
    return;
  }
  last_sequence_[command.issued_by] = command.sequence;
  execute(command, signed_by_ems);
}

void SimulatedDevice::execute(const protocol::DeviceCommand& command, bool signed_by_ems) {
  const std::string type(protocol::to_string(command.type));
  if (command.type == DeviceCommandType::kDiagnostic && !signed_by_ems) {
    refuse(counters_.refused_signature, "diagnostic not signed by the EMS",
           command.command_id.str(), true);
    respond(command, DeviceCommandStatus::kFailed, protocol::kExitBadSignature,
            {{"reason", "a diagnostic command must be signed by the EMS engine"}});
    return;
  }
  respond(command, DeviceCommandStatus::kReceived, protocol::kExitOk, nlohmann::json::object());
  if (spec_.kind == DeviceKind::kPassiveLoad) {
    publish_log(LogLevel::kWarn, "command refused: a passive device accepts no command",
                {{"command", type}});
    respond(command, DeviceCommandStatus::kFailed, protocol::kExitUnsupported,
            {{"reason", "a passive-load device accepts no command"}});
    return;
  }
  if (!protocol::accepts_command(spec_.kind, command.type)) {
    publish_log(LogLevel::kWarn, "command refused: not supported by this kind",
                {{"command", type}});
    respond(command, DeviceCommandStatus::kFailed, protocol::kExitUnsupported,
            {{"reason",
              fmt::format("a {} does not accept {}", protocol::to_string(spec_.kind), type)}});
    return;
  }
  if (!model_.healthy() && command.type != DeviceCommandType::kReboot &&
      command.type != DeviceCommandType::kDiagnostic) {
    respond(command, DeviceCommandStatus::kFailed, protocol::kExitFailed,
            {{"reason", "the device is unhealthy; reboot it first"}});
    return;
  }
  switch (command.type) {
    case DeviceCommandType::kDiagnostic:
      publish_diagnostic(command);
      respond(command, DeviceCommandStatus::kCompleted, protocol::kExitOk,
              {{"result", "diagnostic report published"}});
      return;
    case DeviceCommandType::kReboot:
      respond(command, DeviceCommandStatus::kCompleted, protocol::kExitOk,
              {{"result", "rebooting"}});
      reboot();
      return;
    default:
      break;
  }
  auto applied = model_.apply(command.type, command.params);
  if (!applied) {
    respond(command, DeviceCommandStatus::kFailed, protocol::kExitInvalidParams,
            {{"reason", applied.status().message}});
    return;
  }
  publish_log(LogLevel::kInfo, fmt::format("{} done", type), {{"result", *applied}});
  respond(command, DeviceCommandStatus::kCompleted, protocol::kExitOk, {{"result", *applied}});
  publish_metrics();  // the new state at once, not at the next tick
}

void SimulatedDevice::publish_diagnostic(const protocol::DeviceCommand& command) {
  std::uniform_real_distribution<double> load(2.0, 35.0);
  std::mt19937_64 rng(std::hash<std::string>{}(command.command_id.str()));
  protocol::DiagnosticReport report;
  report.timestamp = wall_now();
  report.trigger = protocol::DiagnosticTrigger::kCommand;
  report.command_id = command.command_id;
  report.software_version = std::string(kSoftwareVersion);
  report.firmware_version = std::string(kFirmwareVersion);
  report.firmware_sha256 = std::string(kFirmwareSha256);
  report.uptime_s = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(env_.loop->now() - started_at_).count());
  report.memory_total_bytes = std::uint64_t{64} << 20;
  report.memory_used_bytes = std::uint64_t{21} << 20;
  report.cpu_load_percent = load(rng);
  report.details = nlohmann::json{{"kind", std::string(protocol::to_string(spec_.kind))},
                                  {"state", std::string(protocol::to_string(model_.state()))},
                                  {"health", model_.healthy() ? "HEALTHY" : "UNHEALTHY"}};
  const auto payload = report.encode();
  if (!payload) {
    spdlog::error("device {}: diagnostic does not encode: {}", spec_.id, payload.status().message);
    return;
  }
  const std::string signed_report = signer_.sign(diagnostic_topic_, *payload);
  if (client_ && client_->publish(diagnostic_topic_, signed_report, 1, false)) {
    ++counters_.diagnostics_published;
  }
}

void SimulatedDevice::crash() {
  ++counters_.crashes;
  model_.crash();
  publish_status_info("crashed");
  publish_log(LogLevel::kError, "device crashed; reboot needed", {{"health", "UNHEALTHY"}});
  publish_metrics();
}

void SimulatedDevice::reboot() {
  ++counters_.reboots;
  publish_log(LogLevel::kInfo, "rebooting");
  if (client_) {
    client_->stop();  // offline, retained; on_stopped brings the device back
  }
}

}  // namespace recmesh::device
