// Purpose: the gradient-descent kernel for value-softmax runs of any size (the fused register kernel covers only
// d = n in {8, 16, 32}): one thread block owns one run for the whole segment between two checkpoints. The O(d n)
// work is spread over the block with coalesced passes over V (row-major, d x n) in global memory: beta = V s (one
// warp per row), u = V^T r and the update V += h r s^T (one thread per column). The softmax, <s, u> and the norms
// are block reductions (CUB); s, u, beta and r live in shared memory. The loss residual r and the checks run on one
// thread through the shared loss_and_residual and apply_checks (O(d), or O(m d) for regression), so the loss math
// has one home. Every value-softmax loss, float32 and float64.
#pragma once

#include <cstddef>

#include "gd_segment.cuh"

namespace softflow {

// True if the block kernel can run this cell: value-softmax, and its shared-memory vectors (2 n + 3 d + m entries)
// fit the device's per-block limit.
bool block_gd_available(const ModelShape& shape, int real_bytes);

// Threads per block for a shape (a power of two from 32 to 1024, about max(d, n)).
int block_gd_threads(const ModelShape& shape);

// Advances every running run from step_from to step_to, one block per run (grid-stride over runs).
template <class Real>
void block_gd_advance(const GdSegmentArgs<Real>& args);

}  // namespace softflow
