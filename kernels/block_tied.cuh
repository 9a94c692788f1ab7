// Purpose: the tied model (alpha = softmax(U a), beta = U alpha, logistic loss; model.h tied_flow) under gd and rk4
// with one thread block per run (block_tied.cu), any D whose vectors fit shared memory: U a, U alpha (one warp per
// row), U^T r, U^T gvec and the update (one thread per column) in coalesced passes over U in global memory; the
// softmax, the margin and the norms are block reductions. rk4's stages 2-4 evaluate at U + c dU_p with the previous
// stage's rank-two derivative dU_p = r_p alpha_p^T + gvec_p a_p^T formed entry by entry, never stored; each stage
// keeps its vectors in shared memory (27 D entries in all). The checkpoint observation stays the thread-per-run
// kernel's.
#pragma once

#include "fixed_step_segment.cuh"

namespace softflow {

// True if the block tied gd kernel can run this cell: the tied model, and its shared-memory vectors (6 D entries)
// fit the device's per-block limit.
bool block_tied_gd_available(const ModelShape& shape, int real_bytes);

// Advances every running run from step_from to step_to, one block per run (grid-stride over runs).
template <class Real>
void block_tied_gd_advance(const FixedStepSegmentArgs<Real>& args);

// The same for rk4 (vectors: 27 D entries).
bool block_tied_rk4_available(const ModelShape& shape, int real_bytes);
template <class Real>
void block_tied_rk4_advance(const FixedStepSegmentArgs<Real>& args);

}  // namespace softflow
