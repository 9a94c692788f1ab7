// Purpose: value-softmax runs of any size with one thread block per run (the fused register kernel covers only
// d = n in {8, 16, 32}): gd and rk4 steps for a whole segment between two checkpoints, and the observation at a
// checkpoint (also after block_dopri5.cuh's adaptive steps).
// The O(d n) work is spread over the block with coalesced passes over V (row-major, d x n) in global memory: beta =
// V s (one warp per row), u = V^T r and the update V += h r s^T (one thread per column). The softmax, <s, u>, the
// norms and the observables' sums are block reductions (CUB); s, u, beta and r live in shared memory. The loss
// residual r and the checks run on one thread through the shared loss_and_residual and apply_checks, so that math
// has one home; the observables follow observe_run (observables.h) term by term with its sums spread over the
// block. Every value-softmax loss, float32 and float64.
#pragma once

#include <cstdint>

#include "fixed_step_segment.cuh"
#include "softflow/initial_state.h"

namespace softflow {

// True if the block kernels can run this cell: value-softmax, and the shared-memory vectors (2 n + 3 d + m
// entries) fit the device's per-block limit.
bool block_gd_available(const ModelShape& shape, int real_bytes);

// Threads per block for a shape (a power of two from 32 to 1024, about max(d, n)).
int block_gd_threads(const ModelShape& shape);

// Advances every running run from step_from to step_to, one block per run (grid-stride over runs).
template <class Real>
void block_gd_advance(const FixedStepSegmentArgs<Real>& args);

// rk4 likewise: four evaluations a step, stages 2-4 at the rank-one shift V + c r s^T of the previous stage
// (never formed), the stages' s, da and r in shared memory (9 n + 6 d + m entries; block_rk4_available).
bool block_rk4_available(const ModelShape& shape, int real_bytes);
template <class Real>
void block_rk4_advance(const FixedStepSegmentArgs<Real>& args);

// Observation of a wave of runs at a checkpoint, as observe_run (observables.h) on the CPU.
template <class Real>
struct BlockObserveArgs {
  ModelShape shape;
  StopRule stop;
  InitParams init;             // with seed and cell_index: redraws V(0) for invariant_drift (logistic loss)
  std::uint64_t seed;
  std::uint32_t cell_index;
  double t_checkpoint;         // the time of running runs; a stopped run is observed at its own time
  long long first_run, runs, total_runs;  // the wave's first run and size, the cell's size
  Real* states;                // wave: runs x state_size
  RunRecord* records;          // wave: runs
  const Real* data;            // wave: data_size per run, or one shared copy (data_stride 0)
  long long data_stride;
  double* values;              // cell: observable o of run r at values[o * total_runs + r], then the passages
  int* winners;                // cell: argmax s per run
  bool adaptive = false;       // dopri5 (block_dopri5.cuh): first passages interpolated, rejected steps reported
};

// Observes every run of the wave, one block per run.
template <class Real>
void block_observe(const BlockObserveArgs<Real>& args);

}  // namespace softflow
