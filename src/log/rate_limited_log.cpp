#include "recmesh/log/rate_limited_log.hpp"

#include <vector>

namespace recmesh::log {

RateLimitedLog::RateLimitedLog(Logger logger, Level level, std::string message,
                               std::chrono::milliseconds interval, const Clock& clock)
    : logger_(std::move(logger)),
      level_(level),
      message_(std::move(message)),
      interval_(interval),
      clock_(clock) {}

RateLimitedLog::~RateLimitedLog() {
  try {
    flush();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a log line is not worth a terminate
  }
}

void RateLimitedLog::log(std::initializer_list<Field> fields) {
  if (!logger_.enabled(level_)) {
    return;
  }
  std::uint64_t suppressed = 0;
  {
    std::lock_guard lock(mutex_);
    const Clock::TimePoint now = clock_.now();
    // A clock that went backwards opens a new interval rather than silencing the message.
    if (last_written_ && now >= *last_written_ && now - *last_written_ < interval_) {
      ++suppressed_;
      return;
    }
    last_written_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  if (suppressed == 0) {
    logger_.log(level_, message_, fields);
    return;
  }
  std::vector<Field> with_count(fields);
  with_count.emplace_back("suppressed", suppressed);
  logger_.log(level_, message_, std::span<const Field>(with_count));
}

void RateLimitedLog::flush() {
  std::uint64_t suppressed = 0;
  {
    std::lock_guard lock(mutex_);
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  if (suppressed > 0) {
    logger_.log(level_, message_, {{"suppressed", suppressed}});
  }
}

std::uint64_t RateLimitedLog::suppressed() const {
  std::lock_guard lock(mutex_);
  return suppressed_;
}

}  // namespace recmesh::log
