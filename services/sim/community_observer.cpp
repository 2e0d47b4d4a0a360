#include "sim/community_observer.hpp"

#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "recmesh/core/sqlite_database.hpp"

namespace recmesh::sim {
namespace {

// "/<rec>/<member>/<rest>" -> ("rec/member", "rest"); empty label for other topics.
std::pair<std::string, std::string_view> split_member(std::string_view topic) {
  if (topic.size() < 2 || topic[0] != '/') {
    return {};
  }
  const auto second = topic.find('/', 1);
  if (second == std::string_view::npos) {
    return {};
  }
  const auto third = topic.find('/', second + 1);
  if (third == std::string_view::npos) {
    return {};
  }
  return {std::string(topic.substr(1, third - 1)), topic.substr(third + 1)};
}

}  // namespace

EmsView read_ems_view(const std::filesystem::path& database) {
  EmsView view;
  std::error_code ignored;
  if (!std::filesystem::exists(database, ignored)) {
    return view;
  }
  try {
    SqliteDatabase db(database, SqliteDatabase::Mode::kReadOnly);
    auto controls = db.prepare("SELECT state, COUNT(*) FROM controls GROUP BY state");
    while (controls.step()) {
      const std::string state = controls.column_text(0);
      const auto n = static_cast<std::uint64_t>(controls.column_int(1));
      view.controls_issued += n;
      if (state == "SUCCESS") {
        view.controls_completed += n;
      } else if (state == "FAILED" || state == "PARTIAL" || state == "TIMED_OUT") {
        view.controls_failed += n;
      } else {
        view.controls_in_flight += n;
      }
    }
    // The bridge delivers at least once: a repeated aggregate is the same payload again.
    auto metrics = db.prepare(
        "SELECT rec, member, COUNT(DISTINCT payload), COUNT(*) FROM metrics "
        "WHERE metric = 'aggregate' GROUP BY rec, member");
    while (metrics.step()) {
      const auto distinct = static_cast<std::uint64_t>(metrics.column_int(2));
      view.metrics_by_member[metrics.column_text(0) + "/" + metrics.column_text(1)] = distinct;
      view.metrics_received += distinct;
      view.metrics_duplicates += static_cast<std::uint64_t>(metrics.column_int(3)) - distinct;
    }
    std::set<std::string> gateways;
    auto components = db.prepare(
        "SELECT rec, member FROM components WHERE component = 'smart-gateway' AND "
        "status = 'online'");
    while (components.step()) {
      gateways.insert(components.column_text(0) + "/" + components.column_text(1));
    }
    view.gateways_online = gateways.size();
    auto members = db.prepare("SELECT rec, member, metrics FROM members");
    while (members.step()) {
      ++view.members_with_metrics;
      const std::string label = members.column_text(0) + "/" + members.column_text(1);
      if (gateways.contains(label)) {
        view.online_members.push_back(label);
      }
      const auto decoded = protocol::MemberMetrics::decode(members.column_text(2));
      if (decoded) {
        for (std::size_t s = 0; s < protocol::kDeviceStateCount; ++s) {
          if (s != static_cast<std::size_t>(protocol::DeviceState::kOffline)) {
            view.devices_online += decoded->devices.by_state[s];
          }
        }
      }
    }
  } catch (const std::exception& e) {
    spdlog::debug("sim: EMS database not readable yet: {}", e.what());
  }
  return view;
}

CommunityObserver::CommunityObserver(mqtt::EventLoop& loop, mqtt::MqttClientOptions options) {
  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_message = [this](const mqtt::IncomingMessage& m) { on_message(m); };
  options.clean_session = true;
  client_ = std::make_unique<mqtt::MqttClient>(loop, std::move(options), std::move(callbacks));
  (void)client_->subscribe("/#", 0);
}

CommunityObserver::~CommunityObserver() = default;

void CommunityObserver::start() {
  client_->start();
}

void CommunityObserver::stop(const std::function<void()>& done) {
  client_->stop();
  done();
}

bool CommunityObserver::connected() const {
  return client_->connected();
}

void CommunityObserver::on_message(const mqtt::IncomingMessage& message) {
  if (message.topic == "/ems/security/events") {
    ++security_events_;
    return;
  }
  const auto [member, rest] = split_member(message.topic);
  if (member.empty()) {
    return;
  }
  if (rest == "control" || rest == "keys") {
    ++down_;
    if (rest == "control" && !message.retain) {
      controls_[member] = {std::string(message.topic), std::string(message.payload)};
      last_control_member_ = member;
    }
    return;
  }
  ++up_;
  if (rest == "security/events") {
    ++security_events_;
  } else if (rest == "control/response") {
    const auto json = nlohmann::json::parse(message.payload, nullptr, false);
    if (json.is_object() && json.value("status", "") == "EXECUTING") {
      ++executions_[json.value("control_id", "")];
    }
  } else if (rest == "metrics/aggregate" && !message.retain) {
    auto decoded = protocol::MemberMetrics::decode(message.payload);
    if (decoded) {
      ++aggregates_;
      latest_[member] = *decoded;
    }
  }
}

CommunityPower CommunityObserver::power() const {
  CommunityPower p;
  double soc_sum = 0;
  int soc_members = 0;
  for (const auto& [member, m] : latest_) {
    p.production_w += m.production_w;
    p.consumption_w += m.consumption_w;
    p.storage_power_w += m.storage_power_w;
    p.net_exchange_w += m.net_exchange_w;
    if (m.storage_soc_percent) {
      soc_sum += *m.storage_soc_percent;
      ++soc_members;
    }
  }
  if (soc_members > 0) {
    p.soc_percent = soc_sum / soc_members;
  }
  return p;
}

std::optional<std::pair<std::string, std::string>> CommunityObserver::last_control(
    const std::string& member) const {
  const auto found = controls_.find(member.empty() ? last_control_member_ : member);
  if (found == controls_.end()) {
    return std::nullopt;
  }
  return found->second;
}

std::uint64_t CommunityObserver::executions(const std::string& control_id) const {
  const auto found = executions_.find(control_id);
  return found == executions_.end() ? 0 : found->second;
}

std::string CommunityObserver::control_id_of(std::string_view payload) {
  const auto json = nlohmann::json::parse(payload, nullptr, false);
  if (!json.is_object() || !json.contains("control_id") || !json["control_id"].is_string()) {
    return "";
  }
  return json["control_id"].get<std::string>();
}

}  // namespace recmesh::sim
