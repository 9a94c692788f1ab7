// Purpose: the max-margin (att-SVM) problems of science.md section 2, solved per run by one shared routine on
// both backends, and the classification of a run's converged direction.
//   Every problem here is  min ||w||^2 / 2  s.t.  <a_j, w> >= b_j  (j < M),  w in R^D,
// solved through its dual  max_{lambda >= 0} sum_j b_j lambda_j - ||sum_j lambda_j a_j||^2 / 2,  w = sum lambda_j a_j,
// by cyclic projected coordinate ascent (Hildreth's method): lambda_j <- max(0, lambda_j + (b_j - <a_j, w>) /
// ||a_j||^2), w updated along a_j. The instances:
//   p-SVM for a selection alpha (trainable p):  a_it = W^T (x_{i alpha_i} - x_it), t != alpha_i, b = 1; D = d.
//   W-SVM (trainable W, Frobenius):  a_it = vec((x_{i alpha_i} - x_it) z_i^T), b = 1; D = d^2.
//   v-SVM (joint):  a_i = Y_i x_{i alpha_i}, b = 1; D = d.
//   relaxed p-SVM (joint):  the p-SVM with b = 1 on inputs whose v-SVM constraint is tight, b = 0 on the others.
// The ascent starts from an exact solution, which also certifies infeasibility: where every b_j = 1 (all but the
// relaxed p-SVM) the least-norm point u of conv{a_j} (min_norm_point.h: w = u / ||u||^2; u = 0: infeasible),
// else the least-distance solution (least_distance.h). The ascent then only confirms the KKT conditions (one
// sweep), or solves the problem where the exact method gave up to rounding.
#pragma once

#include "softflow/attention.h"
#include "softflow/hostdevice.h"
#include "softflow/least_distance.h"
#include "softflow/min_norm_point.h"
#include "softflow/model.h"

