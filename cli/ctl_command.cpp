// `recmesh ctl`: an operator's view of the EMS engine and its controls.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
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
  int timeout_s = 0;  // 0: the engine's control_timeout and 5 s more
  int take_timeout_s = 10;
  std::string control_id;
};

void print_control(const nlohmann::json& result) {
  std::cout << "control " << result.value("control_id", "") << ": "
            << result.value("status", "not sent");
  if (result.contains("diagnostic")) {
    std::cout << "  report verified, signed by "
              << result["diagnostic"].value("signer", std::string("?"));
  }
  std::cout << '\n';
  if (result.contains("error")) {
    std::cout << "error: " << result["error"].get<std::string>() << '\n';
  }
}

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
  print_control(result);
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

// Text mode shows each state as the control reaches it; --json prints only the final document.
ems::CtlProgress progress_of(const CtlFlags& flags) {
  if (flags.json) {
    return {};
  }
  return [](const nlohmann::json& result) {
    std::cout << "  " << result.value("status", "") << std::endl;
  };
}

std::optional<std::chrono::milliseconds> watch_timeout(const CtlFlags& flags) {
  if (flags.timeout_s == 0) {
    return std::nullopt;
  }
  return std::chrono::seconds(flags.timeout_s);
}

void add_wait_options(CLI::App& cmd, CtlFlags& flags) {
  cmd.add_flag("--wait", flags.wait, "Follow the control until it is final");
  cmd.add_option("--timeout", flags.timeout_s,
                 "Seconds to follow it (default: the engine's control_timeout_ms + 5 s)")
      ->check(CLI::Range(1, 86400));
  cmd.add_option("--take-timeout", flags.take_timeout_s,
                 "Seconds the running engine has to take the request; after that it expires "
                 "unsent and ctl exits 3 (default 10)")
      ->check(CLI::Range(1, 3600));
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

  auto* control = cmd->add_subcommand(
      "control", "Hand a member control to the running EMS engine, which sends and tracks it");
  control->add_option("--rec", flags->rec, "REC ID")->required();
  control->add_option("--member", flags->member, "Member ID")->required();
  control
      ->add_option("--type", flags->type,
                   "diagnostic, device-command, store-surplus, cover-deficit, activate-load")
      ->required();
  control->add_option("--params", flags->params, "JSON object of the control's params");
  control->add_option("--device", flags->devices, "Target device (repeatable)");
  add_wait_options(*control, *flags);
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
      request.timeout = watch_timeout(*flags);
      request.take_timeout = std::chrono::seconds(flags->take_timeout_s);
      return emit(
          *flags, "control",
          ems::ctl_send_control(ems::load_ems_config(flags->config), request, progress_of(*flags)));
    };
  });

  auto* diagnostic = cmd->add_subcommand(
      "diagnostic",
      "Ask one device, through the engine, for a diagnostic report signed end to end");
  diagnostic->add_option("--rec", flags->rec, "REC ID")->required();
  diagnostic->add_option("--member", flags->member, "Member ID")->required();
  diagnostic->add_option("--device", flags->devices, "Device ID")->required()->expected(1);
  add_wait_options(*diagnostic, *flags);
  diagnostic->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      ems::CtlControlRequest request;
      request.rec = flags->rec;
      request.member = flags->member;
      request.diagnostic_device = flags->devices.front();
      request.wait = flags->wait;
      request.timeout = watch_timeout(*flags);
      request.take_timeout = std::chrono::seconds(flags->take_timeout_s);
      return emit(
          *flags, "diagnostic",
          ems::ctl_diagnostic(ems::load_ems_config(flags->config), request, progress_of(*flags)));
    };
  });

  auto* watch = cmd->add_subcommand(
      "watch", "Follow a control in the EMS database until it is final (and verified)");
  watch->add_option("control_id", flags->control_id, "The control's ID")->required();
  watch
      ->add_option("--timeout", flags->timeout_s,
                   "Seconds to follow it (default: the engine's control_timeout_ms + 5 s)")
      ->check(CLI::Range(1, 86400));
  watch->callback([&run, flags] {
    run = [flags] {
      log_to_stderr();
      return emit(*flags, "watch",
                  ems::ctl_watch(ems::load_ems_config(flags->config), flags->control_id,
                                 watch_timeout(*flags), progress_of(*flags)));
    };
  });
}

}  // namespace recmesh::cli
