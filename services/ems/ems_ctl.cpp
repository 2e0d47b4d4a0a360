#include "ems/ems_ctl.hpp"

#include <memory>
#include <optional>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/jws.hpp"
#include "recmesh/mqtt/event_loop.hpp"
#include "recmesh/mqtt/mqtt_client.hpp"
#include "recmesh/protocol/topics.hpp"

#include "ems/ems_engine.hpp"
#include "ems/ems_store.hpp"

namespace recmesh::ems {
namespace {

constexpr int kDone = 0;
constexpr int kControlFailed = 1;
constexpr int kCouldNotRun = 3;

CtlOutcome could_not_run(std::string message) {
  return {kCouldNotRun, nlohmann::json{{"error", std::move(message)}}};
}

nlohmann::json parse_or_string(const std::string& text) {
  if (text.empty()) {
    return nullptr;
  }
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json(text) : parsed;
}

}  // namespace

CtlOutcome ctl_send_control(const EmsConfig& config, const CtlControlRequest& request) {
  const auto topic = protocol::central_member_topic(protocol::Channel::kMemberControl, request.rec,
                                                    request.member);
  const auto response_topic = protocol::central_member_topic(
      protocol::Channel::kMemberControlResponse, request.rec, request.member);
  if (!topic || !response_topic) {
    return could_not_run(topic ? response_topic.status().message : topic.status().message);
  }
  protocol::MemberControl control;
  control.control_id = protocol::Uuid::random_v4();
  control.member_id = request.member;
  control.device_ids = request.devices;
  control.type = request.type;
  control.intent = request.type == protocol::MemberControlType::kDiagnostic
                       ? protocol::ControlIntent::kIdempotent
                       : protocol::ControlIntent::kNonIdempotent;
  control.params = request.params;
  control.issued_by = config.client_id;
  control.issued_at = now_timestamp();
  control.expire_at = control.issued_at + config.control_ttl;
  control.retry_policy = config.retry_policy;
  {
    EmsStore store(config.database, SqliteDatabase::Mode::kCreate);
    control.sequence = store.next_sequence(
        static_cast<std::uint64_t>(control.issued_at.time_since_epoch().count()));
  }
  // Diagnostic: the signed command for the device, and how to check its report.
  const std::string& device = request.diagnostic_device;
  std::optional<protocol::DeviceCommand> command;
  std::unique_ptr<crypto::JwsVerifier> verifier;
  std::string report_topic;
  std::string report_local_topic;
  if (!device.empty()) {
    const auto command_topic =
        protocol::local_device_topic(protocol::Channel::kDeviceControl, device);
    auto central_report = protocol::central_device_topic(protocol::Channel::kDeviceDiagnostic,
                                                         request.rec, request.member, device);
    auto local_report = protocol::local_device_topic(protocol::Channel::kDeviceDiagnostic, device);
    if (!command_topic || !central_report || !local_report) {
      return {2, nlohmann::json{{"error", "invalid device ID"}}};
    }
    report_topic = *central_report;
    report_local_topic = *local_report;
    if (config.pki_dir.empty()) {
      return could_not_run("ctl diagnostic needs pki_dir for the member CA");
    }
    try {
      const auto member_ca =
          config.pki_dir / "ca" / fmt::format("member_{}_{}", request.rec, request.member);
      crypto::SignerTrust trust;
      trust.issuer_pem = read_file(member_ca / "cert.pem");
      trust.crl_pem = read_file(member_ca / "crl.pem");
      trust.allowed_signers = {fmt::format("rec_{}_{}_{}", request.rec, request.member, device)};
      verifier = std::make_unique<crypto::JwsVerifier>(trust);
      const auto signer = crypto::JwsSigner::from_files(config.certfile, config.keyfile);
      command.emplace();
      command->control_id = control.control_id;
      command->command_id = protocol::Uuid::random_v4();
      command->device_id = device;
      command->type = protocol::DeviceCommandType::kDiagnostic;
      command->issued_by = config.client_id;
      command->issued_at = control.issued_at;
      command->expire_at = control.expire_at;
      command->sequence = control.sequence;
      const auto encoded = command->encode();
      if (!encoded) {
        return could_not_run(encoded.status().message);
      }
      control.params = {{"signed_commands", {{device, signer.sign(*command_topic, *encoded)}}}};
    } catch (const std::exception& e) {
      return could_not_run(e.what());
    }
  }
  const auto payload = control.encode();
  if (!payload) {
    return {2, nlohmann::json{{"error", payload.status().message}}};
  }

  mqtt::EventLoop loop;
  mqtt::MqttClientOptions options = config.mqtt_options();
  options.client_id = fmt::format("{}-ctl-{}", config.client_id, ::getpid());
  options.clean_session = true;
  options.reconnect.initial = std::chrono::milliseconds(200);

  nlohmann::json responses = nlohmann::json::array();
  std::optional<std::string> final_status;
  nlohmann::json report;  // the verified diagnostic report
  std::string report_error;
  bool delivered = false;
  bool published = false;
  std::string error;
  std::unique_ptr<mqtt::MqttClient> client;
  bool stopping = false;
  const auto finish = [&] {
    if (!stopping) {
      stopping = true;
      client->stop();
    }
  };

  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_subscribe = [&](const std::string& filter, int granted) {
    if (granted == 128) {
      error = "the broker refused the subscription to " + filter;
      finish();
      return;
    }
    if (!published) {
      published = true;
      auto sent = client->publish(*topic, *payload, 1);
      if (!sent) {
        error = sent.status().message;
        finish();
      }
    }
  };
  callbacks.on_delivered = [&](mqtt::MessageId) {
    delivered = true;
    if (!request.wait) {
      finish();
    }
  };
  callbacks.on_message = [&](const mqtt::IncomingMessage& message) {
    if (!report_topic.empty() && message.topic == report_topic) {
      // The device signed it for its local topic; the bridge only renamed it.
      const auto verified = verifier->verify(report_local_topic, message.payload);
      if (!verified) {
        report_error = "report refused: " + verified.status().message;
        return;
      }
      auto decoded = protocol::DiagnosticReport::decode(verified->payload);
      if (!decoded || decoded->command_id != command->command_id) {
        return;  // another command's report
      }
      report = {{"signer", verified->signer}, {"report", nlohmann::json::parse(verified->payload)}};
      if (request.wait) {
        finish();
      }
      return;
    }
    auto response = protocol::MemberControlResponse::decode(message.payload);
    if (!response || response->control_id != control.control_id ||
        response->gateway_id != fmt::format("rec_{}_{}_gateway", request.rec, request.member)) {
      return;  // another control's, or not a response at all
    }
    responses.push_back(parse_or_string(response->encode().value()));
    const std::string status(protocol::to_string(response->status));
    if (is_final_state(status) && !final_status) {
      final_status = status;
      // A diagnostic is done with its report; only a failure ends it without one.
      if (device.empty() || status != "SUCCESS") {
        finish();
      }
    }
  };
  callbacks.on_connect_failed = [&](const Status& reason) { error = reason.message; };
  callbacks.on_stopped = [&] { loop.stop(); };
  try {
    client = std::make_unique<mqtt::MqttClient>(loop, options, std::move(callbacks));
  } catch (const std::exception& e) {
    return could_not_run(e.what());
  }
  (void)client->subscribe(*response_topic, 1);
  if (!report_topic.empty()) {
    (void)client->subscribe(report_topic, 1);
  }
  client->start();
  const auto deadline = loop.add_timer(request.timeout, finish);
  loop.run();
  loop.cancel_timer(deadline);

  nlohmann::json result{{"control_id", control.control_id.str()},
                        {"rec", request.rec},
                        {"member", request.member},
                        {"type", protocol::to_string(request.type)},
                        {"sequence", control.sequence},
                        {"delivered", delivered},
                        {"responses", responses}};
  if (!delivered) {
    result["error"] = error.empty() ? "the broker did not acknowledge the control" : error;
    return {kCouldNotRun, result};
  }
  if (command) {
    result["command_id"] = command->command_id.str();
  }
  if (!request.wait) {
    result["status"] = "ISSUED";
    return {kDone, result};
  }
  if (command) {
    if (!report.is_null()) {
      result["status"] = final_status.value_or("REPORTED");
      result["diagnostic"] = report;
      return {kDone, result};
    }
    result["status"] = final_status.value_or(std::string(kStateTimedOut));
    result["error"] = report_error.empty() ? "no verified diagnostic report" : report_error;
    return {kControlFailed, result};
  }
  if (!final_status) {
    result["status"] = std::string(kStateTimedOut);
    return {kControlFailed, result};
  }
  result["status"] = *final_status;
  return {*final_status == "SUCCESS" ? kDone : kControlFailed, result};
}

CtlOutcome ctl_diagnostic(const EmsConfig& config, CtlControlRequest request) {
  request.type = protocol::MemberControlType::kDiagnostic;
  request.devices = {request.diagnostic_device};
  request.params = nlohmann::json::object();
  return ctl_send_control(config, request);
}

CtlOutcome ctl_list_members(const EmsConfig& config) {
  EmsStore store(config.database, SqliteDatabase::Mode::kReadOnly);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : store.members()) {
    out.push_back({{"rec", m.rec},
                   {"member", m.member},
                   {"updated_at", m.updated_at},
                   {"metrics", parse_or_string(m.metrics)}});
  }
  return {kDone, out};
}

CtlOutcome ctl_list_devices(const EmsConfig& config) {
  EmsStore store(config.database, SqliteDatabase::Mode::kReadOnly);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : store.components()) {
    out.push_back(
        {{"rec", c.rec},
         {"member", c.member},
         {"component", c.component},
         {"status", c.status.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.status)},
         {"info", parse_or_string(c.info)},
         {"updated_at", c.updated_at}});
  }
  return {kDone, out};
}

CtlOutcome ctl_list_controls(const EmsConfig& config) {
  EmsStore store(config.database, SqliteDatabase::Mode::kReadOnly);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : store.controls()) {
    out.push_back({{"control_id", c.control_id},
                   {"rec", c.rec},
                   {"member", c.member},
                   {"type", c.type},
                   {"sequence", c.sequence},
                   {"issued_at", c.issued_at},
                   {"state", c.state},
                   {"updated_at", c.updated_at},
                   {"last_response", parse_or_string(c.last_response)}});
  }
  return {kDone, out};
}

}  // namespace recmesh::ems
