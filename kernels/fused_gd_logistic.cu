// Purpose: the fused gd kernel for the logistic loss (see fused_gd_logistic.cuh).
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "fused_gd_logistic.cuh"
#include "lane_flow.cuh"
#include "softflow/check_prefilter.h"

namespace softflow {
namespace {

// One pass over the lane's columns of V: with Update, V += y step_weight^T first (step_weight_c = h g c e_c of the
// step being taken, so V += h r s^T); then ve_i = sum_c V_ic e_c over the lane's columns (D) and w_c = sum_i y_i V_ic
// (C). step_weight, e, w: C per lane; ve: D.
template <bool Update, class Real, int D, int N, int T>
__device__ inline void logistic_pass(LaneState<Real, D, N, T>& x, const Real (&step_weight)[N / T],
                                     const Real (&e)[N / T], Real (&ve)[D], Real (&w)[N / T]) {
  constexpr int C = N / T;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const Real y = x.target[i];
    Real sum = 0;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      if (Update) x.v[i][c] += y * step_weight[c];
      sum += x.v[i][c] * e[c];
      w[c] = i == 0 ? y * x.v[i][c] : w[c] + y * x.v[i][c];
    }
    ve[i] = sum;
  }
}

template <class Real, int D, int N, int T>
__global__ void __launch_bounds__(kFusedThreadsPerBlock)
    fused_gd_logistic_kernel(FixedStepSegmentArgs<Real> args) {
  constexpr int C = N / T;
  constexpr unsigned kFull = 0xffffffffu;
  const GroupPosition<T> at(args.runs);
  if (at.skip_warp) return;  // whole warps only
  RunRecord rec = args.records[at.loaded_run];
  bool active = at.exists && rec.status == RunStatus::running;
  const bool started = active;
  if (!__any_sync(kFull, active)) return;
  Real* theta = args.states + at.loaded_run * (D * N + N);
  LaneState<Real, D, N, T> x;
  x.load(theta, args.data + at.loaded_run * args.data_stride, at.lane);
  const Real(&y)[D] = x.target;

  const CheckThresholds<Real> thresholds(args.stop);
  const bool loss_each_step = args.stop.loss_below > 0;
  const long long steps_at_entry = rec.steps;
  Real passage = active ? prefilter_passage<Real>(rec) : Real(3);
  const Real h = Real(args.step);
  Real y_sq = 0;
#pragma unroll
  for (int i = 0; i < D; ++i) y_sq += y[i] * y[i];
  Real e[C], w[C], ve[D];
  Real c = group_softmax_weights<T>(x.a, e, kFull);
  logistic_pass<false>(x, e, e, ve, w);
  Real last_s_max = c;
  for (long long k = args.step_from; k < args.step_to; ++k) {
    if (!__any_sync(kFull, active)) break;
    // margin <y, beta> = c <y, V e>; <s, u> = g c <e, w>; da_j = c e_j (g w_j - <s, u>).
    Real y_ve = 0, e_w = 0, e_sq = 0;
#pragma unroll
    for (int i = 0; i < D; ++i) y_ve += y[i] * ve[i];
#pragma unroll
    for (int j = 0; j < C; ++j) {
      e_w += e[j] * w[j];
      e_sq += e[j] * e[j];
    }
    y_ve = group_sum<T>(y_ve, kFull);
    e_w = group_sum<T>(e_w, kFull);
    e_sq = group_sum<T>(e_sq, kFull);
    const Real margin = c * y_ve;
    const Real g = logistic_weight(margin);
    const Real mean_u = g * (c * e_w);
    Real da[C], da_sq = 0;
#pragma unroll
    for (int j = 0; j < C; ++j) {
      da[j] = (c * e[j]) * (g * w[j] - mean_u);
      da_sq += da[j] * da[j];
    }
    // ||grad||^2 = ||da||^2 + ||r s^T||_F^2, with ||r||^2 = g^2 ||y||^2 and ||s||^2 = c^2 sum e^2.
    const Real grad_sq = group_sum<T>(da_sq, kFull) + (g * g * y_sq) * (c * c * e_sq);
    // Without a loss_below rule the margin stands in for the loss in the pre-filter (non-finite wherever it is).
    const Real loss_probe = loss_each_step ? logistic_loss(margin) : margin;
    if (active && thresholds.flags(loss_probe, c, grad_sq, passage)) {  // no shuffles in here
      const double t = double(k) * args.step;
      rec.t = t;
      rec.steps = steps_at_entry + (k - args.step_from);
      const FlowEval<Real> eval{logistic_loss(margin), c, grad_sq, 0};
      if (apply_checks(eval, t, args.stop, false, rec)) {
        passage = prefilter_passage<Real>(rec);
      } else {
        active = false;
        x.store(theta, at.lane);
        x.clear();  // V = 0, a = 0 and no more steps: ve, w and da stay 0
#pragma unroll
        for (int j = 0; j < C; ++j) da[j] = 0;
      }
    }
    last_s_max = c;
    // The step: a += h da and the next softmax weights, then V += h r s^T = (h g c) y e^T in the pass that forms
    // the next V e and V^T y.
    const Real step_scale = active ? h * g * c : Real(0);
    Real step_weight[C];
#pragma unroll
    for (int j = 0; j < C; ++j) {
      x.a[j] += h * da[j];
      step_weight[j] = step_scale * e[j];
    }
    c = group_softmax_weights<T>(x.a, e, kFull);
    logistic_pass<true>(x, step_weight, e, ve, w);
  }
  if (active) {  // the bookkeeping the skipped checks would have kept
    rec.steps = steps_at_entry + (args.step_to - args.step_from);
    rec.t = double(args.step_to) * args.step;
    if (args.step_to > args.step_from) {
      rec.last_check_t = double(args.step_to - 1) * args.step;
      rec.last_s_max = double(last_s_max);
    }
    x.store(theta, at.lane);
  }
  if (started && at.lane == 0) args.records[at.run] = rec;
}

}  // namespace

