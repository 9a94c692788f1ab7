// Purpose: the value-softmax family's shapes, losses and gradient-flow vector field (science.md section 1), written
// once for both backends. A run's state theta is one flat array:
//   value_softmax: theta = [V (d x n, row-major: V[i * n + j]), a (n)]          size d*n + n
//   tied:          theta = [U (D x D, row-major), a (D)], D = n = d              size n*n + n
// A run's loss data is one flat array (shared by all runs of a cell, or one per run):
//   logistic: beta* (d)   square: y (d)   cross_entropy: p* (d)   regression: X (m x d, row-major) then y (m)
//   tied: beta* (D)
// The attention family (science.md section 2) shares ModelShape (n = tokens T, inputs = N, d = token dimension);
// its layouts and vector field are in attention.h, and flow.h dispatches between the families.
#pragma once

#include "softflow/hostdevice.h"
#include "softflow/softmax.h"

namespace softflow {

enum class ModelKind : int { value_softmax = 0, tied = 1, attention = 2 };
// logistic, square, cross_entropy, regression: value-softmax losses (tied: logistic). logistic, linear,
// exponential: the attention family's margin losses l(x) of x = Y f(X).
enum class LossKind : int { logistic = 0, square = 1, cross_entropy = 2, regression = 3, linear = 4, exponential = 5 };
// Attention: which parameters train. p (W, v fixed); w (merged key-query W, v fixed); vp (v and p jointly).
enum class AttentionTrainable : int { p = 0, w = 1, vp = 2 };

struct ModelShape {
  ModelKind model = ModelKind::value_softmax;
  LossKind loss = LossKind::logistic;
  int d = 8;   // output dimension (tied: D; attention: token dimension)
  int n = 8;   // number of softmax entries (tied: D; attention: tokens per input T)
  int m = 0;   // regression samples (rows of X); 0 for other losses
  int inputs = 0;  // attention: inputs N; 0 for the value-softmax family
  AttentionTrainable trainable = AttentionTrainable::p;  // attention only

  // Entries of the matrix block that precedes the logits a (value_softmax: V, tied: U); attention: 0.
  SOFTFLOW_HD int matrix_size() const {
    return model == ModelKind::tied ? n * n : (model == ModelKind::attention ? 0 : d * n);
  }
  SOFTFLOW_HD int state_size() const {
    if (model != ModelKind::attention) return matrix_size() + n;
    return trainable == AttentionTrainable::w ? d * d : (trainable == AttentionTrainable::vp ? 2 * d : d);
  }
  // Attention: the fixed parameters after X and Y (p: W, v; w: z (N x d), v; vp: W).
  SOFTFLOW_HD int attention_fixed_size() const {
    return trainable == AttentionTrainable::w ? inputs * d + d
                                              : (trainable == AttentionTrainable::vp ? d * d : d * d + d);
  }
  SOFTFLOW_HD int data_size() const {
    if (model == ModelKind::attention) return inputs * n * d + inputs + attention_fixed_size();
    return loss == LossKind::regression ? m * d + m : d;
  }
  // Scratch needed by evaluate_flow and observe_run: softmax, fitness and loss-side vectors (attention: key
  // direction and two d-vectors; softmax, X v and q over the tokens).
  SOFTFLOW_HD int scratch_size() const {
    return model == ModelKind::attention ? 3 * d + 3 * n : 3 * n + 3 * d + m;
  }
};

// What one evaluation of the vector field learns about the state it was evaluated at.
template <class Real>
struct FlowEval {
  Real loss;          // l(beta)
  Real s_max;         // max_i s_i (tied: max alpha)
  Real grad_norm_sq;  // ||grad L||^2 over the whole state
  int winner;         // argmax s
};

// Logistic loss of margin x = <beta*, beta>: log(1 + exp(-x)), stable for all x.
template <class Real>
SOFTFLOW_HD inline Real logistic_loss(Real x) {
  return x > Real(0) ? log1p(exp(-x)) : -x + log1p(exp(x));
}
// g = 1 / (1 + exp(x)) = -d/dx logistic_loss(x), stable for all x.
template <class Real>
SOFTFLOW_HD inline Real logistic_weight(Real x) {
  if (x > Real(0)) {
    const Real e = exp(-x);
    return e / (Real(1) + e);
  }
  return Real(1) / (Real(1) + exp(x));
}

// Loss l(beta) and r = -grad_beta l for every value-softmax loss.
// beta: d; data: shape.data_size(); r: d (out); work: d + m scratch. Returns l(beta).
template <class Real>
SOFTFLOW_HD inline Real loss_and_residual(const ModelShape& shape, const Real* beta, const Real* data, Real* r,
                                          Real* work) {
  const int d = shape.d;
  switch (shape.loss) {
    case LossKind::logistic: {
      const Real margin = dot(data, beta, d);
      const Real g = logistic_weight(margin);
      SOFTFLOW_UNROLL
      for (int i = 0; i < d; ++i) r[i] = g * data[i];
      return logistic_loss(margin);
    }
    case LossKind::square: {
      Real loss = 0;
      SOFTFLOW_UNROLL
      for (int i = 0; i < d; ++i) {
        r[i] = data[i] - beta[i];
        loss += r[i] * r[i];
      }
      return Real(0.5) * loss;
    }
    case LossKind::cross_entropy: {
      const Real lse = log_sum_exp(beta, d);
      Real loss = 0;
      SOFTFLOW_UNROLL
      for (int i = 0; i < d; ++i) {
        loss -= data[i] * (beta[i] - lse);
        r[i] = data[i] - exp(beta[i] - lse);
      }
      return loss;
    }
    case LossKind::regression: {
      const int m = shape.m;
      const Real* x = data;      // m x d
      const Real* y = data + m * d;
      Real* residual = work;     // m
      Real loss = 0;
      SOFTFLOW_UNROLL
      for (int k = 0; k < m; ++k) {
        residual[k] = y[k] - dot(x + k * d, beta, d);
        loss += residual[k] * residual[k];
      }
      SOFTFLOW_UNROLL
      for (int i = 0; i < d; ++i) r[i] = 0;
      SOFTFLOW_UNROLL
      for (int k = 0; k < m; ++k)
        SOFTFLOW_UNROLL
        for (int i = 0; i < d; ++i) r[i] += Real(2) * residual[k] * x[k * d + i];
      return loss;
    }
    case LossKind::linear:
    case LossKind::exponential: break;  // the attention family's margin losses (attention.h)
  }
  return Real(0);
}

// Value-softmax vector field: dtheta = -grad L(theta).
//   s = softmax(a), beta = V s, r = -grad l(beta), u = V^T r,  dV = r s^T,  da = s .* (u - <s,u>).
// theta, dtheta: d*n + n; data: data_size(); scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline FlowEval<Real> value_softmax_flow(const ModelShape& shape, const Real* theta, const Real* data,
                                                     Real* dtheta, Real* scratch) {
  const int d = shape.d, n = shape.n;
  const Real* v = theta;
  const Real* a = theta + d * n;
  Real* s = scratch;             // n
  Real* u = s + n;               // n
  Real* beta = u + n;            // d
  Real* r = beta + d;            // d
  Real* work = r + d;            // d + m
  softmax(a, n, s);
  for (int i = 0; i < d; ++i) beta[i] = dot(v + i * n, s, n);
  FlowEval<Real> eval;
  eval.loss = loss_and_residual(shape, beta, data, r, work);
  for (int j = 0; j < n; ++j) u[j] = 0;
  Real grad_sq = 0;
  for (int i = 0; i < d; ++i) {
    const Real ri = r[i];
    for (int j = 0; j < n; ++j) {
      u[j] += v[i * n + j] * ri;
      const Real g = ri * s[j];
      dtheta[i * n + j] = g;
      grad_sq += g * g;
    }
  }
  Real* da = dtheta + d * n;
  softmax_jacobian_apply(s, u, n, da);
  for (int j = 0; j < n; ++j) grad_sq += da[j] * da[j];
  eval.grad_norm_sq = grad_sq;
  eval.winner = argmax(s, n);
  eval.s_max = s[eval.winner];
  return eval;
}

