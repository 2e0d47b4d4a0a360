#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>

#include "recmesh/core/clock.hpp"
#include "recmesh/log/logger.hpp"

namespace recmesh::log {

// A message that a hot path may hit thousands of times a second (a malformed packet, a full
// buffer): written at most once per interval. The first occurrence is written at once; repeats
// within the interval are only counted; the first occurrence after the interval is written with
// suppressed=N, the number of repeats left out since the previous line. Thread-safe.
class RateLimitedLog {
 public:
  RateLimitedLog(Logger logger, Level level, std::string message,
                 std::chrono::milliseconds interval, const Clock& clock = SystemClock::instance());
  RateLimitedLog(const RateLimitedLog&) = delete;
  RateLimitedLog& operator=(const RateLimitedLog&) = delete;
  // Writes the count of repeats not yet reported.
  ~RateLimitedLog();

  void log(std::initializer_list<Field> fields = {});

  // Writes a line with suppressed=N if repeats were left out since the last line (for a
  // periodic timer or shutdown, so that a burst that stopped is still reported).
  void flush();

  // Repeats counted since the last line.
  std::uint64_t suppressed() const;

 private:
  Logger logger_;
  Level level_;
  std::string message_;
  std::chrono::milliseconds interval_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::optional<Clock::TimePoint> last_written_;  // guarded by mutex_
  std::uint64_t suppressed_ = 0;                  // guarded by mutex_
};

}  // namespace recmesh::log
