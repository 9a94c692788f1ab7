// Purpose: the point of least norm in the convex hull of M points a_j in R^D, by Wolfe's algorithm (P. Wolfe,
// "Finding the nearest point in a polytope", Math. Programming 11, 1976), shared by both backends. The att-SVM
// solver (att_svm.h) uses it for the problems whose margins are all 1: with u = the least-norm point,
//   u = 0 (0 in the hull): no w has <a_j, w> >= 1 for all j (Farkas: the convex weights are the certificate);
//   u != 0: w = u / ||u||^2 solves min ||w|| s.t. <a_j, w> >= 1, with dual lambda = (convex weights) / ||u||^2.
//
// Wolfe's method keeps a corral: an affinely independent subset S of the points and convex weights on S whose
// combination x is the least-norm point of aff(S) inside conv(S). A major cycle adds the point a_j minimising
// <x, a_j> unless <x, a_j> >= ||x||^2 - eps (then x is optimal); minor cycles move x to the affine minimiser of S
// or, where that leaves the hull of S, to the hull's boundary on the way there, dropping the points whose weight
// reaches zero. Every step lowers ||x||, so it ends in finitely many steps; a cap on the cycles and a check on the
// affine independence (the Cholesky pivots) guard against rounding.
#pragma once

#include "softflow/hostdevice.h"
#include "softflow/active_set.h"
#include "softflow/softmax.h"

namespace softflow {

struct MinNormPointResult {
  bool converged = false;  // Wolfe's optimality test passed (else the cap or a dependent corral ended it)
  double norm_sq = 0;      // ||x||^2
  int cycles = 0;          // major plus minor cycles taken
};

// The most points a corral can hold: affinely independent points in R^D number at most D + 1.
SOFTFLOW_HD inline int corral_capacity(int M, int D) { return M < D + 1 ? M : D + 1; }

// Doubles of workspace min_norm_point needs: the corral's Gram matrix and Cholesky factor (K x K each) and four
// K-vectors (members, weights, the affine minimiser, the right-hand side), K = corral_capacity.
SOFTFLOW_HD inline long long min_norm_point_workspace(int M, int D) {
  const long long K = corral_capacity(M, D);
  return 2 * K * K + 4 * K;
}

namespace min_norm_detail {

// The affine minimiser of the corral's m points: weights v (sum 1) minimising ||sum_i v_i p_i||, from the normal
// equations in q_i = p_i - p_0: (Q^T Q) c = -Q^T p_0, v = (1 - sum c, c). gram: the corral's Gram matrix (stride
// K); chol, rhs: scratch. Returns false where Q^T Q is not positive definite to rounding (the points are
// affinely dependent).
SOFTFLOW_HD inline bool affine_minimiser(int m, int K, const double* gram, double* chol, double* rhs, double* v) {
  v[0] = 1;
  if (m == 1) return true;
  const int r = m - 1;
  for (int i = 0; i < r; ++i) {
    for (int k = 0; k <= i; ++k) chol[i * K + k] = gram[(i + 1) * K + k + 1] - gram[(i + 1) * K] - gram[k + 1] + gram[0];
    rhs[i] = gram[0] - gram[(i + 1) * K];
  }
  if (!cholesky_solve(r, K, chol, rhs, 1e-13)) return false;
  double sum = 0;
  for (int i = 0; i < r; ++i) {
    v[i + 1] = rhs[i];
    sum += rhs[i];
  }
  v[0] = 1 - sum;
  return true;
}

}  // namespace min_norm_detail

// The least-norm point x (D) of conv{a_j}, a: M x D (row j = a_j), M >= 1. weight: M (out: the convex weights,
// zero off the final corral). work: min_norm_point_workspace(M, D) doubles.
SOFTFLOW_HD inline MinNormPointResult min_norm_point(int M, int D, const double* a, double* weight, double* x,
                                                     double* work) {
  const int K = corral_capacity(M, D);
  double* gram = work;           // K x K: <p_i, p_k> of the corral's points
  double* chol = gram + K * K;   // K x K
  double* member = chol + K * K;  // K: the corral's point indices (exact in a double)
  double* lambda = member + K;    // K: the corral's convex weights
  double* v = lambda + K;         // K: the affine minimiser's weights
  double* rhs = v + K;            // K
  MinNormPointResult result;

  // The loop's tolerance: Wolfe's eps on <x, a_j> >= ||x||^2 - eps, relative to the largest ||a_j||^2.
  int first = 0;
  double largest_sq = 0;
  for (int j = 0; j < M; ++j) {
    const double norm_sq = dot(a + j * D, a + j * D, D);
    largest_sq = max_of(largest_sq, norm_sq);
    if (norm_sq < dot(a + first * D, a + first * D, D)) first = j;
  }
  const double eps = 1e-12 * largest_sq;
  int m = 1;
  member[0] = first;
  lambda[0] = 1;
  gram[0] = dot(a + first * D, a + first * D, D);
  auto point = [&](int i) { return a + int(member[i]) * D; };
  auto set_x = [&]() {
    for (int k = 0; k < D; ++k) x[k] = 0;
    for (int i = 0; i < m; ++i)
      for (int k = 0; k < D; ++k) x[k] += lambda[i] * point(i)[k];
  };
  set_x();

  const int max_cycles = active_set_step_cap(M, D);
  while (result.cycles < max_cycles) {
    ++result.cycles;
    const double x_sq = dot(x, x, D);
    int entering = -1;
    double lowest = x_sq - eps;
    for (int j = 0; j < M; ++j) {
      const double inner = dot(x, a + j * D, D);
      if (inner < lowest) {
        lowest = inner;
        entering = j;
      }
    }
    if (entering < 0) {
      result.converged = true;
      break;
    }
    bool present = false;
    for (int i = 0; i < m; ++i) present = present || int(member[i]) == entering;
    if (present || m == K) break;  // rounding: the test failed on a corral point, or no room to grow
    member[m] = entering;
    lambda[m] = 0;
    for (int i = 0; i <= m; ++i) gram[m * K + i] = gram[i * K + m] = dot(a + entering * D, point(i), D);
    ++m;
    while (result.cycles < max_cycles) {  // minor cycles
      ++result.cycles;
      if (!min_norm_detail::affine_minimiser(m, K, gram, chol, rhs, v)) {
        result.cycles = max_cycles;  // affinely dependent to rounding: give up (the caller falls back)
        break;
      }
      bool interior = true;
      for (int i = 0; i < m; ++i) interior = interior && v[i] > 0;
      if (interior) {
        for (int i = 0; i < m; ++i) lambda[i] = v[i];
        break;
      }
      // Move from lambda towards v until a weight reaches zero, then drop that point (and any other at zero).
      m = step_towards_and_drop(m, member, lambda, v);
      // Rebuild the Gram matrix of the kept points (m is small; this keeps the bookkeeping obvious).
      for (int i = 0; i < m; ++i)
        for (int k = 0; k <= i; ++k) gram[i * K + k] = gram[k * K + i] = dot(point(i), point(k), D);
    }
    set_x();
  }
  for (int j = 0; j < M; ++j) weight[j] = 0;
  for (int i = 0; i < m; ++i) weight[int(member[i])] = lambda[i];
  result.norm_sq = dot(x, x, D);
  return result;
}

}  // namespace softflow
