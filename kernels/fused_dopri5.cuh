// Purpose: the fused dopri5 kernel for the value-softmax model at common small sizes (compile-time D, N): the lanes
// and registers of fused gd (lane_group.cuh), one run per group of T lanes of a warp, its state on chip for the
// whole segment between two checkpoints, each run taking its own adaptive steps. advance_adaptive's math
// (integrators.h): the same tableau, starting step, error norm, step control (dopri5_plan_step, dopri5_verdict,
// dopri5_book_step), checks and first passages on the dense output (locate_passages_in_step, on the group's
// gathered logits, only in the warps where some run crosses a threshold). The stage derivatives of V are rank one
// (r_m s_m^T), so the lanes keep each stage's s_m and da_m (their columns, in registers) and the group one copy of
// each r_m (shared memory), and every stage's V is formed entry by entry as V + h sum_m w_m r_m s_m^T
// (lane_flow.cuh's StageSum), never stored. The warp steps until all its
// runs have reached t_end or stopped; a run that is done takes steps of 0 on its unchanged state until then.
// Losses: logistic, square, cross_entropy.
// Built and tested without a GPU so far (tests/fused_kernel_emulation_test.cpp runs its source on the host), so it
// is off unless asked for (CudaCellInput::fused_dopri5_lanes).
#pragma once

#include <vector>

#include "block_dopri5.cuh"

namespace softflow {

// True if fused_dopri5_advance has an instance for this cell (and `lanes` then says how many lanes own one run by
// default).
bool fused_dopri5_available(const ModelShape& shape, int real_bytes, int* lanes);

// The lanes-per-run choices instantiated for a size (empty: no fused dopri5 kernel).
const std::vector<int>& fused_dopri5_lane_choices(int d, int n);

// Advances every running run to args.t_end (choosing its starting step on its first segment, as advance_adaptive)
// with `lanes` lanes per run (0: the default).
template <class Real>
void fused_dopri5_advance(const AdaptiveSegmentArgs<Real>& args, int lanes = 0);

}  // namespace softflow
