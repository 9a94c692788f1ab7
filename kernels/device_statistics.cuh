// Purpose: reduction of per-run observables to statistics on the device, in the same form and by the same rules as
// the CPU (checkpoint_summary.h): per-block moments of 1024 run ids (merged on the host in block order), CUB
// compaction and radix sort of the finite values for exact quantiles, and fixed-bin histograms. Only the block
// moments, 14 order statistics and the bin counts of each observable cross to the host.
#pragma once

#include <cstddef>

#include "checkpoint_summary.h"
#include "device_array.cuh"

namespace softflow {

class DeviceStatistics {
 public:
  // Scratch for observables of up to `runs` values.
  explicit DeviceStatistics(long long runs);
  // Statistics of the finite entries of values[0, runs) (device pointer).
  ObservableSummary summarize(const double* values, long long runs, int bins, HistogramRange range);

 private:
  long long capacity_;
  DeviceArray<double> finite_, sorted_;
  DeviceArray<int> finite_count_;
  DeviceArray<unsigned char> cub_scratch_;
  size_t cub_scratch_bytes_ = 0;
  DeviceArray<Moments> block_moments_;
  DeviceArray<double> order_statistics_;
  DeviceArray<unsigned long long> histogram_;
};

}  // namespace softflow
