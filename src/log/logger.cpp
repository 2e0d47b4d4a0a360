#include "recmesh/log/logger.hpp"

#include <cctype>
#include <ctime>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace recmesh::log {
namespace {

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kCritical:
      return spdlog::level::critical;
    case Level::kOff:
      break;
  }
  return spdlog::level::off;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// Control characters escaped, so that one event is always one line.
void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          out += fmt::format("\\x{:02x}", byte);
        } else {
          out += c;
        }
    }
  }
}

bool needs_quotes(std::string_view text) {
  if (text.empty()) {
    return true;
  }
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f || c == '"' || c == '=' || c == '\\') {
      return true;
    }
  }
  return false;
}

void append_human_value(std::string& out, const Field::Value& value) {
  std::visit(
      [&out](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::string_view>) {
          if (!needs_quotes(v)) {
            out += v;
            return;
          }
          out += '"';
          for (char c : v) {
            if (c == '"' || c == '\\') {
              out += '\\';
              out += c;
            } else {
              append_escaped(out, std::string_view(&c, 1));
            }
          }
          out += '"';
        } else if constexpr (std::is_same_v<V, bool>) {
          out += v ? "true" : "false";
        } else {
          out += fmt::format("{}", v);
        }
      },
      value);
}

bool reserved(std::string_view key) {
  return key == "ts" || key == "level" || key == "component" || key == "msg";
}

std::string human_line(Clock::TimePoint time, Level level, std::string_view component,
                       std::string_view message, std::span<const Field> fields) {
  std::string out =
      fmt::format("{} {:<5} {}: ", format_timestamp(time), upper(to_string(level)), component);
  append_escaped(out, message);
  for (const Field& field : fields) {
    out += ' ';
    append_escaped(out, field.key());
    out += '=';
    append_human_value(out, field.value());
  }
  return out;
}

std::string json_line(Clock::TimePoint time, Level level, std::string_view component,
                      std::string_view message, std::span<const Field> fields) {
  nlohmann::ordered_json line;
  line["ts"] = format_timestamp(time);
  line["level"] = to_string(level);
  line["component"] = component;
  line["msg"] = message;
  for (const Field& field : fields) {
    // A field never overwrites the four keys every line has.
    std::string key(field.key());
    if (reserved(key)) {
      key.insert(0, "field_");
    }
    std::visit([&](const auto& v) { line[key] = v; }, field.value());
  }
  // Invalid UTF-8 from untrusted input becomes U+FFFD instead of failing the line.
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::mutex& default_output_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::shared_ptr<LogOutput>& default_output_slot() {
  static std::shared_ptr<LogOutput> output = LogOutput::to_stderr(LogSettings{});
  return output;
}

}  // namespace

std::string format_timestamp(Clock::TimePoint time) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(time);
  const auto seconds = floor<std::chrono::seconds>(ms);
  const std::time_t t = system_clock::to_time_t(seconds);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     (ms - seconds).count());
}

std::string format_line(Format format, Clock::TimePoint time, Level level,
                        std::string_view component, std::string_view message,
                        std::span<const Field> fields) {
  return format == Format::kJson ? json_line(time, level, component, message, fields)
                                 : human_line(time, level, component, message, fields);
}

LogOutput::LogOutput(const LogSettings& settings, spdlog::sink_ptr sink, const Clock& clock)
    : level_(settings.level),
      format_(settings.format),
      logger_(std::make_shared<spdlog::logger>("recmesh", std::move(sink))),
      clock_(clock) {
  // Lines are complete when they reach spdlog; it only writes them and adds the line break.
  logger_->set_pattern("%v");
  logger_->set_level(spdlog::level::trace);
  logger_->flush_on(spdlog::level::warn);
}

LogOutput::~LogOutput() = default;

std::shared_ptr<LogOutput> LogOutput::to_stderr(const LogSettings& settings) {
  return std::make_shared<LogOutput>(settings, std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

void LogOutput::apply(const LogSettings& settings) {
  level_.store(settings.level, std::memory_order_relaxed);
  format_.store(settings.format, std::memory_order_relaxed);
}

void LogOutput::write(Level level, std::string_view component, std::string_view message,
                      std::span<const Field> fields) {
  if (!enabled(level)) {
    return;
  }
  const std::string line = format_line(format(), clock_.now(), level, component, message, fields);
  logger_->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
}

void LogOutput::flush() {
  logger_->flush();
}

std::shared_ptr<LogOutput> default_output() {
  std::lock_guard lock(default_output_mutex());
  return default_output_slot();
}

void set_default_output(std::shared_ptr<LogOutput> output) {
  std::lock_guard lock(default_output_mutex());
  default_output_slot() = std::move(output);
}

Logger::Logger(std::string component, std::shared_ptr<LogOutput> output)
    : component_(std::move(component)), output_(std::move(output)) {}

void Logger::log(Level level, std::string_view message, std::initializer_list<Field> fields) const {
  output_->write(level, component_, message, std::span<const Field>(fields.begin(), fields.size()));
}

void Logger::log(Level level, std::string_view message, std::span<const Field> fields) const {
  output_->write(level, component_, message, fields);
}

}  // namespace recmesh::log
