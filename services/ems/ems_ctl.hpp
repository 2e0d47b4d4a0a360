#pragma once

#include <chrono>
#include <functional>
#include <optional>
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
  // Set for `ctl diagnostic`: the engine signs a diagnostic DeviceCommand for this device and
  // keeps the device's report once it verifies against the member CA.
  std::string diagnostic_device;
  // The running engine must take the request within this time, or it expires unsent.
  std::chrono::milliseconds take_timeout{10000};
  bool wait = false;  // follow the control to its final state
  // With `wait`: how long to follow it; empty: the engine's control_timeout and 5 s more.
  std::optional<std::chrono::milliseconds> timeout;
};

// Called by ctl_watch with the control's document each time its state changes.
using CtlProgress = std::function<void(const nlohmann::json& result)>;

// Queues one member control for the running EMS engine in its database (docs/ems.md, "Operator
// requests") and waits until the engine took and issued it: the engine seals it with the
// member's end-to-end session, publishes it and tracks it like its own controls. With `wait`,
// then follows it as ctl_watch does. Nothing is sent when the engine does not take it within
// take_timeout (exit 3).
CtlOutcome ctl_send_control(const EmsConfig& config, const CtlControlRequest& request,
                            const CtlProgress& progress = {});

// `ctl diagnostic`: ctl_send_control with request.diagnostic_device set.
CtlOutcome ctl_diagnostic(const EmsConfig& config, CtlControlRequest request,
                          const CtlProgress& progress = {});

// Follows a control in the database until it is final (and, for a diagnostic request that
// succeeded, until its verified report is kept) or `timeout` passes.
CtlOutcome ctl_watch(const EmsConfig& config, const std::string& control_id,
                     std::optional<std::chrono::milliseconds> timeout,
                     const CtlProgress& progress = {});

// The EMS database's members with their last aggregate, and components with their status.
CtlOutcome ctl_list_members(const EmsConfig& config);
CtlOutcome ctl_list_devices(const EmsConfig& config);
// Every control the engine issued, with its tracked state and last response.
CtlOutcome ctl_list_controls(const EmsConfig& config);

}  // namespace recmesh::ems
