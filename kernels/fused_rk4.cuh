// Purpose: the fused rk4 kernel for the value-softmax model at common small sizes (compile-time D, N): the lanes
// and registers of fused gd (lane_group.cuh), one run per group of T lanes of a warp, its state on chip for the
// whole segment between two checkpoints. Per step, four evaluations of the flow (lane_flow.cuh): stage 1 at the
// state (checked with apply_checks), stages 2-4 at the rank-one shifts V + c r_p s_p^T, a + c da_p of the previous
// stage (c = h/2, h/2, h), never formed; then V += h/6 (r1 s1^T + 2 r2 s2^T + 2 r3 s3^T + r4 s4^T) and
// a += h/6 (da1 + 2 (da2 + da3) + da4). Losses: logistic, square, cross_entropy. The warp-uniform loop of fused gd's
// variant 1: a run that stops stores its state, clears its registers and keeps stepping them (finite, never stored)
// until its warp is done.
// Built and tested without a GPU so far, so it is off unless asked for (CudaCellInput::fused_rk4_lanes).
#pragma once

#include <vector>

#include "fixed_step_segment.cuh"

namespace softflow {

// True if fused_rk4_advance has an instance for this cell (and `lanes` then says how many lanes own one run by
// default).
bool fused_rk4_available(const ModelShape& shape, int real_bytes, int* lanes);

// The lanes-per-run choices instantiated for a size (empty: no fused rk4 kernel).
const std::vector<int>& fused_rk4_lane_choices(int d, int n);

// Advances every running run from step_from to step_to with `lanes` lanes per run (0: the default).
template <class Real>
void fused_rk4_advance(const FixedStepSegmentArgs<Real>& args, int lanes = 0);

}  // namespace softflow
