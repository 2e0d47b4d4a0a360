#pragma once

// On a shared virtual machine the hypervisor runs other guests on our CPUs now and then: every
// process here stalls for milliseconds at once, whatever it does. Linux counts that time as
// "steal" (/proc/stat). A latency run during which much was stolen measures the neighbours.

namespace recmesh::bench {

// The share of the machine's CPU time stolen since construction.
class StealMeter {
 public:
  StealMeter();
  // 0..1; 0 where the kernel reports no steal time.
  double share() const;

 private:
  struct CpuTimes {
    unsigned long long total = 0;  // clock ticks of every state, steal included
    unsigned long long steal = 0;
  };
  static CpuTimes read();

  CpuTimes start_;
};

}  // namespace recmesh::bench