namespace softflow {

// solved: the KKT conditions hold to kSvmTolerance. infeasible: a constraint 0 >= b_j > 0; or an exact method's
// certificate, lambda >= 0 with sum_j lambda_j b_j = 1 and ||sum_j lambda_j a_j||^2 <= 1 / kSvmDualBound (lambda
// holds it: the least-norm point's convex weights, or the least-distance solution scaled), i.e. ||w|| would
// exceed sqrt(kSvmDualBound); or sum_j lambda_j b_j beyond kSvmDualBound in the ascent (the dual growing without
// bound). not_converged: kSvmMaxSweeps sweeps without either (where an exact method gave up on an infeasible
// problem: the ascent's dual grows too slowly to reach the bound).
enum class SvmStatus : int { solved = 0, infeasible = 1, not_converged = 2 };

struct MarginSvmResult {
  SvmStatus status = SvmStatus::not_converged;
  double kkt_residual = 0;   // max_j of max(0, b_j - <a_j, w>) and lambda_j |<a_j, w> - b_j| / max(1, ||w||^2)
  double norm = 0;           // ||w||
  int sweeps = 0;            // coordinate sweeps taken
};

constexpr double kSvmTolerance = 1e-9;
constexpr int kSvmMaxSweeps = 20000;
constexpr double kSvmDualBound = 1e12;  // ||w||^2 = sum_j lambda_j b_j beyond this: infeasible

// Doubles of scratch solve_margin_svm needs for M constraints in R^D.
SOFTFLOW_HD inline long long margin_svm_scratch_size(int M, int D) {
  return max_of(min_norm_point_workspace(M, D), least_distance_workspace(M, D));
}

// Solves the problem above. a: M x D (row j = a_j), b: M; lambda: M (out: the dual solution), w: D (out);
// scratch: margin_svm_scratch_size(M, D) doubles.
SOFTFLOW_HD inline MarginSvmResult solve_margin_svm(int M, int D, const double* a, const double* b, double* lambda,
                                                    double* w, double* scratch) {
  MarginSvmResult result;
  for (int k = 0; k < D; ++k) w[k] = 0;
  for (int j = 0; j < M; ++j) lambda[j] = 0;
  bool unit_margins = M > 0;
  for (int j = 0; j < M; ++j) {
    unit_margins = unit_margins && b[j] == 1;
    if (b[j] > 0 && dot(a + j * D, a + j * D, D) == 0) {  // 0 >= b_j > 0: no w does it
      result.status = SvmStatus::infeasible;
      return result;
    }
  }
  if (M > 0) {
    // The exact start: lambda = start_scale * (the method's weights); infeasible where its certificate says so.
    bool exact = false, infeasible = false;
    double start_scale = 0;
    if (unit_margins) {  // weights: convex, w = u / ||u||^2 with u = sum_j weight_j a_j
      const MinNormPointResult nearest = min_norm_point(M, D, a, lambda, w, scratch);
      exact = nearest.converged;
      infeasible = nearest.norm_sq * kSvmDualBound <= 1;
      start_scale = infeasible ? 1 : 1 / nearest.norm_sq;
    } else {  // weights: u of the NNLS, lambda = u / (1 - s), ||w||^2 = s / (1 - s)
      const LeastDistanceResult nearest = least_distance(M, D, a, b, lambda, scratch);
      const double s = nearest.margin_sum;
      exact = nearest.converged;
      infeasible = (1 - s) * (1 + kSvmDualBound) <= 1;
      start_scale = infeasible ? 1 / s : 1 / (1 - s);
    }
    for (int j = 0; j < M; ++j) lambda[j] = exact ? lambda[j] * start_scale : 0;
    if (exact && infeasible) {
      result.status = SvmStatus::infeasible;
      return result;
    }
    for (int k = 0; k < D; ++k) w[k] = 0;
    for (int j = 0; j < M; ++j)
      if (lambda[j] != 0)
        for (int k = 0; k < D; ++k) w[k] += lambda[j] * a[j * D + k];
  }
  while (result.sweeps < kSvmMaxSweeps) {
    ++result.sweeps;
    double dual_scale = 0, largest_move = 0;
    for (int j = 0; j < M; ++j) {
      const double* aj = a + j * D;
      const double aa = dot(aj, aj, D);
      if (aa == 0) continue;  // b_j <= 0: met by every w, and lambda_j stays 0
      const double updated = max_of(0.0, lambda[j] + (b[j] - dot(aj, w, D)) / aa);
      const double delta = updated - lambda[j];
      if (delta != 0)
        for (int k = 0; k < D; ++k) w[k] += delta * aj[k];
      lambda[j] = updated;
      dual_scale += lambda[j] * b[j];
      largest_move = max_of(largest_move, abs_of(delta) * sqrt(aa));
    }
    if (dual_scale > kSvmDualBound) {
      result.status = SvmStatus::infeasible;
      return result;
    }
    // KKT: primal feasibility, and complementary slackness relative to the objective's scale ||w||^2 (= sum_j
    // lambda_j b_j at the optimum), so that a nearly infeasible problem, whose duals are huge, is held to the same
    // relative duality gap as any other; the dual is feasible by construction.
    double residual = 0;
    const double scale = max_of(1.0, dot(w, w, D));
    for (int j = 0; j < M; ++j) {
      const double slack = dot(a + j * D, w, D) - b[j];
      residual = max_of(residual, max_of(-slack, lambda[j] * abs_of(slack) / scale));
    }
    result.kkt_residual = residual;
    if (residual <= kSvmTolerance && largest_move <= kSvmTolerance) {
      result.status = SvmStatus::solved;
      break;
    }
  }
  result.norm = sqrt(dot(w, w, D));
  return result;
}

// A run's converged-direction class (science.md section 2): global (it selects the optimal tokens), local (every
// support token of its selection scores below the selected one), neither, or not converged (its direction is not
// within kDirectionCos of its own selection's max-margin direction, or that SVM has no solution).
enum class DirectionClass : int { global = 0, local = 1, neither = 2, not_converged = 3 };
constexpr double kDirectionCos = 0.99;
constexpr double kSupportSlack = 1e-6;  // a constraint with |<a_j, w> - b_j| below this is tight (a support token)

// Constraints M and dimension D of a shape's selection SVM (p, vp: d; W: d^2), and the doubles of workspace
// attention_direction needs (64-bit: M D alone can pass 2^32 at sizes a study may ask for). Studies keep it at
// most kMaxSvmWorkspace, so every index the solvers form inside it (j D, row D, i K + k) fits an int.
constexpr long long kMaxSvmWorkspace = (1LL << 31) - 1;
SOFTFLOW_HD inline int svm_constraint_count(const ModelShape& shape) { return shape.inputs * (shape.n - 1); }
SOFTFLOW_HD inline int svm_dimension(const ModelShape& shape) {
  return shape.trainable == AttentionTrainable::w ? shape.d * shape.d : shape.d;
}
// Layout: the selection SVM (a: M x D, b: M, lambda: M), the joint model's v-SVM (N x d, N, N, d) and its
// per-input margins (N), the solver's scratch (for the larger of the two), then attention_direction's own: the
// direction (D), alpha and opt (N each), a key (d).
SOFTFLOW_HD inline long long svm_scratch_size(const ModelShape& shape) {
  const long long selection = margin_svm_scratch_size(svm_constraint_count(shape), svm_dimension(shape));
  const long long joint = margin_svm_scratch_size(shape.inputs, shape.d);
  return selection > joint ? selection : joint;
}
SOFTFLOW_HD inline long long svm_workspace_size(const ModelShape& shape) {
  const long long M = svm_constraint_count(shape), D = svm_dimension(shape), N = shape.inputs, d = shape.d;
  return (M * D + 2 * M) + (N * d + 2 * N + d) + N + svm_scratch_size(shape) + (D + 2 * N + d);
}

// Builds the selection SVM's constraints for alpha (N token indices, int or double holding whole numbers): a
// (M x D) and b (M), row i (T - 1) + k for the k-th token t != alpha_i of input i. b = input_margin[i] (the joint
// model's relaxed margins), or 1 when input_margin is null.
template <class Real, class Index>
SOFTFLOW_HD inline void selection_constraints(const ModelShape& shape, const AttentionView<Real>& view,
                                              const Index* alpha, const double* input_margin, double* a, double* b) {
  const int T = shape.n, d = shape.d, D = svm_dimension(shape);
  for (int i = 0; i < shape.inputs; ++i) {
    const int alpha_i = int(alpha[i]);
    const Real* selected = view.x + (i * T + alpha_i) * d;
    for (int t = 0, row = i * (T - 1); t < T; ++t) {
      if (t == alpha_i) continue;
      const Real* other = view.x + (i * T + t) * d;
      double* aj = a + row * D;
      if (shape.trainable == AttentionTrainable::w) {  // vec((x_sel - x_t) z_i^T), row-major like W
        for (int r = 0; r < d; ++r)
          for (int c = 0; c < d; ++c) aj[r * d + c] = (double(selected[r]) - double(other[r])) * double(view.z[i * d + c]);
      } else {  // W^T (x_sel - x_t)
        for (int c = 0; c < d; ++c) {
          double total = 0;
          for (int r = 0; r < d; ++r) total += double(view.w[r * d + c]) * (double(selected[r]) - double(other[r]));
          aj[c] = total;
        }
      }
      b[row] = input_margin ? input_margin[i] : 1.0;
      ++row;
    }
  }
}

// The max-margin direction of a selection: the p-SVM (p), W-SVM (W), or for vp the relaxed p-SVM after the v-SVM
// of the selected tokens. alpha: N token indices (int, or double holding whole numbers). w_out: D. work: the first
// parts of svm_workspace_size() (the SVMs', up to the scratch); its a and b rows stay there for the caller. Returns
// the (last) solve.
template <class Real, class Index>
SOFTFLOW_HD inline MarginSvmResult selection_svm(const ModelShape& shape, const AttentionView<Real>& view,
                                                 const Index* alpha, double* w_out, double* work) {
  const int M = svm_constraint_count(shape), D = svm_dimension(shape), N = shape.inputs, d = shape.d;
  double* a = work;
  double* b = a + M * D;
  double* lambda = b + M;
  double* av = lambda + M;
  double* bv = av + N * d;
  double* lambda_v = bv + N;
  double* v_mm = lambda_v + N;
  double* input_margin = v_mm + d;
  double* scratch = input_margin + N;
  const bool joint = shape.trainable == AttentionTrainable::vp;
  if (joint) {  // v-SVM: Y_i <v, x_{i alpha_i}> >= 1; its tight inputs get margin 1 in the relaxed p-SVM
    for (int i = 0; i < N; ++i) {
      for (int k = 0; k < d; ++k) av[i * d + k] = double(view.y[i]) * double(view.x[(i * shape.n + int(alpha[i])) * d + k]);
      bv[i] = 1;
    }
    const MarginSvmResult v_result = solve_margin_svm(N, d, av, bv, lambda_v, v_mm, scratch);
    if (v_result.status != SvmStatus::solved) return v_result;
    for (int i = 0; i < N; ++i) input_margin[i] = abs_of(dot(av + i * d, v_mm, d) - 1.0) <= kSupportSlack ? 1.0 : 0.0;
  }
  selection_constraints(shape, view, alpha, joint ? input_margin : nullptr, a, b);
  return solve_margin_svm(M, D, a, b, lambda, w_out, scratch);
}

// cos(theta_att, w) for the trained attention parameters (p, or W) and a direction w (D); NaN if either is 0.
template <class Real>
SOFTFLOW_HD inline double direction_cos(const ModelShape& shape, const AttentionView<Real>& view, const double* w) {
  const int D = svm_dimension(shape);
  const Real* trained = view.p ? view.p : view.w;
  double inner = 0, trained_sq = 0, w_sq = 0;
  for (int k = 0; k < D; ++k) {
    inner += double(trained[k]) * w[k];
    trained_sq += double(trained[k]) * double(trained[k]);
    w_sq += w[k] * w[k];
  }
  return trained_sq > 0 && w_sq > 0 ? inner / sqrt(trained_sq * w_sq) : NAN;
}

struct DirectionReport {
  double cos_optimal = NAN;  // cos(theta, theta_mm(opt)); NaN when that SVM has no solution
  double cos_final = NAN;    // cos(theta, theta_mm(alpha_final))
  DirectionClass direction = DirectionClass::not_converged;
};

// Classifies a run's direction at its current state. theta: state_size(); data: data_size();
// work: svm_workspace_size() doubles.
template <class Real>
SOFTFLOW_HD inline DirectionReport attention_direction(const ModelShape& shape, const Real* theta, const Real* data,
                                                       double* work) {
  const int N = shape.inputs, T = shape.n, d = shape.d, D = svm_dimension(shape);
  const AttentionView<Real> view(shape, theta, data);
  double* w_mm = work + (svm_workspace_size(shape) - (D + 2 * N + d));
  double* alpha = w_mm + D;            // N token indices, as whole doubles (the workspace holds doubles only)
  double* optimal = w_mm + D + N;      // N token indices
  double* key = w_mm + D + 2 * N;      // d: W p, or W z_i
  for (int i = 0; i < N; ++i) {
    optimal[i] = view.optimal_token(shape, i);
    if (i == 0 || !view.shared_key()) view.key_direction(shape, i, key);
    double largest = -INFINITY;
    alpha[i] = 0;
    for (int t = 0; t < T; ++t) {  // alpha_i = argmax_t of the logits (first on ties), as the softmax's argmax
      double logit = 0;
      for (int r = 0; r < d; ++r) logit += double(view.x[(i * T + t) * d + r]) * key[r];
      if (logit > largest) {
        largest = logit;
        alpha[i] = double(t);
      }
    }
  }
  DirectionReport report;
  if (selection_svm(shape, view, optimal, w_mm, work).status == SvmStatus::solved)
    report.cos_optimal = direction_cos(shape, view, w_mm);
  const MarginSvmResult final_svm = selection_svm(shape, view, alpha, w_mm, work);
  if (final_svm.status != SvmStatus::solved) return report;
  report.cos_final = direction_cos(shape, view, w_mm);
  if (!(report.cos_final >= kDirectionCos)) return report;
  bool global = true, local = true;
  const double* a = work;
  const double* b = a + svm_constraint_count(shape) * D;
  for (int i = 0; i < N; ++i) {
    global = global && alpha[i] == optimal[i];
    const int alpha_i = int(alpha[i]);
    const double selected_score = double(view.y[i]) * double(dot(view.x + (i * T + alpha_i) * d, view.v, d));
    for (int t = 0, row = i * (T - 1); t < T; ++t) {
      if (t == alpha_i) continue;
      const bool support = b[row] > 0 && abs_of(dot(a + row * D, w_mm, D) - b[row]) <= kSupportSlack;
      const double score = double(view.y[i]) * double(dot(view.x + (i * T + t) * d, view.v, d));
      if (support && !(selected_score > score)) local = false;
      ++row;
    }
  }
  report.direction = global ? DirectionClass::global : (local ? DirectionClass::local : DirectionClass::neither);
  return report;
}

}  // namespace softflow
