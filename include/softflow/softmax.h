// Purpose: the softmax and everything derived from it (entropy, max, argmax, C(s) v), written once for both backends.
// All vectors are contiguous arrays of length n.
#pragma once

#include "softflow/hostdevice.h"

namespace softflow {

// s = softmax(a), stably (shift by max a). a: n, s: n (may alias a).
template <class Real>
SOFTFLOW_HD inline void softmax(const Real* a, int n, Real* s) {
  Real a_max = a[0];
  SOFTFLOW_UNROLL
  for (int i = 1; i < n; ++i) a_max = max_of(a_max, a[i]);
  Real total = 0;
  SOFTFLOW_UNROLL
  for (int i = 0; i < n; ++i) {
    s[i] = exp(a[i] - a_max);
    total += s[i];
  }
  const Real inv = Real(1) / total;
  SOFTFLOW_UNROLL
  for (int i = 0; i < n; ++i) s[i] *= inv;
}

// log(sum_i exp(a_i)), stably. a: n.
template <class Real>
SOFTFLOW_HD inline Real log_sum_exp(const Real* a, int n) {
  Real a_max = a[0];
  SOFTFLOW_UNROLL
  for (int i = 1; i < n; ++i) a_max = max_of(a_max, a[i]);
  Real total = 0;
  SOFTFLOW_UNROLL
  for (int i = 0; i < n; ++i) total += exp(a[i] - a_max);
  return a_max + log(total);
}

// H(s) = -sum_i s_i log s_i in nats (0 log 0 = 0). s: n.
template <class Real>
SOFTFLOW_HD inline Real entropy(const Real* s, int n) {
  Real h = 0;
  SOFTFLOW_UNROLL
  for (int i = 0; i < n; ++i)
    if (s[i] > Real(0)) h -= s[i] * log(s[i]);
  return h;
}

// Index of the largest entry (the first one on ties). x: n.
template <class Real>
SOFTFLOW_HD inline int argmax(const Real* x, int n) {
  int best = 0;
  SOFTFLOW_UNROLL
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// Index of the largest entry, or -1 when the largest value occurs more than once. x: n.
template <class Real>
SOFTFLOW_HD inline int unique_argmax(const Real* x, int n) {
  const int best = argmax(x, n);
  SOFTFLOW_UNROLL
  for (int i = best + 1; i < n; ++i)
    if (x[i] == x[best]) return -1;
  return best;
}

// <x, y>. x, y: n.
template <class Real>
SOFTFLOW_HD inline Real dot(const Real* x, const Real* y, int n) {
  Real total = 0;
  SOFTFLOW_UNROLL
  for (int i = 0; i < n; ++i) total += x[i] * y[i];
  return total;
}

// out = C(s) u = s .* (u - <s, u>), the softmax Jacobian applied to u. s, u, out: n (out may alias u).
template <class Real>
SOFTFLOW_HD inline void softmax_jacobian_apply(const Real* s, const Real* u, int n, Real* out) {
  const Real mean_u = dot(s, u, n);
  SOFTFLOW_UNROLL
  for (int i = 0; i < n; ++i) out[i] = s[i] * (u[i] - mean_u);
}

}  // namespace softflow
