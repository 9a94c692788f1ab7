// Purpose: the fused gradient-descent kernel for the value-softmax model at common small sizes (compile-time D, N):
// a group of T lanes of one warp owns one run, each lane N/T columns of V (all D rows), its a_j and s_j, all in
// registers for the whole segment between two checkpoints. Per step: softmax (max and sum across the group), beta =
// V s (all-reduce over the group), the loss residual r from the shared loss_and_residual, u = V^T r (local), then
// V += h r s^T and a += h s .* (u - <s,u>) (science.md section 1). Checks per step use the shared apply_checks.
// Losses: logistic, square, cross_entropy (regression and the tied model use the generic kernel).
#pragma once

#include <vector>

#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

template <class Real>
struct FusedGdArgs {
  ModelShape shape;
  double step;
  long long step_from, step_to;
  StopRule stop;
  long long runs;
  Real* states;        // runs x state_size (run-major, as everywhere)
  RunRecord* records;  // runs
  const Real* data;    // data_size per run, or one shared copy (data_stride 0)
  long long data_stride;
};

// True if fused_gd_advance has an instance for this cell (and `lanes` then says how many lanes own one run).
bool fused_gd_available(const ModelShape& shape, int real_bytes, int* lanes);

// The lanes-per-run variants instantiated for a size (empty: no fused kernel); bench/fused_gd_playground times them.
const std::vector<int>& fused_gd_lane_choices(int d, int n);

// Advances every running run from step_from to step_to with `lanes` lanes per run (0: the default choice, enough
// lanes that one lane's share of V stays near 128 registers).
template <class Real>
void fused_gd_advance(const FusedGdArgs<Real>& args, int lanes = 0);

}  // namespace softflow
