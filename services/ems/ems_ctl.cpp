#include "ems/ems_ctl.hpp"

#include <memory>
#include <optional>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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
    auto response = protocol::MemberControlResponse::decode(message.payload);
    if (!response || response->control_id != control.control_id ||
        response->gateway_id != fmt::format("rec_{}_{}_gateway", request.rec, request.member)) {
      return;  // another control's, or not a response at all
    }
    responses.push_back(parse_or_string(response->encode().value()));
    const std::string status(protocol::to_string(response->status));
    if (is_final_state(status) && !final_status) {
      final_status = status;
      finish();
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
  if (!request.wait) {
    result["status"] = "ISSUED";
    return {kDone, result};
  }
  if (!final_status) {
    result["status"] = std::string(kStateTimedOut);
    return {kControlFailed, result};
  }
  result["status"] = *final_status;
  return {*final_status == "SUCCESS" ? kDone : kControlFailed, result};
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

}  // namespace recmesh::ems
