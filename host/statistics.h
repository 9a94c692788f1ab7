// Purpose: statistics of one observable over the runs of a cell at one checkpoint on the CPU (science.md section
// 4): block-merged moments, type-7 quantiles of the sorted finite values, and a fixed-bin histogram.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint_summary.h"

namespace softflow {

// Statistics of the finite entries of values (one per run, in run order); non-finite entries (diverged runs,
// values that do not apply) are left out.
ObservableSummary summarize_values(const std::vector<double>& values, int histogram_bins, HistogramRange range = {});

// The JSON of one observable's statistics (docs/results.md); null when no value was finite.
nlohmann::json observable_json(const ObservableSummary& summary);

// Convenience for tests: observable_json(summarize_values(...)).
nlohmann::json summarize(const std::vector<double>& values, int histogram_bins, HistogramRange range = {});

// Quantile at level q of sorted values (type 7).
double quantile_of_sorted(const std::vector<double>& sorted, double q);

}  // namespace softflow
