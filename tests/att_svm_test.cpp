// Purpose: the att-SVM solver (include/softflow/att_svm.h) against hand-solved 2-D instances, the KKT conditions on
// random feasible instances, the objectives the papers' own solver prints for the single-input toy set, and the
// classification of a run's direction on states built by hand.
#include <gtest/gtest.h>

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
  out.result = solve_margin_svm(M, D, a.data(), b.data(), out.lambda.data(), out.w.data());
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

TEST(MarginSvm, InfeasibleInstancesAreNotReportedSolved) {
  EXPECT_EQ(solve(2, {1, 0, 0, 0}, {1, 1}).result.status, SvmStatus::infeasible);  // 0 >= 1
  const Solved opposed = solve(2, {1, 0, -1, 0}, {1, 1});                           // w1 >= 1 and -w1 >= 1
  EXPECT_NE(opposed.result.status, SvmStatus::solved);
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
