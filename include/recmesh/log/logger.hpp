#pragma once

// Structured logging on spdlog. Every line carries an RFC 3339 UTC timestamp with
// milliseconds, the level, the component, the message and key=value fields:
//
//   log::Logger log("gateway");
//   log.info("connected to broker", {{"host", host}, {"port", port}});
//
// human: 2024-05-01T12:00:00.123Z INFO  gateway: connected to broker host=127.0.0.1 port=8883
// json:  {"ts":"2024-05-01T12:00:00.123Z","level":"info","component":"gateway",
//         "msg":"connected to broker","host":"127.0.0.1","port":8883}

#include <atomic>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include <spdlog/common.h>

#include "recmesh/core/clock.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/log/level.hpp"
#include "recmesh/log/log_settings.hpp"

namespace spdlog {
class logger;
}

namespace recmesh::log {

// One key=value of a log line. It refers to the caller's data, so it lives only in the argument
// list of a log call. Secrets cannot be fields; log that one exists, never its value.
class Field {
 public:
  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;

  Field(std::string_view key, std::string_view value) : key_(key), value_(value) {}
  Field(std::string_view key, const char* value) : key_(key), value_(std::string_view(value)) {}
  Field(std::string_view key, const std::string& value)
      : key_(key), value_(std::string_view(value)) {}
  Field(std::string_view key, const std::filesystem::path& value)
      : key_(key), value_(std::string_view(value.native())) {}
  Field(std::string_view key, bool value) : key_(key), value_(value) {}
  template <std::signed_integral I>
  requires(!std::same_as<I, char>) Field(std::string_view key, I value)
      : key_(key), value_(static_cast<std::int64_t>(value)) {}
  template <std::unsigned_integral U>
  requires(!std::same_as<U, bool>) Field(std::string_view key, U value)
      : key_(key), value_(static_cast<std::uint64_t>(value)) {}
  template <std::floating_point F>
  Field(std::string_view key, F value) : key_(key), value_(static_cast<double>(value)) {}
  Field(std::string_view key, const Secret& value) = delete;
  Field(std::string_view key, char value) = delete;  // would otherwise become a bool

  std::string_view key() const { return key_; }
  const Value& value() const { return value_; }

 private:
  std::string_view key_;
  Value value_;
};

// "2024-05-01T12:00:00.123Z"
std::string format_timestamp(Clock::TimePoint time);

// One event as a line (without the line break) in `format`.
std::string format_line(Format format, Clock::TimePoint time, Level level,
                        std::string_view component, std::string_view message,
                        std::span<const Field> fields);

// Where log lines go: a spdlog sink, with a level and a format that may change at run time
// (SIGHUP). Shared by every Logger of a process; thread-safe.
class LogOutput {
 public:
  LogOutput(const LogSettings& settings, spdlog::sink_ptr sink,
            const Clock& clock = SystemClock::instance());
  ~LogOutput();
  LogOutput(const LogOutput&) = delete;
  LogOutput& operator=(const LogOutput&) = delete;

  // Lines to standard error.
  static std::shared_ptr<LogOutput> to_stderr(const LogSettings& settings);

  void apply(const LogSettings& settings);
  Level level() const { return level_.load(std::memory_order_relaxed); }
  Format format() const { return format_.load(std::memory_order_relaxed); }
  bool enabled(Level level) const { return level != Level::kOff && level >= this->level(); }

  void write(Level level, std::string_view component, std::string_view message,
             std::span<const Field> fields);
  void flush();

 private:
  std::atomic<Level> level_;
  std::atomic<Format> format_;
  std::shared_ptr<spdlog::logger> logger_;
  const Clock& clock_;
};

// The output that Loggers use unless given another: standard error, human, info, until a
// daemon sets its own.
std::shared_ptr<LogOutput> default_output();
void set_default_output(std::shared_ptr<LogOutput> output);

// A component's handle on a LogOutput; cheap to copy.
class Logger {
 public:
  explicit Logger(std::string component, std::shared_ptr<LogOutput> output = default_output());

  const std::string& component() const { return component_; }
  const std::shared_ptr<LogOutput>& output() const { return output_; }
  bool enabled(Level level) const { return output_->enabled(level); }

  void log(Level level, std::string_view message, std::initializer_list<Field> fields = {}) const;
  void log(Level level, std::string_view message, std::span<const Field> fields) const;
  void trace(std::string_view message, std::initializer_list<Field> fields = {}) const {
    log(Level::kTrace, message, fields);
  }
  void debug(std::string_view message, std::initializer_list<Field> fields = {}) const {
    log(Level::kDebug, message, fields);
  }
  void info(std::string_view message, std::initializer_list<Field> fields = {}) const {
    log(Level::kInfo, message, fields);
  }
  void warn(std::string_view message, std::initializer_list<Field> fields = {}) const {
    log(Level::kWarn, message, fields);
  }
  void error(std::string_view message, std::initializer_list<Field> fields = {}) const {
    log(Level::kError, message, fields);
  }
  void critical(std::string_view message, std::initializer_list<Field> fields = {}) const {
    log(Level::kCritical, message, fields);
  }

 private:
  std::string component_;
  std::shared_ptr<LogOutput> output_;
};

}  // namespace recmesh::log
