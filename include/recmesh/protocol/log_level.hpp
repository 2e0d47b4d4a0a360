#pragma once

#include <string_view>

#include "recmesh/core/result.hpp"

namespace recmesh::protocol {

// Severity of a log record, ordered (thesis §3.4.3). Spelled in upper case on the wire, in
// topics (`/device/<d>/log/ERROR`) and in payloads alike.
enum class LogLevel { kDebug, kInfo, kWarn, kError, kCritical, kFatal };

inline constexpr LogLevel kAllLogLevels[] = {LogLevel::kDebug,    LogLevel::kInfo,
                                             LogLevel::kWarn,     LogLevel::kError,
                                             LogLevel::kCritical, LogLevel::kFatal};

std::string_view to_string(LogLevel level);
// Exact, case-sensitive: "ERROR", never "error".
Result<LogLevel> parse_log_level(std::string_view text);

}  // namespace recmesh::protocol
