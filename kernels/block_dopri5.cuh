// Purpose: value-softmax and tied-model runs under dopri5 with one thread block per run (block_dopri5.cu): each
// block takes its own run's adaptive steps from checkpoint to checkpoint, so runs with few steps free their block
// early and no run waits on another's step size. The math is advance_adaptive's (integrators.h): the same tableau,
// step control (dopri5_plan_step, dopri5_verdict, dopri5_book_step), starting step, error norm and (value-softmax)
// first-passage location, with the state's O(d n) passes spread over the block as in block_run.cuh (value-softmax)
// and block_tied_flow.cuh (tied). The stage derivatives of the matrix are rank one (dV_m = r_m s_m^T) or two (dU_m =
// r_m alpha_m^T + gvec_m a_m^T), so a stage keeps only its vectors in shared memory and every stage's matrix is
// formed entry by entry as M + h sum_m c_m dM_m (StageCombination), never stored.
#pragma once

#include "softflow/initial_state.h"
#include "softflow/integrators.h"
#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

template <class Real>
struct AdaptiveSegmentArgs {
  ModelShape shape;
  AdaptiveRule rule;
  double t_end;        // advance every running run from its rec.t to exactly t_end
  StopRule stop;
  long long runs;
  Real* states;        // runs x state_size (run-major, as everywhere)
  RunRecord* records;  // runs
  const Real* data;    // data_size per run, or one shared copy (data_stride 0)
  long long data_stride;
};

// True if the block dopri5 kernel can run this cell: value-softmax or tied, and its shared-memory vectors
// (value-softmax 17 n + 9 d + m entries, tied 48 D) fit the device's per-block limit.
bool block_dopri5_available(const ModelShape& shape, int real_bytes);

// Advances every running run to args.t_end (from t = 0 on the first call, which also chooses its starting step as
// advance_adaptive does), one block per run (grid-stride over runs).
template <class Real>
void block_dopri5_advance(const AdaptiveSegmentArgs<Real>& args);

}  // namespace softflow
