#include "cpu_steal.hpp"

#include <fstream>
#include <string>

namespace recmesh::bench {

StealMeter::StealMeter() : start_(read()) {}

double StealMeter::share() const {
  const CpuTimes now = read();
  if (now.total <= start_.total || now.steal < start_.steal) {
    return 0;
  }
  return static_cast<double>(now.steal - start_.steal) /
         static_cast<double>(now.total - start_.total);
}

// The first line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest
// guest_nice", in clock ticks over all CPUs; guest time is counted in user time already.
StealMeter::CpuTimes StealMeter::read() {
  std::ifstream in("/proc/stat");
  std::string label;
  CpuTimes times;
  if (!(in >> label) || label != "cpu") {
    return times;
  }
  constexpr int kStealColumn = 7;
  for (int column = 0; column <= kStealColumn; ++column) {
    unsigned long long ticks = 0;
    if (!(in >> ticks)) {
      return CpuTimes{};
    }
    times.total += ticks;
    if (column == kStealColumn) {
      times.steal = ticks;
    }
  }
  return times;
}

}  // namespace recmesh::bench
