#include "recmesh/core/clock.hpp"

namespace recmesh {

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace recmesh
