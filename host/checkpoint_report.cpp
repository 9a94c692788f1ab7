// Purpose: turning one checkpoint's per-run observations into the statistics of the results JSON.
#include <cmath>
#include <string>

#include "observations.h"
#include "statistics.h"

namespace softflow {
namespace {

const char* passage_key(int k) {
  return k == 0 ? "first_time_s_max_0_9" : (k == 1 ? "first_time_s_max_0_99" : "first_time_s_max_0_999");
}
const char* fraction_key(int k) {
  return k == 0 ? "s_max_ge_0_9" : (k == 1 ? "s_max_ge_0_99" : "s_max_ge_0_999");
}

HistogramRange natural_range(int observable, int n) {
  switch (observable) {
    case kEntropyRatio: return {0.0, 1.0};
    case kSMax: return {0.0, 1.0};
    case kEntropy: return {0.0, std::log(double(n))};
    default: return {};
  }
}

}  // namespace

nlohmann::json checkpoint_report(const CheckpointObservations& obs, int n, int bins) {
  const size_t runs = obs.winner.size();
  nlohmann::json out;
  out["t"] = obs.t;
  out["step"] = obs.step >= 0 ? nlohmann::json(obs.step) : nlohmann::json(nullptr);

  long long by_status[5] = {0, 0, 0, 0, 0};
  long long above[kPassageCount] = {0, 0, 0};
  long long winner_is_u0 = 0, winner_is_a0 = 0, finite = 0, a0_defined = 0;
  std::vector<long long> winner_counts(size_t(n), 0);
  for (size_t r = 0; r < runs; ++r) {
    const RunRecord& rec = obs.records[r];
    ++by_status[int(rec.status)];
    if (rec.status == RunStatus::diverged) continue;  // a diverged run has no meaningful winner
    ++finite;
    const double s_max = obs.values[kSMax][r];
    for (int k = 0; k < kPassageCount; ++k)
      if (s_max >= passage_threshold(k)) ++above[k];
    ++winner_counts[size_t(obs.winner[r])];
    winner_is_u0 += obs.winner[r] == rec.argmax_u0;
    if (rec.argmax_a0 >= 0) {
      ++a0_defined;
      winner_is_a0 += obs.winner[r] == rec.argmax_a0;
    }
  }
  out["counts"] = {{"runs", runs},           {"running", by_status[0]},  {"polarized", by_status[1]},
                   {"converged", by_status[2]}, {"diverged", by_status[3]}, {"failed", by_status[4]}};
  // Fractions are over the runs that did not diverge.
  auto fraction = [](long long count, long long of) { return of > 0 ? double(count) / double(of) : NAN; };
  nlohmann::json fractions = nlohmann::json::object();
  for (int k = 0; k < kPassageCount; ++k) fractions[fraction_key(k)] = fraction(above[k], finite);
  fractions["winner_is_argmax_u0"] = fraction(winner_is_u0, finite);
  fractions["winner_is_argmax_a0"] = fraction(winner_is_a0, a0_defined);  // over runs whose a(0) has no tied max
  for (auto& item : fractions.items())
    if (std::isnan(item.value().get<double>())) item.value() = nullptr;
  out["fractions"] = fractions;
  out["winner_counts"] = winner_counts;

  nlohmann::json observables = nlohmann::json::object();
  for (int o = 0; o < kStateObservableCount; ++o) {
    nlohmann::json stats = summarize(obs.values[o], bins, natural_range(o, n));
    if (!stats.is_null()) observables[observable_name(o)] = stats;
  }
  // First-passage times: statistics over the runs that have crossed, with the crossed count in "count".
  std::vector<double> times(runs);
  for (int k = 0; k < kPassageCount; ++k) {
    for (size_t r = 0; r < runs; ++r) {
      const double t = obs.records[r].first_time[k];
      times[r] = t >= 0 ? t : NAN;
    }
    nlohmann::json stats = summarize(times, bins);
    observables[passage_key(k)] = stats.is_null() ? nlohmann::json({{"count", 0}}) : stats;
  }
  out["observables"] = observables;
  return out;
}

}  // namespace softflow
