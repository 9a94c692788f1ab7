// Purpose: the fused gradient-descent kernel (see fused_gd.cuh).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "fused_gd.cuh"
#include "fused_gd_logistic.cuh"
#include "lane_flow.cuh"

namespace softflow {
namespace {

// The gd update V += h r s^T, a += h da on the lane's columns.
template <class Real, int D, int N, int T>
__device__ inline void gd_update(LaneState<Real, D, N, T>& x, Real h, const Real (&r)[D], const Real (&s)[N / T],
                                 const Real (&da)[N / T]) {
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const Real hr = h * r[i];
#pragma unroll
    for (int c = 0; c < N / T; ++c) x.v[i][c] += hr * s[c];
  }
#pragma unroll
  for (int c = 0; c < N / T; ++c) x.a[c] += h * da[c];
}

// Variant 0 (fused_gd.cuh): a run's lanes leave the loop when the run stops.
template <class Real, int D, int N, int T>
__global__ void __launch_bounds__(kFusedThreadsPerBlock) fused_gd_kernel(FixedStepSegmentArgs<Real> args) {
  constexpr int C = N / T;
  const long long thread = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  const long long run = thread / T;
  const int lane = int(thread % T);
  if (run >= args.runs) return;  // whole groups leave together (blockDim is a multiple of T)
  const unsigned group_base = (threadIdx.x % 32) / T * T;
  const unsigned mask = T == 32 ? 0xffffffffu : ((1u << T) - 1u) << group_base;
  RunRecord rec = args.records[run];
  if (rec.status != RunStatus::running) return;
  const ModelShape shape = compile_time_shape<D, N>(args.shape);
  Real* theta = args.states + run * (D * N + N);
  LaneState<Real, D, N, T> x;
  x.load(theta, args.data + run * args.data_stride, lane);

  const Real h = Real(args.step);
  Real s[C], da[C], r[D], s_max, s_sq;
  for (long long k = args.step_from; k < args.step_to; ++k) {
    group_softmax<T>(x.a, s, s_max, s_sq, mask);
    const FlowEval<Real> eval = group_evaluate<T>(shape, x, Unshifted(), s, s_max, s_sq, r, da, mask);
    if (!apply_checks(eval, double(k) * args.step, args.stop, false, rec)) {
      rec.t = double(k) * args.step;  // as the CPU: a stopped run's time is its stop time
      break;
    }
    gd_update(x, h, r, s, da);
    ++rec.steps;
  }
  if (rec.status == RunStatus::running) rec.t = double(args.step_to) * args.step;
  x.store(theta, lane);
  if (lane == 0) args.records[run] = rec;
}

// Variant 1 (fused_gd.cuh): the whole warp stays in the step loop until every run in it has stopped, so every
// shuffle is a full-warp shuffle (no divergence guards) and the softmax of the next step overlaps the rank-one
// update of V. A run that stops stores its state at once and continues on a zeroed (finite, never stored) state.
template <class Real, int D, int N, int T>
__global__ void __launch_bounds__(kFusedThreadsPerBlock) fused_gd_uniform_kernel(FixedStepSegmentArgs<Real> args) {
  constexpr int C = N / T;
  constexpr unsigned kFull = 0xffffffffu;
  const GroupPosition<T> at(args.runs);
  if (at.skip_warp) return;  // whole warps only
  const int lane = at.lane;
  RunRecord rec = args.records[at.loaded_run];
  bool active = at.exists && rec.status == RunStatus::running;
  const bool started = active;
  if (!__any_sync(kFull, active)) return;
  const ModelShape shape = compile_time_shape<D, N>(args.shape);
  Real* theta = args.states + at.loaded_run * (D * N + N);
  LaneState<Real, D, N, T> x;
  x.load(theta, args.data + at.loaded_run * args.data_stride, lane);

  const Real h = Real(args.step);
  Real s[C], da[C], r[D], s_max, s_sq;
  group_softmax<T>(x.a, s, s_max, s_sq, kFull);
  for (long long k = args.step_from; k < args.step_to; ++k) {
    if (!__any_sync(kFull, active)) break;
    const FlowEval<Real> eval = group_evaluate<T>(shape, x, Unshifted(), s, s_max, s_sq, r, da, kFull);
    if (active && !apply_checks(eval, double(k) * args.step, args.stop, false, rec)) {
      active = false;
      rec.t = double(k) * args.step;  // as the CPU: a stopped run's time is its stop time
      x.store(theta, lane);
      x.clear();
#pragma unroll
      for (int c = 0; c < C; ++c) da[c] = 0;
#pragma unroll
      for (int i = 0; i < D; ++i) r[i] = 0;
    }
    if (active) ++rec.steps;
    // Next step's softmax first: its shuffles and exponentials overlap the rank-one update of V (old s).
#pragma unroll
    for (int c = 0; c < C; ++c) x.a[c] += h * da[c];
    Real s_next[C];
    group_softmax<T>(x.a, s_next, s_max, s_sq, kFull);
#pragma unroll
    for (int i = 0; i < D; ++i) {
      const Real hr = h * r[i];
#pragma unroll
      for (int c = 0; c < C; ++c) x.v[i][c] += hr * s[c];
    }
#pragma unroll
    for (int c = 0; c < C; ++c) s[c] = s_next[c];
  }
  if (active) {
    rec.t = double(args.step_to) * args.step;
    x.store(theta, lane);
  }
  if (started && lane == 0) args.records[at.run] = rec;
}

template <class Real, int D, int N, int T>
void launch(const FixedStepSegmentArgs<Real>& args) {
  const int variant = args.variant >= 0 ? args.variant : (T == 1 ? 0 : 1);
  if (variant == 2) {
    if (args.shape.loss != LossKind::logistic) throw std::invalid_argument("fused gd variant 2: logistic loss only");
    return launch_fused_gd_logistic<Real, D, N, T>(args);
  }
  if (variant == 1)
    launch_lane_groups<T>(fused_gd_uniform_kernel<Real, D, N, T>, args);
  else
    launch_lane_groups<T>(fused_gd_kernel<Real, D, N, T>, args);
}

// Lanes per run: enough that one lane's V columns stay near 128 registers.
constexpr int lanes_for(int d, int n, int real_bytes) {
  int lanes = 1;
  while (lanes < n && lanes < 32 && d * (n / lanes) * (real_bytes / 4) > 128) lanes *= 2;
  return lanes;
}

}  // namespace

