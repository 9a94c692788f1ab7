// Purpose: statistics of one observable over the runs of a cell at one checkpoint (science.md section 4): count,
// mean, std, min, max, quantiles and a fixed-bin histogram, reduced in fixed blocks of run ids.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

namespace softflow {

// Runs per statistics block: the unit of deterministic reduction.
constexpr int kStatsBlockRuns = 1024;

// The quantile levels every scalar statistic reports, with their JSON keys.
struct QuantileLevel {
  double level;
  const char* key;
};
const std::vector<QuantileLevel>& quantile_levels();

// Histogram range: fixed when the observable is bounded (lo < hi), else the data's [min, max].
struct HistogramRange {
  double lo = 0;
  double hi = 0;
  bool fixed() const { return lo < hi; }
};

// Statistics of the finite entries of values (one per run, in run order); non-finite entries (diverged runs,
// values that do not apply) are left out and counted by "count" alone. Returns null if no value is finite.
nlohmann::json summarize(const std::vector<double>& values, int histogram_bins, HistogramRange range = {});

// Quantile at level q in [0, 1] of sorted values: linear interpolation between order statistics (numpy's default,
// Hyndman-Fan type 7).
double quantile_of_sorted(const std::vector<double>& sorted, double q);

}  // namespace softflow
