// Purpose: the arguments of the fixed-step kernels that advance a wave of value-softmax runs between two checkpoints
// with each run's state kept on chip (fused_gd.cuh, fused_rk4.cuh: registers, small sizes; block_per_run.cuh: gd,
// one block per run, any size).
#pragma once

#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

template <class Real>
struct FixedStepSegmentArgs {
  ModelShape shape;
  double step;
  long long step_from, step_to;  // step indices: advance every running run from step_from to step_to
  StopRule stop;
  long long runs;
  Real* states;        // runs x state_size (run-major, as everywhere)
  RunRecord* records;  // runs
  const Real* data;    // data_size per run, or one shared copy (data_stride 0)
  long long data_stride;
  int variant = -1;    // fused kernel only: loop structure (fused_gd.cuh)
};

}  // namespace softflow