// Tied model (massive activations), logistic loss: alpha = softmax(U a), beta = U alpha, r = g beta*,
//   w = U^T r, gvec = C(alpha) w,  dU = r alpha^T + gvec a^T,  da = U^T gvec.
// theta, dtheta: D*D + D; data: beta* (D); scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline FlowEval<Real> tied_flow(const ModelShape& shape, const Real* theta, const Real* data,
                                            Real* dtheta, Real* scratch) {
  const int n = shape.n;
  const Real* u_mat = theta;
  const Real* a = theta + n * n;
  Real* alpha = scratch;         // n
  Real* w = alpha + n;           // n, then reused for gvec
  Real* beta = w + n;            // n
  Real* r = beta + n;            // n
  for (int i = 0; i < n; ++i) beta[i] = dot(u_mat + i * n, a, n);  // logits U a, held in beta for now
  softmax(beta, n, alpha);
  for (int i = 0; i < n; ++i) beta[i] = dot(u_mat + i * n, alpha, n);
  const Real margin = dot(data, beta, n);
  const Real g = logistic_weight(margin);
  FlowEval<Real> eval;
  eval.loss = logistic_loss(margin);
  for (int i = 0; i < n; ++i) r[i] = g * data[i];
  for (int j = 0; j < n; ++j) w[j] = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) w[j] += u_mat[i * n + j] * r[i];
  softmax_jacobian_apply(alpha, w, n, w);  // w now holds gvec = C(alpha) U^T r
  Real* da = dtheta + n * n;
  for (int j = 0; j < n; ++j) da[j] = 0;
  Real grad_sq = 0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const Real g_ij = r[i] * alpha[j] + w[i] * a[j];
      dtheta[i * n + j] = g_ij;
      grad_sq += g_ij * g_ij;
      da[j] += u_mat[i * n + j] * w[i];
    }
  }
  for (int j = 0; j < n; ++j) grad_sq += da[j] * da[j];
  eval.grad_norm_sq = grad_sq;
  eval.winner = argmax(alpha, n);
  eval.s_max = alpha[eval.winner];
  return eval;
}

}  // namespace softflow
