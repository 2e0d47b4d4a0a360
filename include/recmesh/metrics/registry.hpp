#pragma once

// Counters and gauges with labels, rendered in the Prometheus text exposition format (0.0.4).
// Registering takes a lock; updating a registered series is one atomic operation, so hot paths
// keep the reference:
//
//   metrics::Counter& dropped = registry.counter("recmesh_bridge_dropped_total",
//                                                "Messages dropped by a full buffer",
//                                                {{"route", "metrics"}});
//   dropped.increment();

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recmesh::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A value that only goes up (restarts at zero with the process).
class Counter {
 public:
  void increment(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Registry {
 public:
  // The series of `name` with `labels` (in any order), created at zero on first use. The same
  // name and labels always return the same object, which lives as long as the registry.
  // Throws Error(kInvalidArgument) for a name or label name outside the Prometheus grammar, a
  // label given twice, or a name registered before with another type or help text.
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});

  // Every family sorted by name, every series sorted by labels.
  std::string render_prometheus() const;

 private:
  enum class Type { kCounter, kGauge };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
  };

  Family& family(std::string_view name, std::string_view help, Type type, Labels& labels);

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;  // guarded by mutex_
};

// The content type of render_prometheus() for HTTP responses.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace recmesh::metrics
