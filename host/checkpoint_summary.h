// Purpose: the statistics of one cell at one checkpoint as plain numbers (no JSON), the form every backend reduces
// its runs to: the CPU from per-run observations (checkpoint_report.cpp), the GPU on the device (kernels/). The
// results JSON is made from this alone (checkpoint_json), so both backends share one schema and one set of rules.
// Also the one definition of the quantile positions and histogram bins both backends use.
#pragma once

#include <cmath>
#include <vector>

#include "softflow/hostdevice.h"
#include "softflow/moments.h"
#include "softflow/observables.h"
#include "softflow/run_record.h"

namespace softflow {

// Runs per statistics block: the unit of deterministic reduction (blocks merge in block order).
constexpr int kStatsBlockRuns = 1024;

constexpr int kQuantileCount = 7;
SOFTFLOW_HD inline double quantile_level(int i) {
  constexpr double levels[kQuantileCount] = {0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99};
  return levels[i];
}

// Quantile at level q of `count` sorted values: linear interpolation between order statistics below and above
// (numpy's default, Hyndman-Fan type 7). value = sorted[below] + fraction * (sorted[above] - sorted[below]).
struct QuantilePosition {
  long long below, above;
  double fraction;
};
SOFTFLOW_HD inline QuantilePosition quantile_position(long long count, double q) {
  const double position = q * double(count - 1);
  QuantilePosition p;
  p.below = static_cast<long long>(floor(position));
  p.above = p.below + 1 < count ? p.below + 1 : count - 1;
  p.fraction = position - double(p.below);
  return p;
}

// The type-7 quantile between its order statistics below and above (below <= above) at `fraction` of the way; the
// weighted form where their difference passes the largest double (below near -1.8e308, above near +1.8e308).
SOFTFLOW_HD inline double interpolate_quantile(double below, double above, double fraction) {
  const double gap = above - below;
  return gap < INFINITY ? below + fraction * gap : (1 - fraction) * below + fraction * above;
}

// Bin of x in an equal-width histogram of `bins` bins over [lo, hi] (values outside go to the end bins).
SOFTFLOW_HD inline int histogram_bin(double x, double lo, double hi, int bins) {
  double offset = x - lo, span = hi - lo;
  if (!(span < INFINITY)) offset = x / 2 - lo / 2, span = hi / 2 - lo / 2;  // a range wider than the largest double
  long long bin = hi > lo ? static_cast<long long>(floor(offset / span * bins)) : 0;
  bin = bin < 0 ? 0 : (bin >= bins ? bins - 1 : bin);
  return int(bin);
}

// The summarized observables: the per-run state observables, then the first-passage times of s_max.
constexpr int kSummarizedCount = kStateObservableCount + kPassageCount;
inline const char* summarized_name(int index) {
  if (index < kStateObservableCount) return observable_name(index);
  const int k = index - kStateObservableCount;
  return k == 0 ? "first_time_s_max_0_9" : (k == 1 ? "first_time_s_max_0_99" : "first_time_s_max_0_999");
}

// Histogram range: fixed when the observable is bounded (lo < hi), else the data's [min, max].
struct HistogramRange {
  double lo = 0;
  double hi = 0;
  bool fixed() const { return lo < hi; }
};
inline HistogramRange natural_range(int summarized_index, int n) {
  switch (summarized_index) {
    case kEntropyRatio: return {0.0, 1.0};
    case kSMax: return {0.0, 1.0};
    case kEntropy: return {0.0, std::log(double(n))};
    default: return {};
  }
}

// Statistics of the finite values of one observable. moments.count == 0: no finite value.
struct ObservableSummary {
  Moments moments;
  double quantiles[kQuantileCount] = {0, 0, 0, 0, 0, 0, 0};
  double histogram_lo = 0, histogram_hi = 0;
  std::vector<long long> histogram;
};

struct CheckpointSummary {
  double t = 0;
  long long step = -1;                     // fixed-step integrators: step index; -1 for dopri5
  long long runs = 0;
  long long by_status[5] = {0, 0, 0, 0, 0};  // indexed by RunStatus
  long long above[kPassageCount] = {0, 0, 0};  // non-diverged runs with s_max >= passage_threshold(k)
  long long finite = 0;                    // non-diverged runs
  long long winner_is_u0 = 0;              // non-diverged runs whose winner is argmax u(0)
  long long a0_defined = 0;                // non-diverged runs whose a(0) has a unique maximum
  long long winner_is_a0 = 0;              // ... of which the winner is argmax a(0)
  std::vector<long long> winner_counts;    // n
  ObservableSummary observables[kSummarizedCount];
};

}  // namespace softflow
