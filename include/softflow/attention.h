// Purpose: the attention token-selection family's shapes, margin losses and gradient-flow vector field (science.md
// section 2), written once for both backends. f(X_i) = v^T X_i^T s_i with s_i = softmax(X_i W p) (trainable p or
// (v, p)) or s_i = softmax(X_i W z_i) (trainable W, merged key-query, query token z_i); L = (1/N) sum_i
// l(Y_i f(X_i)). Not yet wired into studies: docs/attention-plan.md says how it will be.
//
// A run's state theta:  p: [p (d)]   W: [W (d x d), row-major]   vp: [v (d), p (d)]
// A run's data:         X (N x T x d, input-major, token rows), Y (N), then the fixed parameters:
//                       p: W (d x d), v (d)   W: z (N x d), v (d)   vp: W (d x d)
#pragma once

#include "softflow/hostdevice.h"
#include "softflow/model.h"
#include "softflow/softmax.h"

namespace softflow {

enum class AttentionTrainable : int { p = 0, w = 1, vp = 2 };
enum class MarginLoss : int { logistic = 0, linear = 1, exponential = 2 };

struct AttentionShape {
  AttentionTrainable trainable = AttentionTrainable::p;
  MarginLoss loss = MarginLoss::logistic;
  int inputs = 1;  // N
  int tokens = 2;  // T
  int d = 2;       // token dimension

  SOFTFLOW_HD int state_size() const {
    return trainable == AttentionTrainable::w ? d * d : (trainable == AttentionTrainable::vp ? 2 * d : d);
  }
  SOFTFLOW_HD int fixed_size() const {
    switch (trainable) {
      case AttentionTrainable::p: return d * d + d;
      case AttentionTrainable::w: return inputs * d + d;
      case AttentionTrainable::vp: return d * d;
    }
    return 0;
  }
  SOFTFLOW_HD int data_size() const { return inputs * tokens * d + inputs + fixed_size(); }
  // Scratch needed by attention_flow: the key direction, c_i X_i^T q_i and its sum over inputs (d each), and
  // logits / s, X_i v, q (T each).
  SOFTFLOW_HD int scratch_size() const { return 3 * d + 3 * tokens; }
};

// l(x) for a margin x.
template <class Real>
SOFTFLOW_HD inline Real margin_loss(MarginLoss loss, Real x) {
  switch (loss) {
    case MarginLoss::logistic: return logistic_loss(x);
    case MarginLoss::linear: return -x;
    case MarginLoss::exponential: return exp(-x);
  }
  return Real(0);
}

// l'(x) for a margin x.
template <class Real>
SOFTFLOW_HD inline Real margin_loss_slope(MarginLoss loss, Real x) {
  switch (loss) {
    case MarginLoss::logistic: return -logistic_weight(x);
    case MarginLoss::linear: return Real(-1);
    case MarginLoss::exponential: return -exp(-x);
  }
  return Real(0);
}

// y = M x for a d x d row-major M (transpose: y = M^T x). m: d*d, x, y: d.
template <class Real>
SOFTFLOW_HD inline void square_matrix_apply(const Real* m, const Real* x, int d, bool transpose, Real* y) {
  for (int i = 0; i < d; ++i) {
    Real total = 0;
    for (int j = 0; j < d; ++j) total += (transpose ? m[j * d + i] : m[i * d + j]) * x[j];
    y[i] = total;
  }
}

// Attention vector field: dtheta = -grad L(theta). For input i (X_i: T x d):
//   key direction k = W p (p, vp) or W z_i (W);  logits = X_i k;  s = softmax(logits);  xv = X_i v;  f = <s, xv>;
//   c = l'(Y_i f) Y_i / N;  q = C(s) xv = s .* (xv - f);  a = X_i^T q;
//   grad_p += c W^T a,  grad_W += c a z_i^T,  grad_v += c X_i^T s.
// FlowEval: loss L, s_max = mean over inputs of max_t s_it, ||grad L||^2, winner = argmax_t s_0t.
// theta, dtheta: state_size(); data: data_size(); scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline FlowEval<Real> attention_flow(const AttentionShape& shape, const Real* theta, const Real* data,
                                                 Real* dtheta, Real* scratch) {
  const int n_inputs = shape.inputs, T = shape.tokens, d = shape.d;
  const bool train_w = shape.trainable == AttentionTrainable::w, train_v = shape.trainable == AttentionTrainable::vp;
  const Real* x = data;
  const Real* y = x + n_inputs * T * d;
  const Real* fixed = y + n_inputs;
  const Real* w = train_w ? theta : fixed;                                  // d x d
  const Real* z = train_w ? fixed : nullptr;                                // N x d
  const Real* v = train_w ? fixed + n_inputs * d : (train_v ? theta : fixed + d * d);
  const Real* p = train_v ? theta + d : theta;                              // unused for W
  Real* key = scratch;      // d
  Real* a = key + d;        // d
  Real* a_sum = a + d;      // d
  Real* s = a_sum + d;      // T
  Real* xv = s + T;         // T
  Real* q = xv + T;         // T
  const int p_size = shape.state_size();
  for (int k = 0; k < p_size; ++k) dtheta[k] = 0;
  // Accumulate grad L (the sign is flipped at the end); grad_p goes through sum_i c_i a_i, then W^T once.
  Real* grad_v = train_v ? dtheta : nullptr;
  Real* grad_p = train_v ? dtheta + d : (train_w ? nullptr : dtheta);
  FlowEval<Real> eval{Real(0), Real(0), Real(0), 0};
  for (int j = 0; j < d; ++j) a_sum[j] = 0;
  if (!train_w) square_matrix_apply(w, p, d, false, key);
  for (int i = 0; i < n_inputs; ++i) {
    const Real* xi = x + i * T * d;
    if (train_w) square_matrix_apply(w, z + i * d, d, false, key);
    for (int t = 0; t < T; ++t) {
      s[t] = dot(xi + t * d, key, d);
      xv[t] = dot(xi + t * d, v, d);
    }
    softmax(s, T, s);
    const int winner = argmax(s, T);
    if (i == 0) eval.winner = winner;
    eval.s_max += s[winner] / Real(n_inputs);
    const Real f = dot(s, xv, T);
    const Real margin = y[i] * f;
    eval.loss += margin_loss(shape.loss, margin) / Real(n_inputs);
    const Real c = margin_loss_slope(shape.loss, margin) * y[i] / Real(n_inputs);
    for (int t = 0; t < T; ++t) q[t] = s[t] * (xv[t] - f);
    for (int j = 0; j < d; ++j) {
      Real total = 0, through_s = 0;
      for (int t = 0; t < T; ++t) {
        total += xi[t * d + j] * q[t];
        through_s += xi[t * d + j] * s[t];
      }
      a[j] = c * total;
      if (grad_v) grad_v[j] += c * through_s;
    }
    if (train_w) {
      const Real* zi = z + i * d;
      for (int r = 0; r < d; ++r)
        for (int col = 0; col < d; ++col) dtheta[r * d + col] += a[r] * zi[col];
    } else {
      for (int j = 0; j < d; ++j) a_sum[j] += a[j];
    }
  }
  if (grad_p) square_matrix_apply(w, a_sum, d, true, grad_p);  // grad_p = W^T sum_i c_i X_i^T q_i
  Real grad_sq = 0;
  for (int k = 0; k < p_size; ++k) {
    grad_sq += dtheta[k] * dtheta[k];
    dtheta[k] = -dtheta[k];
  }
  eval.grad_norm_sq = grad_sq;
  return eval;
}

}  // namespace softflow
