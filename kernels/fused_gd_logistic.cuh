// Purpose: variant 2 of the fused gd kernel (fused_gd.cuh), for the logistic loss l = log(1 + exp(-<y, beta>)),
// the throughput target's loss. The same lanes and registers as variants 0 and 1 (lane_group.cuh), with the CPU
// SIMD kernel's reorganisation of the step (host/simd_kernel.cpp, AdvanceGdLogistic):
//   - r = g y has the fixed direction y, so u = V^T r = g w with w = V^T y; w and V e are summed in the pass that
//     updates V (three FMAs per entry: the update, V e, V^T y; the 6 d n FLOPs a step that bench counts), and no
//     product waits for the loss;
//   - the softmax is kept unnormalised (s = c e, e_j = exp(a_j - max a), c = 1 / sum e = max_j s_j), so the pass
//     waits for the exponentials, not for their sum;
//   - beta is never all-reduced: the margin <y, beta> = c sum_i y_i (V e)_i needs one group sum, like <e, w>,
//     sum e^2 and ||da||^2;
//   - checks go through the pre-filter (check_prefilter.h): apply_checks runs only for flagged runs, and the loss's
//     log1p only when a loss_below rule is on or a run is flagged (the margin stands in for it otherwise).
// The warp-uniform loop of variant 1: stopped runs store their state at once and step on zeros.
#pragma once

#include "fixed_step_segment.cuh"

namespace softflow {

// Advances every running run of a logistic cell from step_from to step_to with T lanes per run; instances for
// (D, N, T) in fused_gd_lane_choices.
template <class Real, int D, int N, int T>
void launch_fused_gd_logistic(const FixedStepSegmentArgs<Real>& args);

}  // namespace softflow
