// Purpose: the value-softmax flow in the fused kernels' lane layout (lane_group.cuh), shared by fused gd (variants 0
// and 1; variant 2 uses the softmax weights alone), fused rk4 and fused dopri5: the group softmax, and the
// evaluation of the vector field at a run's state, at an rk4 stage's rank-one shift of it or at a dopri5 stage's
// sum of earlier stages, with the loss residual from the shared loss_and_residual (model.h).
#pragma once

#include <type_traits>

#include "lane_group.cuh"
#include "softflow/model.h"

namespace softflow {

// The kernels' sizes in the shape, so the shared loss code unrolls and its arrays stay in registers.
template <int D, int N>
__device__ inline ModelShape compile_time_shape(ModelShape shape) {
  shape.d = D;
  shape.n = N;
  shape.m = 0;
  return shape;
}

// e_j = exp(a_j - max_j a_j) over the group; returns c = 1 / sum_j e_j, which is also max_j s_j (the largest e_j
// is exp(0) = 1). a, e: C per lane.
template <int T, int C, class Real>
__device__ inline Real group_softmax_weights(const Real (&a)[C], Real (&e)[C], unsigned mask) {
  Real a_max = a[0];
#pragma unroll
  for (int c = 1; c < C; ++c) a_max = fast_max(a_max, a[c]);
  a_max = group_max<T>(a_max, mask);
  Real total = 0;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    e[c] = exp(a[c] - a_max);
    total += e[c];
  }
  return Real(1) / group_sum<T>(total, mask);
}

// s = softmax(a) over the group, with max_j s_j and sum_j s_j^2 over the group. a, s: C per lane.
template <int T, int C, class Real>
__device__ inline void group_softmax(const Real (&a)[C], Real (&s)[C], Real& s_max, Real& s_sq, unsigned mask) {
  const Real inv = group_softmax_weights<T>(a, s, mask);
  s_max = 0;
  s_sq = 0;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    s[c] *= inv;
    s_max = fast_max(s_max, s[c]);
    s_sq += s[c] * s[c];
  }
  s_max = group_max<T>(s_max, mask);
  s_sq = group_sum<T>(s_sq, mask);
}

// The rank-one shift of V at an rk4 stage: the stage's state is V + c r s^T (r: D, s: C per lane), never formed;
// each pass over V adds the shift entry by entry. Unshifted: the state itself (not block_run.cuh's NoShift, a
// different type, so the two headers never define one name twice).
template <class Real, int D, int C>
struct VShift {
  Real c;
  const Real (&r)[D];
  const Real (&s)[C];
};
struct Unshifted {};

// A dopri5 stage's V: V + h sum_{m < Count} w_m r_m s_m^T over the first Count of the stages kept (r_m: D, s_m: C
// per lane), formed entry by entry in advance_adaptive's order (axpy_stages: the weighted sum of the stage
// derivatives r_m[i] s_m[j], then times h, then added).
template <class Real, int D, int C, int Count, int Stages>
struct StageSum {
  static constexpr int kCount = Count;
  Real h;
  Real w[Count];
  const Real (&r)[Stages][D];
  const Real (&s)[Stages][C];
};
template <class T>
struct IsStageSum : std::false_type {};
template <class Real, int D, int C, int Count, int Stages>
struct IsStageSum<StageSum<Real, D, C, Count, Stages>> : std::true_type {};

// Row i's factor of a rank-one shift (c r_i), and entry (i, j) of the shifted V given it (a StageSum needs no row
// factor).
template <class Shift, class Real>
__device__ inline Real shift_row(const Shift& shift, int i) {
  if constexpr (std::is_same_v<Shift, Unshifted> || IsStageSum<Shift>::value) return Real(0);
  else return shift.c * shift.r[i];
}
template <class Shift, class Real>
__device__ inline Real shifted_entry(const Shift& shift, Real v, Real row_factor, int i, int j) {
  if constexpr (std::is_same_v<Shift, Unshifted>) {
    return v;
  } else if constexpr (IsStageSum<Shift>::value) {
    Real increment = 0;
#pragma unroll
    for (int m = 0; m < Shift::kCount; ++m) increment += shift.w[m] * (shift.r[m][i] * shift.s[m][j]);
    return v + shift.h * increment;
  } else {
    return v + row_factor * shift.s[j];
  }
}

// The flow at the run's state (V shifted by `shift`) given s = softmax(a): beta = V s (all-reduce over the group),
// the loss residual r (shared loss_and_residual, replicated in every lane), da = s .* (u - <s, u>) with u = V^T r
// (local columns), and ||grad||^2 = ||r||^2 ||s||^2 + ||da||^2 (dV = r s^T is rank one). r: D, da: C per lane.
template <int T, class Real, int D, int N, class Shift>
__device__ inline FlowEval<Real> group_evaluate(const ModelShape& shape, const LaneState<Real, D, N, T>& x,
                                                const Shift& shift, const Real (&s)[N / T], Real s_max, Real s_sq,
                                                Real (&r)[D], Real (&da)[N / T], unsigned mask) {
  constexpr int C = N / T;
  Real beta[D], work[1];
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const Real row_factor = shift_row<Shift, Real>(shift, i);
    Real partial = 0;
#pragma unroll
    for (int c = 0; c < C; ++c) partial += shifted_entry(shift, x.v[i][c], row_factor, i, c) * s[c];
    beta[i] = group_sum<T>(partial, mask);
  }
  FlowEval<Real> eval;
  eval.loss = loss_and_residual(shape, beta, x.target, r, work);
  Real su = 0, r_sq = 0;
#pragma unroll
  for (int i = 0; i < D; ++i) r_sq += r[i] * r[i];
#pragma unroll
  for (int c = 0; c < C; ++c) da[c] = 0;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const Real row_factor = shift_row<Shift, Real>(shift, i);
#pragma unroll
    for (int c = 0; c < C; ++c) da[c] += shifted_entry(shift, x.v[i][c], row_factor, i, c) * r[i];  // u_c
  }
#pragma unroll
  for (int c = 0; c < C; ++c) su += s[c] * da[c];
  su = group_sum<T>(su, mask);
  Real da_sq = 0;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    da[c] = s[c] * (da[c] - su);
    da_sq += da[c] * da[c];
  }
  eval.grad_norm_sq = r_sq * s_sq + group_sum<T>(da_sq, mask);
  eval.s_max = s_max;
  eval.winner = 0;  // not used by the checks
  return eval;
}

}  // namespace softflow