bool fused_gd_available(const ModelShape& shape, int real_bytes, int* lanes) {
  if (shape.model != ModelKind::value_softmax || shape.loss == LossKind::regression) return false;
  const bool instantiated = (shape.d == 8 && shape.n == 8) || (shape.d == 16 && shape.n == 16) ||
                            (shape.d == 32 && shape.n == 32);
  if (instantiated && lanes) *lanes = lanes_for(shape.d, shape.n, real_bytes);
  return instantiated;
}

const std::vector<int>& fused_gd_lane_choices(int d, int n) {
  static const std::vector<int> size8 = {1, 2, 4}, size16 = {2, 4, 8}, size32 = {4, 8, 16}, none;
  if (d == 8 && n == 8) return size8;
  if (d == 16 && n == 16) return size16;
  if (d == 32 && n == 32) return size32;
  return none;
}

template <class Real>
void fused_gd_advance(const FixedStepSegmentArgs<Real>& args, int lanes) {
  const int d = args.shape.d, n = args.shape.n;
  if (lanes <= 0) fused_gd_available(args.shape, int(sizeof(Real)), &lanes);
  if (d == 8 && n == 8)
    return with_lane_count<1, 2, 4>(lanes, "fused gd", [&](auto t) { launch<Real, 8, 8, decltype(t)::value>(args); });
  if (d == 16 && n == 16)
    return with_lane_count<2, 4, 8>(lanes, "fused gd", [&](auto t) { launch<Real, 16, 16, decltype(t)::value>(args); });
  if (d == 32 && n == 32)
    return with_lane_count<4, 8, 16>(lanes, "fused gd",
                                     [&](auto t) { launch<Real, 32, 32, decltype(t)::value>(args); });
  throw std::logic_error("fused_gd_advance: no instance for this size");
}

template void fused_gd_advance<float>(const FixedStepSegmentArgs<float>&, int);
template void fused_gd_advance<double>(const FixedStepSegmentArgs<double>&, int);

}  // namespace softflow
