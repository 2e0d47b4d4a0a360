#include "common/daemon_logging.hpp"

#include <array>
#include <mutex>
#include <utility>
#include <yaml-cpp/yaml.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "common/yaml_mapping_reader.hpp"

namespace recmesh::services {
namespace {

constexpr std::array<std::pair<log::Level, spdlog::level::level_enum>, 6> kLevels{{
    {log::Level::kTrace, spdlog::level::trace},
    {log::Level::kDebug, spdlog::level::debug},
    {log::Level::kInfo, spdlog::level::info},
    {log::Level::kWarn, spdlog::level::warn},
    {log::Level::kError, spdlog::level::err},
    {log::Level::kCritical, spdlog::level::critical},
}};

log::Level from_spdlog(spdlog::level::level_enum level) {
  for (const auto& [ours, theirs] : kLevels) {
    if (theirs == level) {
      return ours;
    }
  }
  return log::Level::kOff;
}

spdlog::level::level_enum to_spdlog(log::Level level) {
  for (const auto& [ours, theirs] : kLevels) {
    if (ours == level) {
      return theirs;
    }
  }
  return spdlog::level::off;
}

// One spdlog message becomes one line of the LogOutput's format.
class LogOutputSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LogOutputSink(std::shared_ptr<log::LogOutput> output, std::string component)
      : output_(std::move(output)), component_(std::move(component)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    output_->write(from_spdlog(msg.level), component_,
                   std::string_view(msg.payload.data(), msg.payload.size()), {});
  }
  void flush_() override { output_->flush(); }

 private:
  std::shared_ptr<log::LogOutput> output_;
  std::string component_;
};

}  // namespace

log::LogSettings read_log_settings(std::string_view source, const YAML::Node& node,
                                   const std::string& prefix) {
  log::LogSettings settings;
  MappingReader r(source, node, prefix, {});
  r.on("level", [&](const YAML::Node& v, const std::string& k) {
    const auto level = log::parse_level(r.text(v, k));
    if (!level) {
      fail_at(source, v, k, "expected trace, debug, info, warn, error, critical or off");
    }
    settings.level = *level;
  });
  r.on("format", [&](const YAML::Node& v, const std::string& k) {
    const auto format = log::parse_format(r.text(v, k));
    if (!format) {
      fail_at(source, v, k, "expected human or json");
    }
    settings.format = *format;
  });
  r.read();
  return settings;
}

DaemonLogging::DaemonLogging(const std::string& component, log::LogSettings settings,
                             const daemon::DaemonFlags& flags) {
  // The flags were checked against the names by the command line parser.
  if (const auto level = log::parse_level(flags.log_level)) {
    settings.level = *level;
  }
  if (const auto format = log::parse_format(flags.log_format)) {
    settings.format = *format;
  }
  output_ = log::LogOutput::to_stderr(settings);
  previous_output_ = log::default_output();
  log::set_default_output(output_);
  previous_logger_ = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      component, std::make_shared<LogOutputSink>(output_, component));
  logger->set_level(to_spdlog(settings.level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

DaemonLogging::~DaemonLogging() {
  spdlog::set_default_logger(previous_logger_);
  log::set_default_output(previous_output_);
}

}  // namespace recmesh::services
