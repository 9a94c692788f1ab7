// Purpose: what a backend hands back for one cell at one checkpoint: every run's observables and outcome, in run
// order (CPU backend). summarize_checkpoint (checkpoint_report.h) reduces it to a CheckpointSummary.
#pragma once

#include <cstdint>
#include <vector>

#include "softflow/observables.h"
#include "softflow/run_record.h"

namespace softflow {

struct CheckpointObservations {
  double t = 0;
  long long step = -1;                                  // fixed-step integrators: step index; -1 for dopri5
  std::vector<double> values[kStateObservableCount];    // [observable][run]
  std::vector<int> winner;                              // argmax s per run
  std::vector<RunRecord> records;                       // status, event times, initial-state facts per run

  void resize(long long runs) {
    for (auto& v : values) v.assign(size_t(runs), 0.0);
    winner.assign(size_t(runs), 0);
    records.assign(size_t(runs), RunRecord());
  }
};

}  // namespace softflow
