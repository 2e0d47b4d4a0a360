#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recmesh/protocol/control_messages.hpp"

#include "ems/ems_config.hpp"

namespace recmesh::ems {

// What `recmesh ctl` reports: the process exit code and a JSON document for --json.
struct CtlOutcome {
  int exit_code = 0;  // 0 done, 1 the control failed or timed out, 3 could not run
  nlohmann::json result;
};

struct CtlControlRequest {
  std::string rec;
  std::string member;
  protocol::MemberControlType type = protocol::MemberControlType::kStoreSurplus;
  nlohmann::json params = nlohmann::json::object();
  std::vector<std::string> devices;
  bool wait = false;
  std::chrono::milliseconds timeout{30000};  // for the broker's PUBACK and, with wait, the answer
  // Set for `ctl diagnostic`: the control carries a diagnostic DeviceCommand for this device,
  // signed with the engine's key and bound to /device/<d>/control, and with `wait` the device's
  // signed report on /<rec>/<member>/device/<d>/diagnostic is verified against the member CA
  // (from pki_dir).
  std::string diagnostic_device;
};

// Publishes one member control as the engine's identity (its own client ID, clean session) and,
// with `wait`, follows /<rec>/<member>/control/response to a final status. The control's sequence
// is reserved in the EMS database, shared with the engine.
CtlOutcome ctl_send_control(const EmsConfig& config, const CtlControlRequest& request);

// `ctl diagnostic`: ctl_send_control with request.diagnostic_device set.
CtlOutcome ctl_diagnostic(const EmsConfig& config, CtlControlRequest request);

// The EMS database's members with their last aggregate, and components with their status.
CtlOutcome ctl_list_members(const EmsConfig& config);
CtlOutcome ctl_list_devices(const EmsConfig& config);
// Every control the engine issued, with its tracked state and last response.
CtlOutcome ctl_list_controls(const EmsConfig& config);

}  // namespace recmesh::ems
