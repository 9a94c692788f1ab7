// Purpose: statistics of one observable over the runs of a cell (see statistics.h).
#include "statistics.h"

#include <algorithm>
#include <cmath>

#include "softflow/moments.h"

namespace softflow {

const std::vector<QuantileLevel>& quantile_levels() {
  static const std::vector<QuantileLevel> levels = {{0.01, "q01"}, {0.05, "q05"}, {0.25, "q25"}, {0.5, "q50"},
                                                    {0.75, "q75"}, {0.95, "q95"}, {0.99, "q99"}};
  return levels;
}

double quantile_of_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const double position = q * double(sorted.size() - 1);
  const size_t below = size_t(std::floor(position));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - double(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

nlohmann::json summarize(const std::vector<double>& values, int histogram_bins, HistogramRange range) {
  Moments total;
  const size_t runs = values.size();
  for (size_t block = 0; block < runs; block += kStatsBlockRuns) {
    Moments partial;
    const size_t end = std::min(runs, block + kStatsBlockRuns);
    for (size_t r = block; r < end; ++r)
      if (std::isfinite(values[r])) partial.add(values[r]);
    total.merge(partial);
  }
  if (total.count == 0) return nullptr;
  std::vector<double> sorted;
  sorted.reserve(size_t(total.count));
  for (double x : values)
    if (std::isfinite(x)) sorted.push_back(x);
  std::sort(sorted.begin(), sorted.end());

  nlohmann::json out;
  out["count"] = static_cast<long long>(total.count);
  out["mean"] = total.mean;
  out["std"] = total.stddev();
  out["min"] = total.min;
  out["max"] = total.max;
  nlohmann::json quantiles = nlohmann::json::object();
  for (const auto& level : quantile_levels()) quantiles[level.key] = quantile_of_sorted(sorted, level.level);
  out["quantiles"] = quantiles;

  const double lo = range.fixed() ? range.lo : total.min;
  const double hi = range.fixed() ? range.hi : total.max;
  std::vector<long long> counts(size_t(histogram_bins), 0);
  for (double x : sorted) {
    long long bin = hi > lo ? static_cast<long long>(std::floor((x - lo) / (hi - lo) * histogram_bins)) : 0;
    bin = std::clamp<long long>(bin, 0, histogram_bins - 1);
    ++counts[size_t(bin)];
  }
  out["histogram"] = {{"lo", lo}, {"hi", hi}, {"counts", counts}};
  return out;
}

}  // namespace softflow
