// `recmesh ctl`: an operator's view of the EMS engine and its controls.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"

#include "command.hpp"
#include "ems/ems_config.hpp"
#include "ems/ems_ctl.hpp"

namespace recmesh::cli {
namespace {

struct CtlFlags {
  std::string config;
  bool json = false;
  std::string rec;
  std::string member;
  std::string type;
  std::string params = "{}";
  std::vector<std::string> devices;
  bool wait = false;
  int timeout_s = 30;
};

void print_text(const std::string& what, const nlohmann::json& result) {
  if (what == "members") {
    for (const auto& m : result) {
      const auto& metrics = m["metrics"];
      std::cout << m["rec"].get<std::string>() << '/' << m["member"].get<std::string>()
                << "  updated " << m["updated_at"].get<std::string>();
      if (metrics.is_object()) {
        std::cout << "  net " << metrics.value("net_exchange_w", 0.0) << " W  production "
                  << metrics.value("production_w", 0.0) << " W  consumption "
                  << metrics.value("consumption_w", 0.0) << " W";
        if (metrics.contains("storage_soc_percent")) {
          std::cout << "  soc " << metrics["storage_soc_percent"].get<double>() << " %";
        }
      }
      std::cout << '\n';
    }
    return;
  }
  if (what == "devices") {
    for (const auto& c : result) {
      std::cout << c["rec"].get<std::string>() << '/' << c["member"].get<std::string>() << ' '
                << c["component"].get<std::string>() << "  "
                << (c["status"].is_string() ? c["status"].get<std::string>() : "-") << "  updated "
                << c["updated_at"].get<std::string>() << '\n';
    }
    return;
  }
  if (what == "controls") {
    for (const auto& c : result) {
      std::cout << c["control_id"].get<std::string>() << "  " << c["rec"].get<std::string>() << '/'
                << c["member"].get<std::string>() << "  " << c["type"].get<std::string>() << "  "
                << c["state"].get<std::string>() << "  issued " << c["issued_at"].get<std::string>()
                << '\n';
    }
    return;
  }
  std::cout << "control " << result.value("control_id", "") << ": "
            << result.value("status", "not sent") << '\n';
  if (result.contains("error")) {
    std::cout << "error: " << result["error"].get<std::string>() << '\n';
  }
}

// Output is for the operator (or a script reading --json): diagnostics go to stderr.
void log_to_stderr() {
  if (spdlog::get("ctl") == nullptr) {
    spdlog::set_default_logger(spdlog::stderr_color_mt("ctl"));
  }
}

int emit(const CtlFlags& flags, const std::string& what, const ems::CtlOutcome& outcome) {
  if (flags.json) {
    std::cout << outcome.result.dump(2) << '\n';
  } else {
    print_text(what, outcome.result);
  }
  return outcome.exit_code;
}

}  // namespace

void add_ctl_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("ctl", "Operate the EMS engine (docs/ems.md, \"recmesh ctl\")");
  auto flags = std::make_shared<CtlFlags>();
  cmd->add_option("--config", flags->config, "The EMS engine's YAML configuration")->required();
  cmd->add_flag("--json", flags->json, "Print JSON");
  cmd->require_subcommand(1);

  auto* members = cmd->add_subcommand("members", "Members and their last aggregate metrics");
  members->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      return emit(*flags, "members", ems::ctl_list_members(ems::load_ems_config(flags->config)));
    };
  });
  auto* devices = cmd->add_subcommand("devices", "Devices, gateways and bridges with their status");
  devices->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      return emit(*flags, "devices", ems::ctl_list_devices(ems::load_ems_config(flags->config)));
    };
  });

  auto* controls = cmd->add_subcommand("controls", "Controls the engine issued and their state");
  controls->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      return emit(*flags, "controls", ems::ctl_list_controls(ems::load_ems_config(flags->config)));
    };
  });

  auto* control = cmd->add_subcommand("control", "Send a member control");
  control->add_option("--rec", flags->rec, "REC ID")->required();
  control->add_option("--member", flags->member, "Member ID")->required();
  control
      ->add_option("--type", flags->type,
                   "diagnostic, device-command, store-surplus, cover-deficit, activate-load")
      ->required();
  control->add_option("--params", flags->params, "JSON object of the control's params");
  control->add_option("--device", flags->devices, "Target device (repeatable)");
  control->add_flag("--wait", flags->wait, "Wait for the final response");
  control->add_option("--timeout", flags->timeout_s, "Seconds to wait (default 30)")
      ->check(CLI::Range(1, 86400));
  control->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      const auto type = protocol::parse_member_control_type(flags->type);
      if (!type) {
        throw Error(ErrorCode::kInvalidArgument, "--type: " + type.status().message);
      }
      auto params = nlohmann::json::parse(flags->params, nullptr, false);
      if (params.is_discarded() || !params.is_object()) {
        throw Error(ErrorCode::kInvalidArgument, "--params: expected a JSON object");
      }
      ems::CtlControlRequest request;
      request.rec = flags->rec;
      request.member = flags->member;
      request.type = *type;
      request.params = std::move(params);
      request.devices = flags->devices;
      request.wait = flags->wait;
      request.timeout = std::chrono::seconds(flags->timeout_s);
      return emit(*flags, "control",
                  ems::ctl_send_control(ems::load_ems_config(flags->config), request));
    };
  });

  auto* diagnostic = cmd->add_subcommand(
      "diagnostic", "Ask one device for a signed diagnostic report and verify it");
  diagnostic->add_option("--rec", flags->rec, "REC ID")->required();
  diagnostic->add_option("--member", flags->member, "Member ID")->required();
  diagnostic->add_option("--device", flags->devices, "Device ID")->required()->expected(1);
  diagnostic->add_flag("--wait", flags->wait, "Wait for the verified report");
  diagnostic->add_option("--timeout", flags->timeout_s, "Seconds to wait (default 30)")
      ->check(CLI::Range(1, 86400));
  diagnostic->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      ems::CtlControlRequest request;
      request.rec = flags->rec;
      request.member = flags->member;
      request.diagnostic_device = flags->devices.front();
      request.wait = flags->wait;
      request.timeout = std::chrono::seconds(flags->timeout_s);
      return emit(*flags, "diagnostic",
                  ems::ctl_diagnostic(ems::load_ems_config(flags->config), request));
    };
  });
}

}  // namespace recmesh::cli
