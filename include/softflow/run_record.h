// Purpose: the per-run bookkeeping every backend keeps beside a run's state (time, status, event times, step
// counts, initial-state facts), and the one function that applies the stopping and event checks to an evaluation.
#pragma once

#include <cstdint>

#include "softflow/hostdevice.h"
#include "softflow/model.h"

namespace softflow {

enum class RunStatus : std::int32_t { running = 0, polarized = 1, converged = 2, diverged = 3, failed = 4 };

// Thresholds for the first-passage times of s_max (science.md section 1).
constexpr int kPassageCount = 3;
SOFTFLOW_HD inline double passage_threshold(int k) { return k == 0 ? 0.9 : (k == 1 ? 0.99 : 0.999); }

// Per-run stopping rules; a non-positive bound switches that rule off.
struct StopRule {
  double polarized_eps = 0;    // stop when s_max >= 1 - eps
  double loss_below = 0;       // stop when loss < bound
  double grad_norm_below = 0;  // stop when ||grad L|| < bound
};

struct RunRecord {
  double t = 0;                           // the run's current time
  double h = 0;                           // adaptive integrators: the next step to try (0 = not chosen yet)
  double first_time[kPassageCount];       // first time s_max >= threshold; -1 = not reached
  double stop_time = -1;                  // time the run stopped or diverged; -1 = still running
  double last_check_t = -1;               // time and s_max of the last checked state (for interpolated passages)
  double last_s_max = -1;
  long long steps = 0;                    // accepted steps
  long long rejected = 0;                 // rejected steps (adaptive integrators)
  RunStatus status = RunStatus::running;
  double sum_a0 = 0;                      // sum_i a_i(0)
  int argmax_u0 = 0;                      // argmax_i u_i(0), u = V^T r at t = 0 (tied: U^T r)
  int argmax_a0 = 0;                      // argmax_i a_i(0); -1 when the maximum is tied (e.g. a(0) = 0)
  SOFTFLOW_HD RunRecord() {
    for (int k = 0; k < kPassageCount; ++k) first_time[k] = -1;
  }
};

// Records the state evaluated at time t: divergence, first passages, and stopping. Returns true if the run is
// still running afterwards. interpolate: a first passage between the last checked state and this one is placed by
// linear interpolation of s_max in time (for adaptive integrators, whose steps grow large); otherwise at t.
template <class Real>
SOFTFLOW_HD inline bool apply_checks(const FlowEval<Real>& eval, double t, const StopRule& stop, bool interpolate,
                                     RunRecord& rec) {
  if (rec.status != RunStatus::running) return false;
  if (!is_finite(eval.loss) || !is_finite(eval.grad_norm_sq) || !is_finite(eval.s_max)) {
    rec.status = RunStatus::diverged;
    rec.stop_time = t;
    return false;
  }
  const double s_max = double(eval.s_max);
  for (int k = 0; k < kPassageCount; ++k) {
    const double threshold = passage_threshold(k);
    if (rec.first_time[k] >= 0 || s_max < threshold) continue;
    const bool bracketed = interpolate && rec.last_s_max >= 0 && rec.last_s_max < threshold && t > rec.last_check_t;
    rec.first_time[k] = bracketed ? rec.last_check_t + (threshold - rec.last_s_max) / (s_max - rec.last_s_max) *
                                                           (t - rec.last_check_t)
                                  : t;
  }
  rec.last_check_t = t;
  rec.last_s_max = s_max;
  if (stop.polarized_eps > 0 && double(eval.s_max) >= 1.0 - stop.polarized_eps) {
    rec.status = RunStatus::polarized;
  } else if ((stop.loss_below > 0 && double(eval.loss) < stop.loss_below) ||
             (stop.grad_norm_below > 0 && double(eval.grad_norm_sq) < stop.grad_norm_below * stop.grad_norm_below)) {
    rec.status = RunStatus::converged;
  }
  if (rec.status != RunStatus::running) {
    rec.stop_time = t;
    return false;
  }
  return true;
}

}  // namespace softflow
