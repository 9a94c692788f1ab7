// Purpose: least-distance programming, min ||w|| s.t. <a_j, w> >= b_j (j < M), by Lawson and Hanson's reduction
// to non-negative least squares (C. L. Lawson, R. J. Hanson, "Solving Least Squares Problems", 1974, chapters 23
// and 24), shared by both backends. The att-SVM solver (att_svm.h) uses it for margins of mixed 0 and 1 (the
// joint model's relaxed p-SVM), where the least-norm point of a convex hull (min_norm_point.h) does not apply.
//
// With E = [a_1 .. a_M; b_1 .. b_M] ((D + 1) x M) and f = (0, .., 0, 1), let u >= 0 minimise ||E u - f|| (NNLS)
// and s = sum_j u_j b_j. Then ||E u - f||^2 = 1 - s, and
//   s = 1 (E u = f): sum_j u_j a_j = 0 with sum_j u_j b_j = 1: no w meets the constraints (Farkas; u is the
//   certificate);
//   s < 1: w = sum_j u_j a_j / (1 - s) solves the problem, with dual lambda = u / (1 - s) and ||w||^2 = s / (1 - s).
// NNLS by Lawson and Hanson's active-set method: a passive set P of at most min(M, D + 1) columns; each outer step
// frees the column with the largest gradient E^T (f - E u), each inner step solves the least-squares problem on P
// (normal equations, active_set.h) and, where that leaves the orthant, moves to its boundary and drops the
// columns that reach zero. It ends in finitely many steps; a cap on the steps and the Cholesky pivots guard
// against rounding.
#pragma once

#include "softflow/hostdevice.h"
#include "softflow/active_set.h"
#include "softflow/softmax.h"

namespace softflow {

struct LeastDistanceResult {
  bool converged = false;  // the NNLS optimality test passed (else the cap or a singular passive set ended it)
  double margin_sum = 0;   // s = sum_j u_j b_j: 1 - s = ||E u - f||^2
  int steps = 0;           // outer plus inner steps
};

// Doubles of workspace least_distance needs: the passive set's normal matrix (K x K) and three K-vectors (members,
// their u, the least-squares solution), K = min(M, D + 1), and the combination x (D).
SOFTFLOW_HD inline long long least_distance_workspace(int M, int D) {
  const long long K = M < D + 1 ? M : D + 1;
  return K * K + 3 * K + D;
}

// NNLS for the problem above. a: M x D (row j = a_j), b: M; u: M (out: the NNLS solution, zero off the passive
// set). work: least_distance_workspace(M, D) doubles.
SOFTFLOW_HD inline LeastDistanceResult least_distance(int M, int D, const double* a, const double* b, double* u,
                                                      double* work) {
  const int K = M < D + 1 ? M : D + 1;
  double* normal = work;            // K x K: (E^T E) on the passive set, factored in place
  double* member = normal + K * K;  // K: the passive set's column indices (exact in a double)
  double* value = member + K;       // K: u on the passive set
  double* solution = value + K;     // K: the least-squares solution on the passive set
  double* x = solution + K;         // D: sum_j u_j a_j
  LeastDistanceResult result;
  for (int j = 0; j < M; ++j) u[j] = 0;
  double scale = 0;  // the largest ||E e_j||^2, for the tolerances
  for (int j = 0; j < M; ++j) scale = max_of(scale, dot(a + j * D, a + j * D, D) + b[j] * b[j]);
  const double tolerance = 1e-13 * max_of(scale, 1.0);
  int m = 0;
  auto column_dot = [&](int j, int k) { return dot(a + j * D, a + k * D, D) + b[j] * b[k]; };

  const int max_steps = active_set_step_cap(M, D);
  while (result.steps < max_steps) {
    ++result.steps;
    // Gradient of -||E u - f||^2 / 2: E^T (f - E u), entry j = b_j (1 - s) - <a_j, x>.
    for (int k = 0; k < D; ++k) x[k] = 0;
    double s = 0;
    for (int i = 0; i < m; ++i) {
      const int j = int(member[i]);
      for (int k = 0; k < D; ++k) x[k] += value[i] * a[j * D + k];
      s += value[i] * b[j];
    }
    int entering = -1;
    double largest = tolerance;
    for (int j = 0; j < M; ++j) {
      bool passive = false;
      for (int i = 0; i < m; ++i) passive = passive || int(member[i]) == j;
      if (passive) continue;
      const double gradient = b[j] * (1 - s) - dot(a + j * D, x, D);
      if (gradient > largest) {
        largest = gradient;
        entering = j;
      }
    }
    if (entering < 0) {
      result.converged = true;
      break;
    }
    if (m == K) break;  // no room: rounding
    member[m] = entering;
    value[m] = 0;
    ++m;
    bool solved = false;
    while (result.steps < max_steps) {  // inner steps
      ++result.steps;
      for (int i = 0; i < m; ++i) {
        for (int k = 0; k <= i; ++k) normal[i * K + k] = column_dot(int(member[i]), int(member[k]));
        solution[i] = b[int(member[i])];  // E^T f on the passive set
      }
      if (!cholesky_solve(m, K, normal, solution, 1e-14)) break;
      bool interior = true;
      for (int i = 0; i < m; ++i) interior = interior && solution[i] > 0;
      if (interior) {
        for (int i = 0; i < m; ++i) value[i] = solution[i];
        solved = true;
        break;
      }
      m = step_towards_and_drop(m, member, value, solution);
      if (m == 0) break;
    }
    if (!solved) break;  // a singular passive set or the cap: give up (the caller falls back)
  }
  for (int i = 0; i < m; ++i) u[int(member[i])] = value[i];
  double s = 0;
  for (int j = 0; j < M; ++j) s += u[j] * b[j];
  result.margin_sum = s;
  return result;
}

}  // namespace softflow
