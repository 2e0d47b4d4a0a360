#include "recmesh/protocol/log_level.hpp"

#include "enum_names.hpp"

namespace recmesh::protocol {
namespace {

constexpr EnumNames<LogLevel, 6> kNames{{
    {LogLevel::kDebug, "DEBUG"},
    {LogLevel::kInfo, "INFO"},
    {LogLevel::kWarn, "WARN"},
    {LogLevel::kError, "ERROR"},
    {LogLevel::kCritical, "CRITICAL"},
    {LogLevel::kFatal, "FATAL"},
}};

}  // namespace

std::string_view to_string(LogLevel level) {
  return enum_name(kNames, level);
}

Result<LogLevel> parse_log_level(std::string_view text) {
  return parse_enum(kNames, "log level", text);
}

}  // namespace recmesh::protocol
