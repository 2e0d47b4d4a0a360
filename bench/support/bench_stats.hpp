#pragma once

// The figures a benchmark reports over its repetitions and samples.

#include <vector>

namespace recmesh::bench {

// The median of `values` (the mean of the middle two for an even count); 0 when empty.
double median(std::vector<double> values);
// The p-th percentile (0..100, nearest rank) of `values`; 0 when empty.
double percentile(std::vector<double> values, double p);

}  // namespace recmesh::bench
