// Purpose: one checkpoint's statistics on the CPU, and their JSON (see checkpoint_report.h).
#include "checkpoint_report.h"

#include <cmath>

#include "statistics.h"

namespace softflow {

CheckpointSummary summarize_checkpoint(const CheckpointObservations& obs, int n, int bins) {
  CheckpointSummary out;
  const size_t runs = obs.winner.size();
  out.t = obs.t;
  out.step = obs.step;
  out.runs = (long long)runs;
  out.winner_counts.assign(size_t(n), 0);
  for (size_t r = 0; r < runs; ++r) {
    const RunRecord& rec = obs.records[r];
    ++out.by_status[int(rec.status)];
    if (rec.status == RunStatus::diverged) continue;  // a diverged run has no meaningful winner
    ++out.finite;
    for (int k = 0; k < kPassageCount; ++k)
      if (obs.values[kSMax][r] >= passage_threshold(k)) ++out.above[k];
    ++out.winner_counts[size_t(obs.winner[r])];
    out.winner_is_u0 += obs.winner[r] == rec.argmax_u0;
    if (rec.argmax_a0 >= 0) {
      ++out.a0_defined;
      out.winner_is_a0 += obs.winner[r] == rec.argmax_a0;
    }
  }
  for (int o = 0; o < kStateObservableCount; ++o)
    out.observables[o] = summarize_values(obs.values[o], bins, natural_range(o, n));
  // First-passage times: statistics over the runs that have crossed.
  std::vector<double> times(runs);
  for (int k = 0; k < kPassageCount; ++k) {
    for (size_t r = 0; r < runs; ++r) {
      const double t = obs.records[r].first_time[k];
      times[r] = t >= 0 ? t : NAN;
    }
    out.observables[kStateObservableCount + k] = summarize_values(times, bins);
  }
  return out;
}

nlohmann::json checkpoint_json(const CheckpointSummary& summary) {
  nlohmann::json out;
  out["t"] = summary.t;
  out["step"] = summary.step >= 0 ? nlohmann::json(summary.step) : nlohmann::json(nullptr);
  const long long* s = summary.by_status;
  out["counts"] = {{"runs", summary.runs}, {"running", s[0]},  {"polarized", s[1]},
                   {"converged", s[2]},    {"diverged", s[3]}, {"failed", s[4]}};
  auto fraction = [](long long count, long long of) {
    return of > 0 ? nlohmann::json(double(count) / double(of)) : nlohmann::json(nullptr);
  };
  static const char* const above_keys[kPassageCount] = {"s_max_ge_0_9", "s_max_ge_0_99", "s_max_ge_0_999"};
  nlohmann::json fractions = nlohmann::json::object();
  for (int k = 0; k < kPassageCount; ++k) fractions[above_keys[k]] = fraction(summary.above[k], summary.finite);
  fractions["winner_is_argmax_u0"] = fraction(summary.winner_is_u0, summary.finite);
  fractions["winner_is_argmax_a0"] = fraction(summary.winner_is_a0, summary.a0_defined);
  out["fractions"] = fractions;
  out["winner_counts"] = summary.winner_counts;
  nlohmann::json observables = nlohmann::json::object();
  for (int o = 0; o < kSummarizedCount; ++o) {
    nlohmann::json stats = observable_json(summary.observables[o]);
    if (o >= kStateObservableCount && stats.is_null()) stats = {{"count", 0}};  // passages always appear
    if (!stats.is_null()) observables[summarized_name(o)] = stats;
  }
  out["observables"] = observables;
  return out;
}

}  // namespace softflow
