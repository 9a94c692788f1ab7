// Purpose: one checkpoint's statistics: reduced on the CPU from per-run observations, and written as the JSON of
// docs/results.md from a CheckpointSummary (whichever backend made it).
#pragma once

#include <nlohmann/json.hpp>

#include "checkpoint_summary.h"
#include "observations.h"

namespace softflow {

// n: softmax size (length of the winner counts); bins: histogram bins.
CheckpointSummary summarize_checkpoint(const CheckpointObservations& obs, int n, int bins);

// Counts, fractions (over non-diverged runs; winner_is_argmax_a0 over runs whose a(0) has a unique maximum),
// winner counts and observables.<name> statistics.
nlohmann::json checkpoint_json(const CheckpointSummary& summary);

}  // namespace softflow
