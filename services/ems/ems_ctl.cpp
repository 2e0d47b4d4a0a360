#include "ems/ems_ctl.hpp"

#include <memory>
#include <optional>
#include <pwd.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/protocol/timestamp.hpp"
#include "recmesh/protocol/topics.hpp"

#include "ems/ems_engine.hpp"
#include "ems/ems_store.hpp"

namespace recmesh::ems {
namespace {

constexpr int kDone = 0;
constexpr int kControlFailed = 1;
constexpr int kUsage = 2;
constexpr int kCouldNotRun = 3;
constexpr std::chrono::milliseconds kPoll{100};
constexpr std::chrono::seconds kWatchMargin{5};

using Clock = std::chrono::steady_clock;

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

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Who the request is from, for the engine's log and the requests table.
std::string requester() {
  const uid_t uid = ::getuid();
  const passwd* entry = ::getpwuid(uid);
  return fmt::format("{} (uid {}, pid {})", entry != nullptr ? entry->pw_name : "?", uid,
                     ::getpid());
}

// The engine's database, opened as `mode`. Who can write it can control the community
// (docs/ems.md, "Who may control"): a failure says so and names the file.
std::unique_ptr<EmsStore> open_store(const EmsConfig& config, SqliteDatabase::Mode mode) {
  try {
    return std::make_unique<EmsStore>(config.database, mode);
  } catch (const std::exception& e) {
    const bool writing = mode != SqliteDatabase::Mode::kReadOnly;
    throw Error(ErrorCode::kPermissionDenied,
                fmt::format("cannot open the EMS database {} {}: {}{}", config.database.string(),
                            writing ? "for writing" : "for reading", e.what(),
                            writing ? " (ctl queues controls there for the running engine; only "
                                      "who may write it may control the community)"
                                    : ""));
  }
}

// The document ctl prints for a request and the control it became.
nlohmann::json describe(const std::string& control_id, const std::optional<RequestRow>& request,
                        const std::optional<ControlRow>& control) {
  nlohmann::json out{{"control_id", control_id}};
  if (request) {
    out["rec"] = request->rec;
    out["member"] = request->member;
    out["type"] = request->type;
    out["requested_by"] = request->requested_by;
    out["status"] = request->state;  // until the control exists
    if (!request->error.empty()) {
      out["error"] = request->error;
    }
    if (!request->device.empty()) {
      out["device"] = request->device;
    }
    if (!request->command_id.empty()) {
      out["command_id"] = request->command_id;
    }
    if (!request->report.empty()) {
      out["diagnostic"] = parse_or_string(request->report);
    }
  }
  if (control) {
    out["rec"] = control->rec;
    out["member"] = control->member;
    out["type"] = control->type;
    out["sequence"] = control->sequence;
    out["issued_at"] = control->issued_at;
    out["status"] = control->state;
    out["updated_at"] = control->updated_at;
    out["last_response"] = parse_or_string(control->last_response);
  }
  return out;
}

bool is_diagnostic_request(const std::optional<RequestRow>& request) {
  return request && !request->device.empty();
}

// Done following: final, and a succeeded diagnostic request has its verified report.
bool finished(const std::optional<RequestRow>& request, const std::optional<ControlRow>& control) {
  if (request && (request->state == kRequestExpired || request->state == kRequestRefused)) {
    return true;
  }
  if (!control || !is_final_state(control->state)) {
    return false;
  }
  return !is_diagnostic_request(request) || control->state != "SUCCESS" || !request->report.empty();
}

CtlOutcome follow(EmsStore& store, const std::string& control_id, Clock::time_point deadline,
                  const CtlProgress& progress) {
  std::string last_status;
  while (true) {
    const auto request = store.request(control_id);
    const auto control = store.control(control_id);
    if (!request && !control) {
      return could_not_run("no control or request " + control_id + " in the EMS database");
    }
    nlohmann::json result = describe(control_id, request, control);
    const std::string status = result.value("status", "");
    if (progress && status != last_status) {
      progress(result);
    }
    last_status = status;
    if (finished(request, control)) {
      if (request && (request->state == kRequestExpired || request->state == kRequestRefused)) {
        return {kCouldNotRun, result};
      }
      if (status == "SUCCESS") {
        return {kDone, result};
      }
      return {kControlFailed, result};
    }
    if (Clock::now() >= deadline) {
      result["error"] = is_diagnostic_request(request) && control && control->state == "SUCCESS"
                            ? "no verified diagnostic report"
                            : "still " + status + " when the watch timed out";
      return {kControlFailed, result};
    }
    std::this_thread::sleep_for(kPoll);
  }
}

std::chrono::milliseconds default_watch(const EmsConfig& config) {
  return config.control_timeout + kWatchMargin;
}

}  // namespace

CtlOutcome ctl_send_control(const EmsConfig& config, const CtlControlRequest& request,
                            const CtlProgress& progress) {
  const auto topic = protocol::central_member_topic(protocol::Channel::kMemberControl, request.rec,
                                                    request.member);
  if (!topic) {
    return {kUsage, nlohmann::json{{"error", topic.status().message}}};
  }
  if (!request.params.is_object()) {
    return {kUsage, nlohmann::json{{"error", "params: expected a JSON object"}}};
  }
  for (const auto& device : request.devices) {
    if (!is_valid_identifier(device)) {
      return {kUsage, nlohmann::json{{"error", "invalid device ID: " + device}}};
    }
  }
  RequestRow row;
  row.control_id = protocol::Uuid::random_v4().str();
  row.rec = request.rec;
  row.member = request.member;
  row.type = std::string(protocol::to_string(request.type));
  row.params = request.params.dump();
  row.devices = nlohmann::json(request.devices).dump();
  row.device = request.diagnostic_device;
  row.requested_by = requester();
  row.requested_at_ms = unix_ms();
  row.take_by_ms = row.requested_at_ms + request.take_timeout.count();
  row.state = std::string(kRequestQueued);

  std::unique_ptr<EmsStore> store;
  try {
    store = open_store(config, SqliteDatabase::Mode::kReadWrite);
    store->put_request(row);
  } catch (const std::exception& e) {
    return could_not_run(e.what());
  }

  // Handed over once the engine issued it (the control exists) or refused it.
  const auto take_deadline = Clock::now() + request.take_timeout;
  while (true) {
    const auto current = store->request(row.control_id);
    if (current && current->state != kRequestQueued &&
        (current->state != kRequestTaken || store->control(row.control_id))) {
      break;
    }
    if (Clock::now() >= take_deadline && current && current->state == kRequestQueued &&
        store->expire_request(row.control_id)) {
      nlohmann::json result = describe(row.control_id, store->request(row.control_id), {});
      result["error"] = fmt::format(
          "the EMS engine did not take the request within {} s, so nothing was sent: is "
          "`recmesh ems` running with the database {}?",
          std::chrono::duration_cast<std::chrono::seconds>(request.take_timeout).count(),
          config.database.string());
      return {kCouldNotRun, result};
    }
    if (Clock::now() >= take_deadline + kWatchMargin) {
      // Taken, but no control row: the engine stopped between the two writes.
      return {kCouldNotRun, describe(row.control_id, store->request(row.control_id), std::nullopt)};
    }
    std::this_thread::sleep_for(kPoll);
  }
  const auto taken = store->request(row.control_id);
  if (taken->state == kRequestRefused) {
    return {kCouldNotRun, describe(row.control_id, taken, std::nullopt)};
  }
  if (!request.wait) {
    return {kDone, describe(row.control_id, taken, store->control(row.control_id))};
  }
  return follow(*store, row.control_id,
                Clock::now() + request.timeout.value_or(default_watch(config)), progress);
}

CtlOutcome ctl_diagnostic(const EmsConfig& config, CtlControlRequest request,
                          const CtlProgress& progress) {
  if (!is_valid_identifier(request.diagnostic_device)) {
    return {kUsage, nlohmann::json{{"error", "invalid device ID: " + request.diagnostic_device}}};
  }
  request.type = protocol::MemberControlType::kDiagnostic;
  request.devices = {request.diagnostic_device};
  request.params = nlohmann::json::object();
  return ctl_send_control(config, request, progress);
}

CtlOutcome ctl_watch(const EmsConfig& config, const std::string& control_id,
                     std::optional<std::chrono::milliseconds> timeout,
                     const CtlProgress& progress) {
  std::unique_ptr<EmsStore> store;
  try {
    store = open_store(config, SqliteDatabase::Mode::kReadOnly);
  } catch (const std::exception& e) {
    return could_not_run(e.what());
  }
  return follow(*store, control_id, Clock::now() + timeout.value_or(default_watch(config)),
                progress);
}

CtlOutcome ctl_list_members(const EmsConfig& config) {
  const auto store = open_store(config, SqliteDatabase::Mode::kReadOnly);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : store->members()) {
    out.push_back({{"rec", m.rec},
                   {"member", m.member},
                   {"updated_at", m.updated_at},
                   {"metrics", parse_or_string(m.metrics)}});
  }
  return {kDone, out};
}

CtlOutcome ctl_list_devices(const EmsConfig& config) {
  const auto store = open_store(config, SqliteDatabase::Mode::kReadOnly);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : store->components()) {
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
  const auto store = open_store(config, SqliteDatabase::Mode::kReadOnly);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : store->controls()) {
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
