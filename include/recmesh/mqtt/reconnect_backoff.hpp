#pragma once

#include <chrono>
#include <functional>

namespace recmesh::mqtt {

// How long to wait between connection attempts.
struct BackoffPolicy {
  // Nominal delay before the first retry; doubles (multiplier) per failed attempt up to `max`.
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max{60000};
  double multiplier = 2.0;
  // Fraction of the nominal delay taken away at random: the wait is in (d * (1 - jitter), d].
  // Spreads the reconnections of many clients after a broker restart; never below half of d
  // with the default, so no client retries faster than the schedule says.
  double jitter = 0.5;
  // A connection that lasted this long counts as a success and restarts the schedule at
  // `initial`; one that drops sooner (a flapping link, a kicked duplicate client id) keeps
  // the schedule growing.
  std::chrono::milliseconds stable_after{10000};

  // Throws Error(kInvalidArgument) naming the field and its allowed range.
  void validate() const;
};

// A source of uniformly distributed numbers in [0, 1), injected so that tests are exact.
using UniformRandom = std::function<double()>;
// A fresh generator seeded from std::random_device.
UniformRandom make_uniform_random();

// Exponential backoff with jitter: next() is the wait before the next attempt.
class ReconnectBackoff {
 public:
  ReconnectBackoff(BackoffPolicy policy, UniformRandom random);

  std::chrono::milliseconds next();
  // Back to `initial`, after a connection that held.
  void reset();
  // The nominal (un-jittered) delay next() will draw from.
  std::chrono::milliseconds nominal() const;
  // Delays drawn since the last reset.
  int failures() const { return failures_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  UniformRandom random_;
  double nominal_ms_;
  int failures_ = 0;
};

}  // namespace recmesh::mqtt
