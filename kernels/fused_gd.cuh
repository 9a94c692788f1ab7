// Purpose: the fused gradient-descent kernel for the value-softmax model at common small sizes (compile-time D, N):
// a group of T lanes of one warp owns one run, each lane N/T columns of V (all D rows), its a_j and s_j, all in
// registers for the whole segment between two checkpoints. Per step: softmax (max and sum across the group), beta =
// V s (all-reduce over the group), the loss residual r from the shared loss_and_residual, u = V^T r (local), then
// V += h r s^T and a += h s .* (u - <s,u>) (science.md section 1). Checks per step use the shared apply_checks.
// Losses: logistic, square, cross_entropy (regression and the tied model use the generic kernel).
#pragma once

#include <vector>

#include "fixed_step_segment.cuh"

namespace softflow {

// True if fused_gd_advance has an instance for this cell (and `lanes` then says how many lanes own one run).
bool fused_gd_available(const ModelShape& shape, int real_bytes, int* lanes);

// The lanes-per-run variants instantiated for a size (empty: no fused kernel); bench/fused_gd_playground times them.
const std::vector<int>& fused_gd_lane_choices(int d, int n);

// Advances every running run from step_from to step_to with `lanes` lanes per run (0: the default choice, enough
// lanes that one lane's share of V stays near 128 registers).
// Two loop structures (bench/results/2026-11-23-h100-playground-v1 times both):
//   variant 0: each run's lanes leave the step loop when the run stops; shuffles carry divergence guards.
//   variant 1: the whole warp steps until all its runs have stopped (a stopped run stores its state and continues
//              on a zeroed copy that is never stored), so shuffles are full-warp and the next step's softmax
//              overlaps the update of V. Faster with 2 or more lanes (16 x 16 float32: 23.4 % of peak against
//              22.5 %; float64: 17.1 % against 15.4 %), slower with 1 lane (8 x 8: 22.0 % against 23.5 %).
//   variant 2: the logistic loss only (fused_gd_logistic.cuh): variant 1's loop with the CPU SIMD kernel's
//              logistic step (u = g V^T y summed in the update pass, unnormalised softmax, checks pre-filtered).
//              Built and tested without a GPU so far: bench/fused_gd_playground times it against 0 and 1.
// The default (variant -1) takes variant 0 for 1 lane and variant 1 otherwise.
template <class Real>
void fused_gd_advance(const FixedStepSegmentArgs<Real>& args, int lanes = 0);

}  // namespace softflow
