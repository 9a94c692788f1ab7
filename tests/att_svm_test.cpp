// Purpose: the att-SVM solver (include/softflow/att_svm.h) against hand-solved 2-D instances, the KKT conditions on
// random feasible instances, infeasibility certificates, the exact starts (Wolfe's least-norm point,
// min_norm_point.h; least-distance programming, least_distance.h), the objectives the papers' own solver prints
// for the single-input toy set, and the classification of a run's direction on states built by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "softflow/att_svm.h"

namespace softflow {
namespace {

struct Solved {
  MarginSvmResult result;
  std::vector<double> lambda, w;
};

Solved solve(int D, const std::vector<double>& a, const std::vector<double>& b) {
  Solved out;
  const int M = int(b.size());
  out.lambda.resize(size_t(M));
  out.w.resize(size_t(D));
  std::vector<double> scratch(size_t(margin_svm_scratch_size(M, D)));
  out.result = solve_margin_svm(M, D, a.data(), b.data(), out.lambda.data(), out.w.data(), scratch.data());
  return out;
}

TEST(MarginSvm, HandSolvedInstanceWithAnInactiveConstraint) {
  // min ||w||^2 / 2 s.t. w1 >= 1, 2 w2 >= 1, w1 + w2 >= 1: w = (1, 1/2), lambda = (1, 1/4, 0).
  const Solved s = solve(2, {1, 0, 0, 2, 1, 1}, {1, 1, 1});
  ASSERT_EQ(s.result.status, SvmStatus::solved);
  EXPECT_NEAR(s.w[0], 1.0, 1e-9);
  EXPECT_NEAR(s.w[1], 0.5, 1e-9);
  EXPECT_NEAR(s.lambda[0], 1.0, 1e-9);
  EXPECT_NEAR(s.lambda[1], 0.25, 1e-9);
  EXPECT_EQ(s.lambda[2], 0.0);
  EXPECT_LE(s.result.kkt_residual, kSvmTolerance);
  EXPECT_NEAR(s.result.norm, std::sqrt(1.25), 1e-9);
}

TEST(MarginSvm, SymmetricPairAndRelaxedMargin) {
  const Solved pair = solve(2, {1, 1, 1, -1}, {1, 1});  // w = (1, 0), both tight with lambda 1/2
  ASSERT_EQ(pair.result.status, SvmStatus::solved);
  EXPECT_NEAR(pair.w[0], 1.0, 1e-9);
  EXPECT_NEAR(pair.w[1], 0.0, 1e-9);
  EXPECT_NEAR(pair.lambda[0], 0.5, 1e-9);
  EXPECT_NEAR(pair.lambda[1], 0.5, 1e-9);
  const Solved relaxed = solve(2, {1, 0, 0, 1}, {1, 0});  // w1 >= 1, w2 >= 0: w = (1, 0)
  ASSERT_EQ(relaxed.result.status, SvmStatus::solved);
  EXPECT_NEAR(relaxed.w[0], 1.0, 1e-9);
  EXPECT_NEAR(relaxed.w[1], 0.0, 1e-9);
}

// The certificate an infeasible problem reports (Farkas): lambda >= 0 with sum_j lambda_j b_j = 1 whose
// combination of the a_j is (numerically) 0, so that no w has <a_j, w> >= b_j for every j. For unit margins the
// weights are convex.
void expect_infeasibility_certificate(const Solved& s, int D, const std::vector<double>& a,
                                      const std::vector<double>& b) {
  ASSERT_EQ(s.result.status, SvmStatus::infeasible);
  double total = 0;
  std::vector<double> combination(size_t(D), 0.0);
  for (size_t j = 0; j < s.lambda.size(); ++j) {
    EXPECT_GE(s.lambda[j], 0.0);
    total += s.lambda[j] * b[j];
    for (int k = 0; k < D; ++k) combination[size_t(k)] += s.lambda[j] * a[j * size_t(D) + size_t(k)];
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
  double norm_sq = 0;
  for (double c : combination) norm_sq += c * c;
  EXPECT_LE(norm_sq, 1.0 / kSvmDualBound);
}

TEST(MarginSvm, InfeasibleInstancesAreCertified) {
  EXPECT_EQ(solve(2, {1, 0, 0, 0}, {1, 1}).result.status, SvmStatus::infeasible);  // 0 >= 1
  const std::vector<double> opposed = {1, 0, -1, 0};                                // w1 >= 1 and -w1 >= 1
  const Solved s = solve(2, opposed, {1, 1});
  expect_infeasibility_certificate(s, 2, opposed, {1, 1});
  EXPECT_NEAR(s.lambda[0], 0.5, 1e-12);
  const std::vector<double> around_origin = {1, 0, -1, 1, -1, -1, 3, 3};  // 0 inside the triangle of the first 3
  expect_infeasibility_certificate(solve(2, around_origin, {1, 1, 1, 1}), 2, around_origin, {1, 1, 1, 1});
  // Ten Gaussian points in R^3 surround the origin in most draws (P = 1 - 2^-9 sum_{k<3} C(9, k) = 0.91).
  std::mt19937 engine(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  int certified = 0;
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<double> a(30);
    for (double& x : a) x = normal(engine);
    const Solved g = solve(3, a, std::vector<double>(10, 1.0));
    if (g.result.status == SvmStatus::solved) {  // the origin fell outside this hull
      EXPECT_LE(g.result.kkt_residual, kSvmTolerance);
      continue;
    }
    expect_infeasibility_certificate(g, 3, a, std::vector<double>(10, 1.0));
    ++certified;
  }
  EXPECT_GE(certified, 4);
  // Relaxed instances (margins 0 and 1) are certified by the least-distance solver: w1 >= 1 and -w1 >= 0;
  // w1 >= 1, w2 >= 0 and -w1 - w2 >= 0.
  const std::vector<double> relaxed = {1, 0, -1, 0}, relaxed3 = {1, 0, 0, 1, -1, -1};
  expect_infeasibility_certificate(solve(2, relaxed, {1, 0}), 2, relaxed, {1, 0});
  expect_infeasibility_certificate(solve(2, relaxed3, {1, 0, 0}), 2, relaxed3, {1, 0, 0});
}

TEST(MarginSvm, NearlyInfeasibleInstanceIsSolvedWithItsLargeNorm) {
  // w1 + 1e-3 w2 >= 1 and -w1 + 1e-3 w2 >= 1: w = (0, 1000), ||w||^2 = 1e6 below the bound 1e12.
  const Solved s = solve(2, {1, 1e-3, -1, 1e-3}, {1, 1});
  ASSERT_EQ(s.result.status, SvmStatus::solved);
  EXPECT_NEAR(s.w[0], 0.0, 1e-6);
  EXPECT_NEAR(s.w[1], 1000.0, 1e-6);
  EXPECT_LE(s.result.kkt_residual, kSvmTolerance);
}

// Relaxed problems (margins 0 and 1) start the ascent at the least-distance solution: at most 2 sweeps to the
// KKT conditions; random relaxed problems around a common direction, and Gaussian ones (often infeasible: then
// certified).
TEST(MarginSvm, RelaxedProblemsAreSolvedOrCertifiedByLeastDistance) {
  std::mt19937 engine(23);
  std::normal_distribution<double> normal(0.0, 1.0);
  int solved = 0, certified = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const int M = 3 + trial % 8, D = 2 + trial % 5;
    const bool around_direction = trial % 2 == 0;
    std::vector<double> direction(static_cast<size_t>(D)), a(static_cast<size_t>(M * D)), b(static_cast<size_t>(M));
    for (double& x : direction) x = around_direction ? normal(engine) : 0.0;
    for (int j = 0; j < M; ++j) {
      for (int k = 0; k < D; ++k) a[size_t(j * D + k)] = direction[size_t(k)] + 0.7 * normal(engine);
      b[size_t(j)] = j % 3 == 2 ? 0.0 : 1.0;
    }
    const Solved s = solve(D, a, b);
    if (s.result.status == SvmStatus::infeasible) {
      expect_infeasibility_certificate(s, D, a, b);
      ++certified;
      continue;
    }
    ASSERT_EQ(s.result.status, SvmStatus::solved) << "trial " << trial;
    EXPECT_LE(s.result.sweeps, 2) << "trial " << trial;
    EXPECT_LE(s.result.kkt_residual, kSvmTolerance) << "trial " << trial;
    ++solved;
  }
  EXPECT_GE(solved, 15);
  EXPECT_GE(certified, 5);
}

TEST(MarginSvm, DuplicatedAndCollinearConstraintsAreSolved) {
  // A point listed twice, and three collinear points: Wolfe's corral meets affinely dependent points (or the
  // ascent takes over); either way the answer meets the KKT conditions. w1 >= 1 (twice), w1 + w2 >= 1,
  // 2 w1 + 2 w2 >= 1, 3 w1 + 3 w2 >= 1: w = (1, 0).
  const Solved s = solve(2, {1, 0, 1, 0, 1, 1, 2, 2, 3, 3}, {1, 1, 1, 1, 1});
  ASSERT_EQ(s.result.status, SvmStatus::solved);
  EXPECT_NEAR(s.w[0], 1.0, 1e-9);
  EXPECT_NEAR(s.w[1], 0.0, 1e-9);
  EXPECT_LE(s.result.kkt_residual, kSvmTolerance);
}

TEST(MinNormPoint, HandSolvedInstances) {
  std::vector<double> weight(3), x(2), work(size_t(min_norm_point_workspace(3, 2)));
  const std::vector<double> square = {1, 0, 0, 1};  // nearest (1/2, 1/2), on the edge
  MinNormPointResult r = min_norm_point(2, 2, square.data(), weight.data(), x.data(), work.data());
  ASSERT_TRUE(r.converged);
  EXPECT_NEAR(x[0], 0.5, 1e-15);
  EXPECT_NEAR(x[1], 0.5, 1e-15);
  EXPECT_NEAR(weight[0], 0.5, 1e-15);
  EXPECT_NEAR(r.norm_sq, 0.5, 1e-15);
  const std::vector<double> segment = {2, 0, 0, 2, 1, 1};  // (1, 1) lies on the segment: any weights give it
  r = min_norm_point(3, 2, segment.data(), weight.data(), x.data(), work.data());
  ASSERT_TRUE(r.converged);
  EXPECT_NEAR(x[0], 1.0, 1e-12);
  EXPECT_NEAR(x[1], 1.0, 1e-12);
  const std::vector<double> vertex = {3, 4, 5, 4, 3, 6};  // nearest is the vertex (3, 4) itself
  r = min_norm_point(3, 2, vertex.data(), weight.data(), x.data(), work.data());
  ASSERT_TRUE(r.converged);
  EXPECT_EQ(weight[0], 1.0);
  EXPECT_NEAR(r.norm_sq, 25.0, 1e-12);
}

// Unit-margin problems start the ascent at Wolfe's exact solution: it only confirms the KKT conditions.
TEST(MarginSvm, UnitMarginProblemsAreSolvedByTheLeastNormPoint) {
  std::mt19937 engine(17);
  std::normal_distribution<double> normal(0.0, 1.0);
  int solved = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const int M = 2 + trial % 9, D = 2 + trial % 6;
    std::vector<double> direction(static_cast<size_t>(D)), a(static_cast<size_t>(M * D));
    for (double& x : direction) x = normal(engine);
    for (int j = 0; j < M; ++j)  // around a common direction: feasible
      for (int k = 0; k < D; ++k) a[size_t(j * D + k)] = direction[size_t(k)] + 0.7 * normal(engine);
    const Solved s = solve(D, a, std::vector<double>(size_t(M), 1.0));
    if (s.result.status == SvmStatus::infeasible) {
      expect_infeasibility_certificate(s, D, a, std::vector<double>(size_t(M), 1.0));
      continue;
    }
    ASSERT_EQ(s.result.status, SvmStatus::solved) << "trial " << trial;
    EXPECT_LE(s.result.sweeps, 2) << "trial " << trial;
    EXPECT_LE(s.result.kkt_residual, kSvmTolerance) << "trial " << trial;
    ++solved;
  }
  EXPECT_GE(solved, 25);
}

TEST(MarginSvm, MeetsTheKktConditionsOnRandomFeasibleInstances) {
  std::mt19937 engine(11);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 20; ++trial) {
    const int M = 3 + trial % 7, D = 2 + trial % 5;
    std::vector<double> direction(static_cast<size_t>(D)), a(static_cast<size_t>(M * D)), b(static_cast<size_t>(M));
    for (double& x : direction) x = normal(engine);
    for (int j = 0; j < M; ++j) {  // a_j = direction + noise, shifted so that <a_j, direction> > 0: feasible
      double along = 0, norm_sq = 0;
      for (int k = 0; k < D; ++k) norm_sq += direction[k] * direction[k];
      for (int k = 0; k < D; ++k) a[j * D + k] = direction[k] + 0.5 * normal(engine);
      for (int k = 0; k < D; ++k) along += a[j * D + k] * direction[k];
      if (along < 0.1 * norm_sq)
        for (int k = 0; k < D; ++k) a[j * D + k] += (0.1 * norm_sq - along) / norm_sq * direction[k];
      b[j] = j % 4 == 3 ? 0.0 : 1.0;
    }
    const Solved s = solve(D, a, b);
    ASSERT_EQ(s.result.status, SvmStatus::solved) << "trial " << trial;
    std::vector<double> combination(size_t(D), 0.0);
    for (int j = 0; j < M; ++j) {
      double inner = 0;
      for (int k = 0; k < D; ++k) inner += a[j * D + k] * s.w[k];
      EXPECT_GE(inner, b[j] - 1e-8) << "primal feasibility, trial " << trial;
      EXPECT_GE(s.lambda[j], 0.0);
      EXPECT_LE(s.lambda[j] * std::abs(inner - b[j]), 1e-8) << "complementary slackness, trial " << trial;
      for (int k = 0; k < D; ++k) combination[k] += s.lambda[j] * a[j * D + k];
    }
    for (int k = 0; k < D; ++k) EXPECT_NEAR(combination[k], s.w[k], 1e-9) << "stationarity, trial " << trial;
  }
}

