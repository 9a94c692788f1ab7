// Purpose: the fused dopri5 kernel (see fused_dopri5.cuh).
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "fused_dopri5.cuh"
#include "lane_flow.cuh"

namespace softflow {
namespace {

constexpr int kDopri5Stages = 7;

// One run's stages in a lane: stage m's softmax s_m and da_m on the lane's C columns (registers), and its loss
// residual r_m (D, the same for the whole group) in shared memory, one copy per group (`r` refers to it): in
// registers every lane would hold all 7 d of them, which spilled (float64 16 x 16 at 16 lanes: 7258 bytes).
template <class Real, int D, int C>
struct LaneStages {
  Real s[kDopri5Stages][C], da[kDopri5Stages][C];
  Real (&r)[kDopri5Stages][D];
};

// Stores a stage's residual (every lane holds all of it) into the group's shared copy, lane l rows l, l + T, ...;
// the barriers before and after keep the warp's earlier reads of that copy before the stores and its later reads
// after them. Every lane of the warp calls it.
template <int T, int D, class Real>
__device__ inline void share_residual(Real (&shared)[D], const Real (&r)[D], int lane, bool store = true) {
  __syncwarp();
#pragma unroll
  for (int i = 0; i < D; ++i)
    if (store && i % T == lane) shared[i] = r[i];
  __syncwarp();
}

// Calls f(std::integral_constant<int, First + S>) for each S in order: compile-time stage numbers, so the stage
// arrays are indexed by constants and stay in registers.
template <int First, class F, int... S>
__device__ inline void for_each_stage(F&& f, std::integer_sequence<int, S...>) {
  (f(std::integral_constant<int, First + S>{}), ...);
}

// The state's V + h sum_{m < Count} weights[m] r_m s_m^T (a shift for group_evaluate).
template <int Count, class Real, int D, int C>
__device__ inline StageSum<Real, D, C, Count, kDopri5Stages> stage_sum(const LaneStages<Real, D, C>& stages,
                                                                       const double* weights, Real h) {
  StageSum<Real, D, C, Count, kDopri5Stages> out{h, {}, stages.r, stages.s};
#pragma unroll
  for (int m = 0; m < Count; ++m) out.w[m] = Real(weights[m]);
  return out;
}

// out = a + h sum_{m < Count} weights[m] da_m on the lane's columns, as axpy_stages forms it. a, out: C.
template <int Count, class Real, int D, int C>
__device__ inline void stage_logits(const Real (&a)[C], const LaneStages<Real, D, C>& stages, const double* weights,
                                    Real h, Real (&out)[C]) {
#pragma unroll
  for (int j = 0; j < C; ++j) {
    Real increment = 0;
#pragma unroll
    for (int m = 0; m < Count; ++m) increment += Real(weights[m]) * stages.da[m][j];
    out[j] = a[j] + h * increment;
  }
}

// The whole run's vector from its group's lanes (lane l holds entries [l C, l C + C)): every lane of the warp
// takes part. Indexed by lane ^ offset, `full` lives in local memory; written by source lane instead (xor mask
// lane ^ from) it stays in registers, but ptxas (sm_90, nvcc 13.0) then spilled more in the hot loop at float64
// 16 x 16 (2390 -> 3058 bytes of stores at 16 lanes), and this path runs only in warps where a run crosses a
// threshold. x: C; full: T C.
template <int T, int C, class Real>
__device__ inline void group_gather(const Real (&x)[C], Real (&full)[T * C], int lane) {
#pragma unroll
  for (int offset = 0; offset < T; ++offset)
#pragma unroll
    for (int c = 0; c < C; ++c) full[(lane ^ offset) * C + c] = __shfl_xor_sync(0xffffffffu, x[c], offset, T);
}

// scaled_rms over the run's whole state in the lane layout: sqrt(sum scaled_square(x, y, z) / p) with y the state's
// entry, x and z given entry by entry, for V by v_x(i, j) and v_z(i, j), for a by a_x(j) and a_z(j) (the lane's
// columns); summed over the group. Every lane of the warp calls it.
template <int T, class Real, int D, int N, class VX, class VZ, class AX, class AZ>
__device__ inline double group_scaled_rms(const LaneState<Real, D, N, T>& x, const AdaptiveRule& rule, const VX& v_x,
                                          const VZ& v_z, const AX& a_x, const AZ& a_z) {
  double total = 0;
#pragma unroll
  for (int i = 0; i < D; ++i)
#pragma unroll
    for (int j = 0; j < N / T; ++j) total += scaled_square(v_x(i, j), x.v[i][j], v_z(i, j), rule);
#pragma unroll
  for (int j = 0; j < N / T; ++j) total += scaled_square(a_x(j), x.a[j], a_z(j), rule);
  return sqrt(group_sum<T>(total, 0xffffffffu) / double(D * N + N));
}

// advance_adaptive in the lane layout, the warp stepping until every run in it is done. Each lane keeps its own
// copy of the run's record (the group's sums reach every lane with the same bits, so every copy takes the same
// decisions); lane 0 stores it.
template <class Real, int D, int N, int T>
__global__ void __launch_bounds__(kFusedThreadsPerBlock) fused_dopri5_kernel(AdaptiveSegmentArgs<Real> args) {
  constexpr int C = N / T;
  constexpr unsigned kFull = 0xffffffffu;
  const GroupPosition<T> at(args.runs);
  if (at.skip_warp) return;  // whole warps only
  RunRecord rec = args.records[at.loaded_run];
  bool active = at.exists && rec.status == RunStatus::running;
  const bool started = active;
  if (!__any_sync(kFull, active)) return;
  const ModelShape shape = compile_time_shape<D, N>(args.shape);
  const AdaptiveRule& rule = args.rule;
  Real* theta = args.states + at.loaded_run * (D * N + N);
  LaneState<Real, D, N, T> x;
  x.load(theta, args.data + at.loaded_run * args.data_stride, at.lane);
  __shared__ Real group_residuals[kFusedThreadsPerBlock / T][kDopri5Stages][D];
  LaneStages<Real, D, C> stages{{}, {}, group_residuals[threadIdx.x / T]};
  const Dopri5Tableau tableau;
  Real a_trial[C];  // the 5th-order solution's logits (stage 7's a)

  // Stage S's evaluation at a + h sum_m w_m da_m and V + h sum_m w_m r_m s_m^T over the stages before it.
  auto take_stage = [&](auto stage, const double* weights, Real h) {
    constexpr int S = decltype(stage)::value;
    Real a[C], s_max, s_sq;
    stage_logits<S>(x.a, stages, weights, h, a);
    group_softmax<T>(a, stages.s[S], s_max, s_sq, kFull);
    if constexpr (S == kDopri5Stages - 1) {
#pragma unroll
      for (int j = 0; j < C; ++j) a_trial[j] = a[j];
    }
    Real r[D];
    const FlowEval<Real> eval =
        group_evaluate<T>(shape, x, stage_sum<S>(stages, weights, h), stages.s[S], s_max, s_sq, r, stages.da[S], kFull);
    share_residual<T>(stages.r[S], r, at.lane);
    return eval;
  };

  // k1 = f(theta), checked at rec.t.
  {
    Real s_max, s_sq, r[D];
    group_softmax<T>(x.a, stages.s[0], s_max, s_sq, kFull);
    const FlowEval<Real> eval =
        group_evaluate<T>(shape, x, Unshifted(), stages.s[0], s_max, s_sq, r, stages.da[0], kFull);
    share_residual<T>(stages.r[0], r, at.lane);
    if (active && !apply_checks(eval, rec.t, args.stop, true, rec)) active = false;
  }

  // The starting step on a run's first segment (dopri5_initial_step: d0, d1 from theta and k1; d2 from k2 at the
  // probe step h0).
  const bool choose_step = active && rec.h <= 0;
  if (__any_sync(kFull, choose_step && rule.initial_step <= 0)) {
    auto v = [&](int i, int j) { return x.v[i][j]; };
    auto a = [&](int j) { return x.a[j]; };
    auto dv = [&](int m, int i, int j) { return stages.r[m][i] * stages.s[m][j]; };  // stage m's dV entry
    const double d0 = group_scaled_rms<T>(x, rule, v, v, a, a);
    const double d1 = group_scaled_rms<T>(
        x, rule, [&](int i, int j) { return dv(0, i, j); }, v, [&](int j) { return stages.da[0][j]; }, a);
    const double h0 = dopri5_probe_step(d0, d1);
    const double unit[1] = {1.0};
    take_stage(std::integral_constant<int, 1>{}, unit, Real(h0));
    const double d2 = group_scaled_rms<T>(
                          x, rule, [&](int i, int j) { return dv(1, i, j) - dv(0, i, j); }, v,
                          [&](int j) { return stages.da[1][j] - stages.da[0][j]; }, a) /
                      h0;
    if (choose_step && rule.initial_step <= 0) rec.h = dopri5_starting_step(h0, d1, d2);
  }
  if (choose_step && rule.initial_step > 0) rec.h = rule.initial_step;

  while (true) {
    Dopri5Plan plan{StepAction::at_end, 0.0, true};
    if (active) {
      if (rec.t < args.t_end) plan = dopri5_plan_step(rule, args.t_end, rec);
      if (plan.action != StepAction::take) active = false;
    }
    if (!__any_sync(kFull, active)) break;
    const Real h = active ? Real(plan.h) : Real(0);  // a run that is done steps by 0 on its unchanged state
    // Stages 2-7; stage 7 is the 5th-order trial, whose evaluation is the next k1 (first same as last).
    FlowEval<Real> trial_eval{};
    for_each_stage<1>([&](auto stage) { trial_eval = take_stage(stage, tableau.a[decltype(stage)::value], h); },
                      std::make_integer_sequence<int, kDopri5Stages - 1>{});
    // The error h sum_m e_m k_m, scaled by the state and the trial (scaled_rms).
    const auto trial_v = stage_sum<kDopri5Stages - 1>(stages, tableau.a[kDopri5Stages - 1], h);
    const auto error_v = stage_sum<kDopri5Stages>(stages, tableau.e, h);
    const double err = group_scaled_rms<T>(
        x, rule, [&](int i, int j) { return shifted_entry(error_v, Real(0), Real(0), i, j); },
        [&](int i, int j) { return shifted_entry(trial_v, x.v[i][j], Real(0), i, j); },
        [&](int j) {
          Real increment = 0;
#pragma unroll
          for (int m = 0; m < kDopri5Stages; ++m) increment += Real(tableau.e[m]) * stages.da[m][j];
          return Real(0) + h * increment;
        },
        [&](int j) { return a_trial[j]; });
    const Dopri5Verdict verdict = dopri5_verdict(err);
    const bool accepted = active && verdict.accepted;

    // First passages inside the step, on the dense output of the whole logit vector (locate_passages_in_step),
    // gathered only where some run of the warp crosses a threshold the function would place.
    const double s_max_end = double(trial_eval.s_max);
    bool crossing = false;
    for (int k = 0; k < kPassageCount; ++k)
      crossing = crossing || (rec.first_time[k] < 0 && rec.last_s_max < passage_threshold(k) &&
                              s_max_end >= passage_threshold(k));
    const bool locate = accepted && crossing && rec.last_s_max >= 0 && rec.last_check_t == rec.t;
    if (__any_sync(kFull, locate)) {
      Real a0[N], f0[N], a1[N], f1[N], work[2 * N];
      group_gather<T>(x.a, a0, at.lane);
      group_gather<T>(stages.da[0], f0, at.lane);
      group_gather<T>(a_trial, a1, at.lane);
      group_gather<T>(stages.da[kDopri5Stages - 1], f1, at.lane);
      if (locate) locate_passages_in_step(shape, a0, f0, a1, f1, rec.t, plan.h, s_max_end, rec, work);
    }

    if (active) dopri5_book_step(plan, verdict, args.t_end, rec);
    if (accepted) {  // theta = trial; k1 = k7
#pragma unroll
      for (int i = 0; i < D; ++i)
#pragma unroll
        for (int j = 0; j < C; ++j) x.v[i][j] = shifted_entry(trial_v, x.v[i][j], Real(0), i, j);
#pragma unroll
      for (int j = 0; j < C; ++j) {
        x.a[j] = a_trial[j];
        stages.s[0][j] = stages.s[kDopri5Stages - 1][j];
        stages.da[0][j] = stages.da[kDopri5Stages - 1][j];
      }
      if (!apply_checks(trial_eval, rec.t, args.stop, true, rec)) active = false;
    }
    share_residual<T>(stages.r[0], stages.r[kDopri5Stages - 1], at.lane, accepted);  // the whole warp: barriers
  }
  if (started) {
    x.store(theta, at.lane);
    if (at.lane == 0) args.records[at.run] = rec;
  }
}

template <class Real, int D, int N, int T>
void launch_dopri5(const AdaptiveSegmentArgs<Real>& args) {
  launch_lane_groups<T>(fused_dopri5_kernel<Real, D, N, T>, args);
}

}  // namespace

bool fused_dopri5_available(const ModelShape& shape, int real_bytes, int* lanes) {
  if (shape.model != ModelKind::value_softmax || shape.loss == LossKind::regression) return false;
  if (fused_dopri5_lane_choices(shape.d, shape.n).empty()) return false;
  // Default, by ptxas alone (sm_90, CUDA 13; no GPU has timed them yet): the fewest lanes (fewer shuffles a step)
  // that leave no spills worth the name, and at float32 8 x 8 the 4 lanes' 168 registers (12 resident warps an SM)
  // over the 2 lanes' 224 (9), for an 8-byte spill. Registers and bytes of spill stores per choice:
  //   float32  8 x 8:  2 lanes 224, 0;  4 lanes 168, 8;  8 lanes 155, 0         -> 4
  //           16 x 16: 8 lanes 254, 0;  16 lanes 235, 0                         -> 8
  //   float64  8 x 8:  2 lanes 255, 1554;  4 lanes 255, 282;  8 lanes 254, 8    -> 8
  //           16 x 16: 8 lanes 255, 3098;  16 lanes 255, 2390                   -> 16
  if (lanes) *lanes = real_bytes == 4 ? (shape.d == 8 ? 4 : 8) : (shape.d == 8 ? 8 : 16);
  return true;
}

const std::vector<int>& fused_dopri5_lane_choices(int d, int n) {
  static const std::vector<int> size8 = {2, 4, 8}, size16 = {8, 16}, none;
  if (d == 8 && n == 8) return size8;
  if (d == 16 && n == 16) return size16;
  return none;
}

template <class Real>
void fused_dopri5_advance(const AdaptiveSegmentArgs<Real>& args, int lanes) {
  const int d = args.shape.d, n = args.shape.n;
  if (lanes <= 0) fused_dopri5_available(args.shape, int(sizeof(Real)), &lanes);
  if (d == 8 && n == 8)
    return with_lane_count<2, 4, 8>(lanes, "fused dopri5",
                                 [&](auto t) { launch_dopri5<Real, 8, 8, decltype(t)::value>(args); });
  if (d == 16 && n == 16)
    return with_lane_count<8, 16>(lanes, "fused dopri5",
                                  [&](auto t) { launch_dopri5<Real, 16, 16, decltype(t)::value>(args); });
  throw std::logic_error("fused_dopri5_advance: no instance for this size");
}

template void fused_dopri5_advance<float>(const AdaptiveSegmentArgs<float>&, int);
template void fused_dopri5_advance<double>(const AdaptiveSegmentArgs<double>&, int);

}  // namespace softflow
