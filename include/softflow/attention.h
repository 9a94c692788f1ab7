// Purpose: the attention token-selection family's shapes, margin losses and gradient-flow vector field (science.md
// section 2), written once for both backends. f(X_i) = v^T X_i^T s_i with s_i = softmax(X_i W p) (trainable p or
// (v, p)) or s_i = softmax(X_i W z_i) (trainable W, merged key-query, query token z_i); L = (1/N) sum_i
// l(Y_i f(X_i)). The shape is ModelShape with model attention: n = T tokens, inputs = N, d = token dimension.
//
// A run's state theta:  p: [p (d)]   W: [W (d x d), row-major]   vp: [v (d), p (d)]
// A run's data:         X (N x T x d, input-major, token rows), Y (N), then the fixed parameters:
//                       p: W (d x d), v (d)   W: z (N x d), v (d)   vp: W (d x d)
#pragma once

#include "softflow/hostdevice.h"
#include "softflow/model.h"
#include "softflow/softmax.h"

namespace softflow {

// l(x) for a margin x: logistic log(1 + e^{-x}), linear -x, exponential e^{-x}.
template <class Real>
SOFTFLOW_HD inline Real margin_loss(LossKind loss, Real x) {
  switch (loss) {
    case LossKind::linear: return -x;
    case LossKind::exponential: return exp(-x);
    default: return logistic_loss(x);
  }
}

// l'(x) for a margin x.
template <class Real>
SOFTFLOW_HD inline Real margin_loss_slope(LossKind loss, Real x) {
  switch (loss) {
    case LossKind::linear: return Real(-1);
    case LossKind::exponential: return -exp(-x);
    default: return -logistic_weight(x);
  }
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

// Where a run's arrays live (layouts above). w: d x d; z: N x d (trainable W only, else null); v, p: d (p null for
// trainable W).
template <class Real>
struct AttentionView {
  const Real* x;
  const Real* y;
  const Real* w;
  const Real* z;
  const Real* v;
  const Real* p;
  SOFTFLOW_HD AttentionView(const ModelShape& shape, const Real* theta, const Real* data) {
    const bool train_w = shape.trainable == AttentionTrainable::w, train_v = shape.trainable == AttentionTrainable::vp;
    x = data;
    y = x + shape.inputs * shape.n * shape.d;
    const Real* fixed = y + shape.inputs;
    w = train_w ? theta : fixed;
    z = train_w ? fixed : nullptr;
    v = train_w ? fixed + shape.inputs * shape.d : (train_v ? theta : fixed + shape.d * shape.d);
    p = train_w ? nullptr : (train_v ? theta + shape.d : theta);
  }
  // The key direction of input i: W p, or W z_i for trainable W, summed in Out's precision. key: d.
  template <class Out>
  SOFTFLOW_HD void key_direction(const ModelShape& shape, int i, Out* key) const {
    const int d = shape.d;
    const Real* query = p ? p : z + i * d;
    for (int r = 0; r < d; ++r) {
      Out total = 0;
      for (int c = 0; c < d; ++c) total += Out(w[r * d + c]) * Out(query[c]);
      key[r] = total;
    }
  }
  // True when every input shares one key direction (W p): trainable p and vp.
  SOFTFLOW_HD bool shared_key() const { return p != nullptr; }
  // Token scores gamma_it = Y_i <x_it, v>' argmax (first on ties): the optimal token of input i.
  SOFTFLOW_HD int optimal_token(const ModelShape& shape, int i) const {
    const int T = shape.n, d = shape.d;
    int best = 0;
    Real best_score = Real(0);
    for (int t = 0; t < T; ++t) {
      const Real score = y[i] * dot(x + (i * T + t) * d, v, d);
      if (t == 0 || score > best_score) {
        best = t;
        best_score = score;
      }
    }
    return best;
  }
};

// Attention vector field: dtheta = -grad L(theta). For input i (X_i: T x d):
//   key direction k = W p (p, vp) or W z_i (W);  logits = X_i k;  s = softmax(logits);  xv = X_i v;  f = <s, xv>;
//   c = l'(Y_i f) Y_i / N;  q = C(s) xv = s .* (xv - f) (computed relative to the selected token);  a = X_i^T q;
//   grad_p += c W^T a,  grad_W += c a z_i^T,  grad_v += c X_i^T s.
// FlowEval: loss L, s_max = mean over inputs of max_t s_it, ||grad L||^2, winner = argmax_t s_0t.
// theta, dtheta: state_size(); data: data_size(); scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline FlowEval<Real> attention_flow(const ModelShape& shape, const Real* theta, const Real* data,
                                                 Real* dtheta, Real* scratch) {
  const int n_inputs = shape.inputs, T = shape.n, d = shape.d;
  const bool train_w = shape.trainable == AttentionTrainable::w, train_v = shape.trainable == AttentionTrainable::vp;
  const AttentionView<Real> view(shape, theta, data);
  const Real* x = view.x;
  const Real* y = view.y;
  const Real* w = view.w;
  const Real* z = view.z;
  const Real* v = view.v;
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
  for (int i = 0; i < n_inputs; ++i) {
    const Real* xi = x + i * T * d;
    if (i == 0 || !view.shared_key()) view.key_direction(shape, i, key);
    for (int t = 0; t < T; ++t) {
      s[t] = dot(xi + t * d, key, d);
      xv[t] = dot(xi + t * d, v, d);
    }
    softmax(s, T, s);
    const int winner = argmax(s, T);
    if (i == 0) eval.winner = winner;
    eval.s_max += s[winner] / Real(n_inputs);
    // f = <s, xv> and q = s .* (xv - f) relative to the selected token: with delta = f - xv_sel =
    // sum_t s_t (xv_t - xv_sel), q_t = s_t ((xv_t - xv_sel) - delta) keeps its relative precision once the softmax
    // saturates (f - xv_sel is then tiny, and xv_sel - f would be lost to cancellation).
    const Real selected = xv[winner];
    Real delta = 0;
    for (int t = 0; t < T; ++t) delta += s[t] * (xv[t] - selected);
    const Real margin = y[i] * (selected + delta);
    eval.loss += margin_loss(shape.loss, margin) / Real(n_inputs);
    const Real c = margin_loss_slope(shape.loss, margin) * y[i] / Real(n_inputs);
    for (int t = 0; t < T; ++t) q[t] = s[t] * ((xv[t] - selected) - delta);
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

// What a run's attention selects, for the observables (science.md section 2). Per input i: s_i = softmax(logits_i),
// alpha_i = argmax_t s_it, opt_i = the optimal token.
struct AttentionSelection {
  double entropy = 0;       // mean over inputs of H(s_i)
  double optimal_prob = 0;  // mean over inputs of s_{i opt_i}
  double param_norm = 0;    // ||p|| (p, vp) or ||W||_F (w)
  double v_norm = 0;        // ||v||
  double token_margin = 0;  // min_i (logit_{i alpha_i} - max_{t != alpha_i} logit_it) / param_norm; NaN if the norm is 0
  int winner0 = 0;          // alpha_0
  int optimal0 = 0;         // opt_0
};

// theta: state_size(); data: data_size(); scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline AttentionSelection attention_selection(const ModelShape& shape, const Real* theta,
                                                          const Real* data, Real* scratch) {
  const int n_inputs = shape.inputs, T = shape.n, d = shape.d;
  const AttentionView<Real> view(shape, theta, data);
  Real* key = scratch;  // d
  Real* s = key + d;    // T
  AttentionSelection out;
  double norm_sq = 0;
  const Real* trained = view.p ? view.p : view.w;
  const int trained_size = view.p ? d : d * d;
  for (int k = 0; k < trained_size; ++k) norm_sq += double(trained[k]) * double(trained[k]);
  out.param_norm = sqrt(norm_sq);
  out.v_norm = sqrt(double(dot(view.v, view.v, d)));
  double min_gap = INFINITY;
  for (int i = 0; i < n_inputs; ++i) {
    if (i == 0 || !view.shared_key()) view.key_direction(shape, i, key);
    for (int t = 0; t < T; ++t) s[t] = dot(view.x + (i * T + t) * d, key, d);
    const int alpha = argmax(s, T);
    for (int t = 0; t < T; ++t)
      if (t != alpha) min_gap = min_of(min_gap, double(s[alpha]) - double(s[t]));
    softmax(s, T, s);
    const int opt = view.optimal_token(shape, i);
    out.entropy += double(entropy(s, T)) / n_inputs;
    out.optimal_prob += double(s[opt]) / n_inputs;
    if (i == 0) {
      out.winner0 = alpha;
      out.optimal0 = opt;
    }
  }
  out.token_margin = out.param_norm > 0 ? min_gap / out.param_norm : NAN;
  return out;
}

}  // namespace softflow