// The single-input toy set of ucr-optml/max_margin_attention (single_input_converge.ipynb): T = 3, d = 3,
// W = diag(1, 1, 0), v = (0, 0, 1). Its cvxopt log prints objectives ||p_mm||^2 / 2 of 0.49505 (selection 0) and
// 0.5 (selection 1).
struct ToyRun {
  ModelShape shape;
  std::vector<double> theta, data;
};
ToyRun single_input_toy(double third_token_score, std::vector<double> p) {
  ToyRun run;
  run.shape.model = ModelKind::attention;
  run.shape.inputs = 1;
  run.shape.n = 3;
  run.shape.d = 3;
  run.theta = std::move(p);
  run.data = {-0.1, 1, 1, 1, 0, 0.9, 0, 0, third_token_score, /*Y*/ 1, /*W*/ 1, 0, 0, 0, 1, 0, 0, 0, 0, /*v*/ 0, 0, 1};
  return run;
}

// Sizes a study may ask for (inputs * tokens * d <= 2^26) take the workspace past 2^32 doubles: trainable W with
// d = 128 has M D = (2^17 * 2) * 128^2 = 2^32 entries in its constraint matrix alone, which an int wrapped to 0.
TEST(AttentionSvm, WorkspaceSizeIsCountedIn64Bits) {
  ModelShape shape;
  shape.model = ModelKind::attention;
  shape.trainable = AttentionTrainable::w;
  shape.inputs = 1 << 17;
  shape.n = 3;
  shape.d = 128;
  const long long M = svm_constraint_count(shape), D = svm_dimension(shape);
  ASSERT_EQ(M, 1LL << 18);
  ASSERT_EQ(D, 1LL << 14);
  const long long K = D + 1;  // the corral's capacity: min(M, D + 1)
  const long long scratch = std::max(2 * K * K + 4 * K, K * K + 3 * K + D);
  EXPECT_EQ(svm_scratch_size(shape), scratch);
  EXPECT_EQ(svm_workspace_size(shape), (M * D + 2 * M) + (shape.inputs * 128LL + 2LL * shape.inputs + 128) +
                                           shape.inputs + scratch + (D + 2LL * shape.inputs + 128));
  EXPECT_GT(svm_workspace_size(shape), kMaxSvmWorkspace);
}

