// Purpose: the pre-filter in front of apply_checks (run_record.h), shared by the CPU's SIMD kernel and the GPU's
// fused logistic kernel. Kernels that check every step in their own precision compare each run's s_max, loss and
// ||grad||^2 with thresholds nudged one ulp outward, so that a comparison in Real flags every run the exact rule
// (in double) could act on; only flagged runs go through apply_checks. A run whose checks were all skipped has
// nothing to record but its step count, time and last s_max (the kernel's end-of-segment bookkeeping).
#pragma once

#include <cmath>

#include "softflow/hostdevice.h"
#include "softflow/run_record.h"

namespace softflow {

// A Real below x and a Real above x, for x in double: x's nearest Real moved one ulp down (up). One ulp further
// than needed where the rounding already went that way, which only widens the pre-filter.
template <class Real>
SOFTFLOW_HD inline Real nudged_down(double x) {
  if constexpr (sizeof(Real) == 4) return nextafterf(float(x), -INFINITY);
  else return nextafter(x, -INFINITY);
}
template <class Real>
SOFTFLOW_HD inline Real nudged_up(double x) {
  if constexpr (sizeof(Real) == 4) return nextafterf(float(x), INFINITY);
  else return nextafter(x, INFINITY);
}

// The lowest first-passage threshold the run has not reached yet (2 = all reached: s_max never exceeds 1).
SOFTFLOW_HD inline double next_passage(const RunRecord& rec) {
  for (int k = 0; k < kPassageCount; ++k)
    if (rec.first_time[k] < 0) return passage_threshold(k);
  return 2.0;
}

// A run's passage threshold in pre-filter form.
template <class Real>
SOFTFLOW_HD inline Real prefilter_passage(const RunRecord& rec) {
  return nudged_down<Real>(next_passage(rec));
}

// A StopRule in pre-filter form; a rule that is off gets a threshold no value reaches.
template <class Real>
struct CheckThresholds {
  Real polarized_at;   // flag s_max >= polarized_at
  Real loss_below;     // flag loss < loss_below
  Real grad_sq_below;  // flag ||grad||^2 < grad_sq_below

  SOFTFLOW_HD explicit CheckThresholds(const StopRule& stop)
      : polarized_at(stop.polarized_eps > 0 ? nudged_down<Real>(1.0 - stop.polarized_eps) : Real(3)),
        loss_below(stop.loss_below > 0 ? nudged_up<Real>(stop.loss_below) : -Real(INFINITY)),
        grad_sq_below(stop.grad_norm_below > 0 ? nudged_up<Real>(stop.grad_norm_below * stop.grad_norm_below)
                                               : Real(-1)) {}

  // True if apply_checks could do more than note the time and s_max of this evaluation. loss may be a stand-in
  // that is non-finite wherever the loss is and, if a loss rule is on, below loss_below wherever the loss is.
  SOFTFLOW_HD bool flags(Real loss, Real s_max, Real grad_sq, Real passage) const {
    const bool finite = is_finite(loss) && is_finite(grad_sq) && is_finite(s_max);
    return !finite || s_max >= passage || s_max >= polarized_at || loss < loss_below || grad_sq < grad_sq_below;
  }
};

}  // namespace softflow
