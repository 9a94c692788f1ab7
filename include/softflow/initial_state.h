// Purpose: a run's initial state and per-run targets, drawn from the counter-based streams (random.h), written once
// for both backends. Draws are made in double and rounded once to the run's precision, so float32 and float64 runs
// of one seed start from the same point. Layouts as in model.h.
#pragma once

#include <cstdint>

#include "softflow/hostdevice.h"
#include "softflow/flow.h"
#include "softflow/random.h"
#include "softflow/run_record.h"

namespace softflow {

struct InitParams {
  double sigma_v = 0.1;        // V ~ sigma_v N(0,1); tied: U ~ [I] + sigma_v N(0,1); attention: every trained entry
  double mu_a = 0;             // a ~ mu_a + sigma_a N(0,1)
  double sigma_a = 0;
  bool identity_init = true;   // tied only: add I to U(0)
  double ce_temperature = 10;  // cross_entropy: p* = softmax(temperature * U[0,1]^d)
};

// Entry `index` of the initial matrix (V, or U for the tied model), row-major with n columns, from the index-th
// normal z of the run's value_matrix stream. mul_rn / add_rn: no fused multiply-add on the device, so both backends
// round alike.
SOFTFLOW_HD inline double initial_matrix_entry(const ModelShape& shape, const InitParams& init, int index, double z) {
  double x = init.sigma_v == 0 ? 0.0 : mul_rn(init.sigma_v, z);
  if (shape.model == ModelKind::tied && init.identity_init && index / shape.n == index % shape.n) x = add_rn(x, 1.0);
  return x;
}

// Initial logit a_j from the j-th normal z of the run's logits stream.
SOFTFLOW_HD inline double initial_logit(const InitParams& init, double z) {
  return add_rn(init.mu_a, init.sigma_a == 0 ? 0.0 : mul_rn(init.sigma_a, z));
}

// theta (state_size()) for run `run` of cell `cell`. Attention: every entry (p, W, or v then p) is
// sigma_v N(0, 1) from the value_matrix stream.
template <class Real>
SOFTFLOW_HD inline void draw_initial_state(const ModelShape& shape, const InitParams& init, std::uint64_t seed,
                                           std::uint32_t cell, std::uint32_t run, Real* theta) {
  const RandomStream matrix{seed, cell, run, RandomVariable::value_matrix};
  const RandomStream logits{seed, cell, run, RandomVariable::logits};
  const bool attention = shape.model == ModelKind::attention;  // no logits a: the whole state is matrix-drawn
  matrix.for_each_normal(attention ? shape.state_size() : shape.matrix_size(),
                         [&](int index, double z) { theta[index] = Real(initial_matrix_entry(shape, init, index, z)); });
  if (attention) return;
  Real* a = theta + shape.matrix_size();
  logits.for_each_normal(shape.n, [&](int j, double z) { a[j] = Real(initial_logit(init, z)); });
}

// A target vector (data_size() = d entries) for the logistic, square, cross-entropy and tied losses, from the
// target stream of `run` (kSharedRunId for a cell-wide target): a random unit vector (logistic, square, tied) or
// p* = softmax(temperature * U[0,1]^d) (cross_entropy).
template <class Real>
SOFTFLOW_HD inline void draw_target_vector(const ModelShape& shape, const InitParams& init, std::uint64_t seed,
                                           std::uint32_t cell, std::uint32_t run, Real* target) {
  const RandomStream stream{seed, cell, run, RandomVariable::target};
  const int d = shape.d;
  double norm_or_total = 0;
  if (shape.loss == LossKind::cross_entropy) {
    for (int i = 0; i < d; ++i) norm_or_total += exp(init.ce_temperature * (stream.uniform_at(i) - 1.0));
    for (int i = 0; i < d; ++i)
      target[i] = Real(exp(init.ce_temperature * (stream.uniform_at(i) - 1.0)) / norm_or_total);
    return;
  }
  stream.for_each_normal(d, [&](int, double z) { norm_or_total = add_rn(norm_or_total, mul_rn(z, z)); });
  const double inv_norm = div_rn(1.0, sqrt_rn(norm_or_total));
  stream.for_each_normal(d, [&](int i, double z) { target[i] = Real(mul_rn(z, inv_norm)); });
}

// argmax_i u_i with u = V^T r (tied: U^T r), r = -grad l(beta): the "fitness" whose maximum the logistic flow
// from a(0) = 0 selects. theta: state_size(); data: data_size(); scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline int fitness_argmax(const ModelShape& shape, const Real* theta, const Real* data, Real* scratch) {
  const int d = shape.model == ModelKind::tied ? shape.n : shape.d;
  const int n = shape.n;
  Real* s = scratch;       // n
  Real* u = s + n;         // n
  Real* beta = u + n;      // d
  Real* r = beta + d;      // d
  Real* work = r + d;      // d + m
  state_softmax(shape, theta, s);
  for (int i = 0; i < d; ++i) beta[i] = dot(theta + i * n, s, n);
  loss_and_residual(shape, beta, data, r, work);  // tied uses the logistic loss, which this covers
  for (int j = 0; j < n; ++j) u[j] = 0;
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < n; ++j) u[j] += theta[i * n + j] * r[i];
  return argmax(u, n);
}

// A run's record at t = 0: sum and unique argmax of a(0), argmax of the fitness u(0) (the facts its checkpoints
// are compared with). theta: state_size(); data: data_size(); scratch: scratch_size().
// Attention: sum_a0 = 0, argmax_a0 = -1 (no logits in the state), argmax_u0 = the optimal token of input 0 (so
// winner_is_argmax_u0 reads "input 0 selects its optimal token").
template <class Real>
SOFTFLOW_HD inline RunRecord initial_record(const ModelShape& shape, const Real* theta, const Real* data,
                                            Real* scratch) {
  RunRecord rec;
  if (shape.model == ModelKind::attention) {
    rec.argmax_a0 = -1;
    rec.argmax_u0 = AttentionView<Real>(shape, theta, data).optimal_token(shape, 0);
    return rec;
  }
  const Real* a = theta + shape.matrix_size();
  double sum_a = 0;
  for (int j = 0; j < shape.n; ++j) sum_a = add_rn(sum_a, double(a[j]));  // rounded alike on host and device
  rec.sum_a0 = sum_a;
  rec.argmax_a0 = unique_argmax(a, shape.n);
  rec.argmax_u0 = fitness_argmax(shape, theta, data, scratch);
  return rec;
}

}  // namespace softflow