TEST(AttentionSvm, SingleInputObjectivesMatchThePapersSolver) {
  const ToyRun run = single_input_toy(0.9, {0, 0, 0});
  const AttentionView<double> view(run.shape, run.theta.data(), run.data.data());
  std::vector<double> work(size_t(svm_workspace_size(run.shape))), w(3);
  const int global_selection[1] = {0}, local_selection[1] = {1};
  MarginSvmResult r = selection_svm(run.shape, view, global_selection, w.data(), work.data());
  ASSERT_EQ(r.status, SvmStatus::solved);
  EXPECT_NEAR(0.5 * r.norm * r.norm, 0.49505, 5e-6);
  EXPECT_NEAR(w[0], -0.1 / 1.01, 1e-9);  // only the constraint against token 2 is tight: p = a / ||a||^2
  EXPECT_NEAR(w[1], 1.0 / 1.01, 1e-9);
  r = selection_svm(run.shape, view, local_selection, w.data(), work.data());
  ASSERT_EQ(r.status, SvmStatus::solved);
  EXPECT_NEAR(0.5 * r.norm * r.norm, 0.5, 1e-9);
}

TEST(AttentionSvm, ClassifiesDirectionsBuiltAlongEachSvmSolution) {
  // Along p_mm(0) in the global setting: global. Along p_mm(1) = (1, 0, 0) in the local setting: its one support
  // token (2) scores 0, below token 1's 0.9: local. The same direction in the global setting, where token 2 scores
  // 0.9 like token 1: neither. A direction far from every selection's SVM: not converged.
  const ToyRun global = single_input_toy(0.9, {-100 * 0.1 / 1.01, 100 * 1.0 / 1.01, 0});
  std::vector<double> work(size_t(svm_workspace_size(global.shape)));
  DirectionReport report = attention_direction(global.shape, global.theta.data(), global.data.data(), work.data());
  EXPECT_EQ(report.direction, DirectionClass::global);
  EXPECT_NEAR(report.cos_final, 1.0, 1e-9);
  EXPECT_NEAR(report.cos_optimal, 1.0, 1e-9);
  const ToyRun local = single_input_toy(0.0, {100, 0, 0});
  report = attention_direction(local.shape, local.theta.data(), local.data.data(), work.data());
  EXPECT_EQ(report.direction, DirectionClass::local);
  EXPECT_NEAR(report.cos_final, 1.0, 1e-9);
  EXPECT_LT(report.cos_optimal, 0.5);
  const ToyRun neither = single_input_toy(0.9, {100, 0, 0});  // token 2 now scores 0.9 = token 1's: not below it
  report = attention_direction(neither.shape, neither.theta.data(), neither.data.data(), work.data());
  EXPECT_EQ(report.direction, DirectionClass::neither);
  const ToyRun wandering = single_input_toy(0.9, {1, 1, 0});
  report = attention_direction(wandering.shape, wandering.theta.data(), wandering.data.data(), work.data());
  EXPECT_EQ(report.direction, DirectionClass::not_converged);
}

}  // namespace
}  // namespace softflow
