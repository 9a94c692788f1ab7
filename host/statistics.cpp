// Purpose: statistics of one observable over the runs of a cell on the CPU, and their JSON (see statistics.h).
#include "statistics.h"

#include <algorithm>
#include <cmath>

namespace softflow {

double quantile_of_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const QuantilePosition p = quantile_position((long long)sorted.size(), q);
  return interpolate_quantile(sorted[size_t(p.below)], sorted[size_t(p.above)], p.fraction);
}

ObservableSummary summarize_values(const std::vector<double>& values, int histogram_bins, HistogramRange range) {
  ObservableSummary out;
  const size_t runs = values.size();
  for (size_t block = 0; block < runs; block += kStatsBlockRuns) {
    Moments partial;
    const size_t end = std::min(runs, block + kStatsBlockRuns);
    for (size_t r = block; r < end; ++r)
      if (std::isfinite(values[r])) partial.add(values[r]);
    out.moments.merge(partial);
  }
  out.histogram.assign(size_t(histogram_bins), 0);
  if (out.moments.count == 0) return out;
  std::vector<double> sorted;
  sorted.reserve(size_t(out.moments.count));
  for (double x : values)
    if (std::isfinite(x)) sorted.push_back(x);
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < kQuantileCount; ++i) out.quantiles[i] = quantile_of_sorted(sorted, quantile_level(i));
  out.histogram_lo = range.fixed() ? range.lo : out.moments.min;
  out.histogram_hi = range.fixed() ? range.hi : out.moments.max;
  for (double x : sorted) ++out.histogram[size_t(histogram_bin(x, out.histogram_lo, out.histogram_hi, histogram_bins))];
  return out;
}

nlohmann::json observable_json(const ObservableSummary& summary) {
  if (summary.moments.count == 0) return nullptr;
  static const char* const keys[kQuantileCount] = {"q01", "q05", "q25", "q50", "q75", "q95", "q99"};
  nlohmann::json out;
  out["count"] = static_cast<long long>(summary.moments.count);
  out["mean"] = summary.moments.mean();
  out["std"] = summary.moments.stddev();
  out["min"] = summary.moments.min;
  out["max"] = summary.moments.max;
  nlohmann::json quantiles = nlohmann::json::object();
  for (int i = 0; i < kQuantileCount; ++i) quantiles[keys[i]] = summary.quantiles[i];
  out["quantiles"] = quantiles;
  out["histogram"] = {{"lo", summary.histogram_lo}, {"hi", summary.histogram_hi}, {"counts", summary.histogram}};
  return out;
}

nlohmann::json summarize(const std::vector<double>& values, int histogram_bins, HistogramRange range) {
  return observable_json(summarize_values(values, histogram_bins, range));
}

}  // namespace softflow
