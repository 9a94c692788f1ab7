// Purpose: the tied model (alpha = softmax(U a), beta = U alpha, logistic loss; model.h tied_flow) under gd with one
// thread block per run (block_tied.cu), any D whose vectors fit shared memory: U a, U alpha (one warp per row),
// U^T r, U^T gvec and the update (one thread per column) in coalesced passes over U in global memory; the softmax,
// the margin and the norms are block reductions. The checkpoint observation stays the thread-per-run kernel's.
#pragma once

#include "fixed_step_segment.cuh"

namespace softflow {

// True if the block tied gd kernel can run this cell: the tied model, and its shared-memory vectors (6 D entries)
// fit the device's per-block limit.
bool block_tied_gd_available(const ModelShape& shape, int real_bytes);

// Advances every running run from step_from to step_to, one block per run (grid-stride over runs).
template <class Real>
void block_tied_gd_advance(const FixedStepSegmentArgs<Real>& args);

}  // namespace softflow
