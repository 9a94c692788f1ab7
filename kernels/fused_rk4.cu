// Purpose: the fused rk4 kernel (see fused_rk4.cuh).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "fused_rk4.cuh"
#include "lane_flow.cuh"

namespace softflow {
namespace {

// One stage's evaluation at the shift (c, r_p, s_p, da_p) of the run's state: a = a + c da_p, s = softmax(a),
// then r and da (lane_flow.cuh). s, da, s_p, da_p: C per lane; r, r_p: D.
template <int T, class Real, int D, int N>
__device__ inline void shifted_stage(const ModelShape& shape, const LaneState<Real, D, N, T>& x, Real c,
                                     const Real (&r_p)[D], const Real (&s_p)[N / T], const Real (&da_p)[N / T],
                                     Real (&s)[N / T], Real (&r)[D], Real (&da)[N / T], unsigned mask) {
  constexpr int C = N / T;
  Real a[C], s_max, s_sq;
#pragma unroll
  for (int j = 0; j < C; ++j) a[j] = x.a[j] + c * da_p[j];
  group_softmax<T>(a, s, s_max, s_sq, mask);
  group_evaluate<T>(shape, x, VShift<Real, D, C>{c, r_p, s_p}, s, s_max, s_sq, r, da, mask);
}

template <class Real, int D, int N, int T>
__global__ void __launch_bounds__(kFusedThreadsPerBlock) fused_rk4_kernel(FixedStepSegmentArgs<Real> args) {
  constexpr int C = N / T;
  constexpr unsigned kFull = 0xffffffffu;
  const GroupPosition<T> at(args.runs);
  if (at.skip_warp) return;  // whole warps only
  RunRecord rec = args.records[at.loaded_run];
  bool active = at.exists && rec.status == RunStatus::running;
  const bool started = active;
  if (!__any_sync(kFull, active)) return;
  const ModelShape shape = compile_time_shape<D, N>(args.shape);
  Real* theta = args.states + at.loaded_run * (D * N + N);
  LaneState<Real, D, N, T> x;
  x.load(theta, args.data + at.loaded_run * args.data_stride, at.lane);

  const Real h = Real(args.step), half = h / Real(2), sixth = h / Real(6), third = h / Real(3);
  Real s1[C], s2[C], s3[C], s4[C], da1[C], da2[C], da3[C], da4[C], r1[D], r2[D], r3[D], r4[D];
  for (long long k = args.step_from; k < args.step_to; ++k) {
    if (!__any_sync(kFull, active)) break;
    Real s_max, s_sq;
    group_softmax<T>(x.a, s1, s_max, s_sq, kFull);
    const FlowEval<Real> eval = group_evaluate<T>(shape, x, Unshifted(), s1, s_max, s_sq, r1, da1, kFull);
    if (active && !apply_checks(eval, double(k) * args.step, args.stop, false, rec)) {
      active = false;
      rec.t = double(k) * args.step;  // as the CPU: a stopped run's time is its stop time
      x.store(theta, at.lane);
      x.clear();
#pragma unroll
      for (int j = 0; j < C; ++j) da1[j] = 0;
#pragma unroll
      for (int i = 0; i < D; ++i) r1[i] = 0;
    }
    if (active) ++rec.steps;
    shifted_stage<T>(shape, x, half, r1, s1, da1, s2, r2, da2, kFull);
    shifted_stage<T>(shape, x, half, r2, s2, da2, s3, r3, da3, kFull);
    shifted_stage<T>(shape, x, h, r3, s3, da3, s4, r4, da4, kFull);
    // theta += h/6 (k1 + 2 (k2 + k3) + k4), with k_m's V part r_m s_m^T.
#pragma unroll
    for (int i = 0; i < D; ++i) {
      const Real w1 = sixth * r1[i], w2 = third * r2[i], w3 = third * r3[i], w4 = sixth * r4[i];
#pragma unroll
      for (int j = 0; j < C; ++j) x.v[i][j] += w1 * s1[j] + w2 * s2[j] + w3 * s3[j] + w4 * s4[j];
    }
#pragma unroll
    for (int j = 0; j < C; ++j) x.a[j] += sixth * (da1[j] + Real(2) * (da2[j] + da3[j]) + da4[j]);
  }
  if (active) {
    rec.t = double(args.step_to) * args.step;
    x.store(theta, at.lane);
  }
  if (started && at.lane == 0) args.records[at.run] = rec;
}

template <class Real, int D, int N, int T>
void launch_rk4(const FixedStepSegmentArgs<Real>& args) {
  launch_lane_groups<T>(fused_rk4_kernel<Real, D, N, T>, args);
}

}  // namespace

bool fused_rk4_available(const ModelShape& shape, int real_bytes, int* lanes) {
  if (shape.model != ModelKind::value_softmax || shape.loss == LossKind::regression) return false;
  if (fused_rk4_lane_choices(shape.d, shape.n).empty()) return false;
  // Default, by ptxas alone (sm_90, nvcc 13.0; untimed): the fewest lanes whose instance compiles without spills,
  // except at float32 8 x 8, where 1 lane has none either but takes 254 registers (8 resident warps an SM) against 2
  // lanes' 168 (12). Registers and bytes of spill stores per choice:
  //   float32  8 x 8:  1 lane 254, 0;  2 lanes 168, 0;  4 lanes 128, 0     -> 2
  //           16 x 16: 4 lanes 254, 0;  8 lanes 254, 0                    -> 4
  //   float64  8 x 8:  1 lane 255, 2108;  2 lanes 255, 96;  4 lanes 242, 0 -> 4
  //           16 x 16: 4 lanes 255, 2636;  8 lanes 255, 776 (the least)   -> 8
  if (lanes) *lanes = (shape.d == 8 ? 2 : 4) * (real_bytes == 8 ? 2 : 1);
  return true;
}

const std::vector<int>& fused_rk4_lane_choices(int d, int n) {
  static const std::vector<int> size8 = {1, 2, 4}, size16 = {4, 8}, none;
  if (d == 8 && n == 8) return size8;
  if (d == 16 && n == 16) return size16;
  return none;
}

template <class Real>
void fused_rk4_advance(const FixedStepSegmentArgs<Real>& args, int lanes) {
  const int d = args.shape.d, n = args.shape.n;
  if (lanes <= 0) fused_rk4_available(args.shape, int(sizeof(Real)), &lanes);
  if (d == 8 && n == 8)
    return with_lane_count<1, 2, 4>(lanes, "fused rk4",
                                    [&](auto t) { launch_rk4<Real, 8, 8, decltype(t)::value>(args); });
  if (d == 16 && n == 16)
    return with_lane_count<4, 8>(lanes, "fused rk4",
                                 [&](auto t) { launch_rk4<Real, 16, 16, decltype(t)::value>(args); });
  throw std::logic_error("fused_rk4_advance: no instance for this size");
}

template void fused_rk4_advance<float>(const FixedStepSegmentArgs<float>&, int);
template void fused_rk4_advance<double>(const FixedStepSegmentArgs<double>&, int);

}  // namespace softflow
