// Purpose: statistics of per-run observables on the device (see device_statistics.cuh).
#include <cub/cub.cuh>

#include <algorithm>
#include <stdexcept>

#include "device_statistics.cuh"
#include "grid_launch.cuh"

namespace softflow {
namespace {

struct IsFinite {
  __device__ bool operator()(double x) const { return is_finite(x); }
};

// One thread per block of kStatsBlockRuns run ids: Welford in run order, exactly as the CPU does (this file is
// compiled with --fmad=false, kernels/CMakeLists.txt, so the updates round as the host's do).
__global__ void block_moments_kernel(const double* values, long long runs, long long blocks, Moments* out) {
  const long long block = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (block >= blocks) return;
  Moments m;
  const long long end = min(runs, (block + 1) * kStatsBlockRuns);
  for (long long r = block * kStatsBlockRuns; r < end; ++r)
    if (is_finite(values[r])) m.add(values[r]);
  out[block] = m;
}

struct OrderIndices {
  long long index[2 * kQuantileCount];
};

__global__ void gather_kernel(const double* sorted, OrderIndices indices, double* out) {
  const int i = threadIdx.x;
  if (i < 2 * kQuantileCount) out[i] = sorted[indices.index[i]];
}

__global__ void histogram_kernel(const double* sorted, long long count, double lo, double hi, int bins,
                                 unsigned long long* counts) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += gridDim.x * (long long)blockDim.x)
    atomicAdd(&counts[histogram_bin(sorted[i], lo, hi, bins)], 1ull);
}

}  // namespace

DeviceStatistics::DeviceStatistics(long long runs) : capacity_(runs) {
  if (runs > 2147483647LL) throw std::invalid_argument("device statistics: more than 2^31 runs per cell");
  const int n = int(runs);
  finite_.allocate(size_t(runs));
  sorted_.allocate(size_t(runs));
  finite_count_.allocate(1);
  size_t select_bytes = 0, sort_bytes = 0;
  SOFTFLOW_CUDA_CHECK(cub::DeviceSelect::If(nullptr, select_bytes, finite_.get(), sorted_.get(), finite_count_.get(),
                                            n, IsFinite()));
  SOFTFLOW_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, sort_bytes, finite_.get(), sorted_.get(), n));
  cub_scratch_bytes_ = std::max(select_bytes, sort_bytes);
  cub_scratch_.allocate(cub_scratch_bytes_);
  block_moments_.allocate(size_t((runs + kStatsBlockRuns - 1) / kStatsBlockRuns));
  order_statistics_.allocate(2 * kQuantileCount);
}

ObservableSummary DeviceStatistics::summarize(const double* values, long long runs, int bins, HistogramRange range) {
  ObservableSummary out;
  out.histogram.assign(size_t(bins), 0);
  const long long blocks = (runs + kStatsBlockRuns - 1) / kStatsBlockRuns;
  launch_grid(block_moments_kernel, unsigned((blocks + 127) / 128), 128, 0, values, runs, blocks,
              block_moments_.get());
  std::vector<Moments> partial(static_cast<size_t>(blocks));
  block_moments_.download(partial.data(), partial.size());
  for (const Moments& m : partial) out.moments.merge(m);
  if (out.moments.count == 0) return out;

  size_t bytes = cub_scratch_bytes_;
  SOFTFLOW_CUDA_CHECK(cub::DeviceSelect::If(cub_scratch_.get(), bytes, values, finite_.get(), finite_count_.get(),
                                            int(runs), IsFinite()));
  const long long count = (long long)out.moments.count;
  bytes = cub_scratch_bytes_;
  SOFTFLOW_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(cub_scratch_.get(), bytes, finite_.get(), sorted_.get(), int(count)));

  OrderIndices indices;
  QuantilePosition positions[kQuantileCount];
  for (int i = 0; i < kQuantileCount; ++i) {
    positions[i] = quantile_position(count, quantile_level(i));
    indices.index[2 * i] = positions[i].below;
    indices.index[2 * i + 1] = positions[i].above;
  }
  launch_grid(gather_kernel, 1, 32, 0, sorted_.get(), indices, order_statistics_.get());
  double order[2 * kQuantileCount];
  order_statistics_.download(order, 2 * kQuantileCount);
  for (int i = 0; i < kQuantileCount; ++i)
    out.quantiles[i] = interpolate_quantile(order[2 * i], order[2 * i + 1], positions[i].fraction);

  out.histogram_lo = range.fixed() ? range.lo : out.moments.min;
  out.histogram_hi = range.fixed() ? range.hi : out.moments.max;
  if (histogram_.size() < size_t(bins)) histogram_.allocate(size_t(bins));
  histogram_.zero();
  const unsigned grid = unsigned(std::min<long long>((count + 255) / 256, 1024));
  launch_grid(histogram_kernel, grid, 256, 0, sorted_.get(), count, out.histogram_lo, out.histogram_hi, bins,
              histogram_.get());
  std::vector<unsigned long long> counts(static_cast<size_t>(bins));
  histogram_.download(counts.data(), counts.size());
  for (int b = 0; b < bins; ++b) out.histogram[size_t(b)] = (long long)counts[size_t(b)];
  return out;
}

}  // namespace softflow
