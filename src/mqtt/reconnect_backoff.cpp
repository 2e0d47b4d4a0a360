#include "recmesh/mqtt/reconnect_backoff.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "recmesh/core/error.hpp"

namespace recmesh::mqtt {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument, "reconnect policy: " + message);
  }
}

}  // namespace

void BackoffPolicy::validate() const {
  require(initial.count() >= 1,
          "initial must be at least 1 ms, got " + std::to_string(initial.count()) + " ms");
  require(max >= initial, "max (" + std::to_string(max.count()) +
                              " ms) must not be below initial (" + std::to_string(initial.count()) +
                              " ms)");
  require(std::isfinite(multiplier) && multiplier >= 1.0 && multiplier <= 16.0,
          "multiplier must be in [1, 16], got " + std::to_string(multiplier));
  require(std::isfinite(jitter) && jitter >= 0.0 && jitter < 1.0,
          "jitter must be in [0, 1), got " + std::to_string(jitter));
  require(stable_after.count() >= 0, "stable_after must not be negative");
}

UniformRandom make_uniform_random() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

ReconnectBackoff::ReconnectBackoff(BackoffPolicy policy, UniformRandom random)
    : policy_(policy),
      random_(random ? std::move(random) : make_uniform_random()),
      nominal_ms_(static_cast<double>(policy.initial.count())) {
  policy_.validate();
}

std::chrono::milliseconds ReconnectBackoff::next() {
  // Clamped, so a faulty source can neither shorten the wait below the floor nor lengthen it.
  const double u = std::clamp(random_(), 0.0, 1.0);
  const double wait = nominal_ms_ * (1.0 - policy_.jitter * u);
  const auto ms = std::max<long long>(1, std::llround(wait));
  nominal_ms_ =
      std::min(nominal_ms_ * policy_.multiplier, static_cast<double>(policy_.max.count()));
  ++failures_;
  return std::chrono::milliseconds(ms);
}

void ReconnectBackoff::reset() {
  nominal_ms_ = static_cast<double>(policy_.initial.count());
  failures_ = 0;
}

std::chrono::milliseconds ReconnectBackoff::nominal() const {
  return std::chrono::milliseconds(std::llround(nominal_ms_));
}

}  // namespace recmesh::mqtt
