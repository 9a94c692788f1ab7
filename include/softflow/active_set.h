// Purpose: what the att-SVM's two active-set methods (Wolfe's, min_norm_point.h; Lawson and Hanson's NNLS,
// least_distance.h) share, on both backends: the symmetric positive definite solve of the small system on the
// active set, and the step that keeps the set's weights positive.
#pragma once

#include "softflow/hostdevice.h"

namespace softflow {

// The most steps either method takes for M points in R^D: 50 (M + D) + 100, held at INT_MAX (M alone reaches
// 2^26 at d = 1, where the product overflowed an int).
SOFTFLOW_HD inline int active_set_step_cap(int M, int D) {
  const long long cap = 50LL * (static_cast<long long>(M) + D) + 100;
  return cap < 2147483647LL ? static_cast<int>(cap) : 2147483647;
}

// Solves A z = rhs for an r x r symmetric positive definite A (its lower triangle at a[i * stride + k], k <= i,
// overwritten by the factor L, A = L L^T); rhs (r) is overwritten by z. Returns false where a pivot falls to
// min_pivot_ratio times the largest diagonal entry or below (A singular to rounding): rhs is then unspecified.
SOFTFLOW_HD inline bool cholesky_solve(int r, int stride, double* a, double* rhs, double min_pivot_ratio) {
  double largest_diagonal = 0;
  for (int i = 0; i < r; ++i) largest_diagonal = max_of(largest_diagonal, a[i * stride + i]);
  for (int i = 0; i < r; ++i) {
    for (int k = 0; k <= i; ++k) {
      double total = a[i * stride + k];
      for (int l = 0; l < k; ++l) total -= a[i * stride + l] * a[k * stride + l];
      if (i == k) {
        if (!(total > min_pivot_ratio * largest_diagonal)) return false;
        a[i * stride + i] = sqrt(total);
      } else {
        a[i * stride + k] = total / a[k * stride + k];
      }
    }
  }
  for (int i = 0; i < r; ++i) {  // L y = rhs
    double total = rhs[i];
    for (int l = 0; l < i; ++l) total -= a[i * stride + l] * rhs[l];
    rhs[i] = total / a[i * stride + i];
  }
  for (int i = r - 1; i >= 0; --i) {  // L^T z = y
    double total = rhs[i];
    for (int l = i + 1; l < r; ++l) total -= a[l * stride + i] * rhs[l];
    rhs[i] = total / a[i * stride + i];
  }
  return true;
}

// Moves the active set's weights (m) towards target (m, the unconstrained solution on the set) until the first
// weight reaches zero (all the way where none does), sets that one to exactly zero, then drops every member whose
// weight is not positive. member, weight: m, compacted in place. Returns the new m.
SOFTFLOW_HD inline int step_towards_and_drop(int m, double* member, double* weight, const double* target) {
  double theta = 1;
  int leaving = -1;
  for (int i = 0; i < m; ++i)
    if (target[i] <= 0 && weight[i] - target[i] > 0) {
      const double reach = weight[i] / (weight[i] - target[i]);
      if (reach < theta || leaving < 0) {
        theta = reach;
        leaving = i;
      }
    }
  for (int i = 0; i < m; ++i) weight[i] += theta * (target[i] - weight[i]);
  if (leaving >= 0) weight[leaving] = 0;
  int kept = 0;
  for (int i = 0; i < m; ++i) {
    if (!(weight[i] > 0)) continue;
    member[kept] = member[i];
    weight[kept] = weight[i];
    ++kept;
  }
  return kept;
}

}  // namespace softflow
