#pragma once

#include <chrono>

namespace recmesh {

// Source of wall-clock time, injected so tests can issue certificates "in the past".
class Clock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
  static const SystemClock& instance();
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(TimePoint at) : at_(at) {}
  TimePoint now() const override { return at_; }
  void set(TimePoint at) { at_ = at; }

 private:
  TimePoint at_;
};

// Seconds since the Unix epoch, the unit stored on disk.
inline long long to_unix_seconds(Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
inline Clock::TimePoint from_unix_seconds(long long s) {
  return Clock::TimePoint(std::chrono::seconds(s));
}

}  // namespace recmesh