template <class Real, int D, int N, int T>
void launch_fused_gd_logistic(const FixedStepSegmentArgs<Real>& args) {
  launch_lane_groups<T>(fused_gd_logistic_kernel<Real, D, N, T>, args);
}

// The instances of fused_gd_lane_choices (fused_gd.cu).
#define SOFTFLOW_LOGISTIC_INSTANCES(Real)                                                      \
  template void launch_fused_gd_logistic<Real, 8, 8, 1>(const FixedStepSegmentArgs<Real>&);    \
  template void launch_fused_gd_logistic<Real, 8, 8, 2>(const FixedStepSegmentArgs<Real>&);    \
  template void launch_fused_gd_logistic<Real, 8, 8, 4>(const FixedStepSegmentArgs<Real>&);    \
  template void launch_fused_gd_logistic<Real, 16, 16, 2>(const FixedStepSegmentArgs<Real>&);  \
  template void launch_fused_gd_logistic<Real, 16, 16, 4>(const FixedStepSegmentArgs<Real>&);  \
  template void launch_fused_gd_logistic<Real, 16, 16, 8>(const FixedStepSegmentArgs<Real>&);  \
  template void launch_fused_gd_logistic<Real, 32, 32, 4>(const FixedStepSegmentArgs<Real>&);  \
  template void launch_fused_gd_logistic<Real, 32, 32, 8>(const FixedStepSegmentArgs<Real>&);  \
  template void launch_fused_gd_logistic<Real, 32, 32, 16>(const FixedStepSegmentArgs<Real>&);
SOFTFLOW_LOGISTIC_INSTANCES(float)
SOFTFLOW_LOGISTIC_INSTANCES(double)
#undef SOFTFLOW_LOGISTIC_INSTANCES

}  // namespace softflow
