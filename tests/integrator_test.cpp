// Purpose: integrator quality: order of convergence of gd (1) and rk4 (4), dopri5 meeting its tolerance and landing
// exactly on checkpoint times, and the flow's invariants (sum a for every loss; (I - beta* beta*^T) V for logistic);
// each method and the observation staying inside integrator_workspace_size(shape, method).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "softflow/observables.h"
#include "test_support.h"

namespace softflow {
namespace {

// A smooth, non-trivial problem: logistic, d = 3, n = 4, O(1) initial state.
Study smooth_problem(const char* loss = "logistic") {
  return testing::study_with({{"loss", loss}, {"d", 3}, {"n", 4}, {"sigma_v", 0.8}, {"sigma_a", 0.6},
                              {"regression_samples", 5}, {"kappa", 2}});
}

std::vector<double> reference_solution(const testing::RunSetup<double>& setup, double t_end) {
  std::vector<double> theta = setup.theta;
  const AdaptiveRule tight = testing::tight_rule(1e-13);
  testing::integrate(setup.shape, Method::dopri5, 0, t_end, theta, setup.data, tight);
  return theta;
}

double error_with_step(const testing::RunSetup<double>& setup, Method method, double step, double t_end,
                       const std::vector<double>& reference) {
  std::vector<double> theta = setup.theta;
  testing::integrate(setup.shape, method, step, t_end, theta, setup.data);
  return testing::max_difference(theta, reference);
}

// Observed order of convergence at t = 2 from halving the step. Prints the errors on failure.
double observed_order(Method method, double coarse_step) {
  const auto setup = testing::run_setup<double>(smooth_problem(), 3);
  const auto reference = reference_solution(setup, 2.0);
  const double coarse = error_with_step(setup, method, coarse_step, 2.0, reference);
  const double fine = error_with_step(setup, method, coarse_step / 2, 2.0, reference);
  EXPECT_GT(coarse, fine) << "errors " << coarse << " " << fine;
  return std::log2(coarse / fine);
}

TEST(Integrators, GradientDescentIsFirstOrder) { EXPECT_NEAR(observed_order(Method::gd, 0.02), 1.0, 0.1); }

TEST(Integrators, Rk4IsFourthOrder) { EXPECT_NEAR(observed_order(Method::rk4, 0.2), 4.0, 0.3); }

TEST(Integrators, Dopri5MeetsItsToleranceAndTighterIsBetter) {
  const auto setup = testing::run_setup<double>(smooth_problem(), 5);
  const double t_end = 5.0;
  std::vector<double> reference = setup.theta;
  testing::integrate(setup.shape, Method::rk4, 1e-3, t_end, reference, setup.data);  // rk4 error ~1e-14 here
  double previous_error = 1.0;
  for (double rtol : {1e-5, 1e-8, 1e-11}) {
    AdaptiveRule rule;
    rule.rtol = rtol;
    rule.atol = rtol * 1e-2;
    std::vector<double> theta = setup.theta;
    const RunRecord rec = testing::integrate(setup.shape, Method::dopri5, 0, t_end, theta, setup.data, rule);
    const double error = testing::max_difference(theta, reference);
    EXPECT_LT(error, 10 * rtol) << "rtol " << rtol;
    EXPECT_LT(error, previous_error) << "rtol " << rtol;
    EXPECT_EQ(rec.t, t_end);  // lands exactly on the checkpoint
    EXPECT_EQ(rec.status, RunStatus::running);
    previous_error = error;
  }
}

TEST(Integrators, Dopri5LandsExactlyOnEveryCheckpoint) {
  const auto setup = testing::run_setup<double>(smooth_problem(), 1);
  std::vector<double> theta = setup.theta;
  std::vector<double> work(size_t(integrator_workspace_size(setup.shape, Method::dopri5)));
  RunRecord rec;
  for (double t : {0.1, 0.37, 1.0, 12.5, 1000.0}) {
    advance_adaptive(setup.shape, AdaptiveRule{}, t, StopRule{}, theta.data(), setup.data.data(), rec, work.data());
    EXPECT_EQ(rec.t, t);
  }
  EXPECT_GT(rec.steps, 0);
}

class InvariantTest : public ::testing::TestWithParam<const char*> {};

TEST_P(InvariantTest, SumOfLogitsIsConserved) {
  const auto setup = testing::run_setup<double>(smooth_problem(GetParam()), 2);
  const int n = setup.shape.n;
  const double* a0 = setup.theta.data() + setup.shape.matrix_size();
  double sum0 = 0;
  for (int j = 0; j < n; ++j) sum0 += a0[j];
  for (Method method : {Method::rk4, Method::dopri5}) {
    std::vector<double> theta = setup.theta;
    const AdaptiveRule tight = testing::tight_rule();
    testing::integrate(setup.shape, method, 0.01, 20.0, theta, setup.data, tight);
    double sum = 0;
    for (int j = 0; j < n; ++j) sum += theta[size_t(setup.shape.matrix_size() + j)];
    EXPECT_NEAR(sum, sum0, 1e-12) << GetParam() << " " << int(method);
    EXPECT_GT(testing::max_difference(theta, setup.theta), 1e-3);  // the state did move
  }
}

INSTANTIATE_TEST_SUITE_P(AllLosses, InvariantTest,
                         ::testing::Values("logistic", "square", "cross_entropy", "regression"));

TEST(Invariants, LogisticValueMatrixMovesOnlyAlongTarget) {
  const auto setup = testing::run_setup<double>(smooth_problem(), 4);
  const int d = setup.shape.d, n = setup.shape.n;
  const double* target = setup.data.data();
  for (Method method : {Method::rk4, Method::dopri5}) {
    std::vector<double> theta = setup.theta;
    const AdaptiveRule tight = testing::tight_rule();
    testing::integrate(setup.shape, method, 0.01, 50.0, theta, setup.data, tight);
    double drift = 0, moved = 0;
    for (int j = 0; j < n; ++j) {
      double along = 0;
      for (int i = 0; i < d; ++i) along += target[i] * (theta[size_t(i * n + j)] - setup.theta[size_t(i * n + j)]);
      for (int i = 0; i < d; ++i) {
        const double change = theta[size_t(i * n + j)] - setup.theta[size_t(i * n + j)];
        drift = std::max(drift, std::abs(change - target[i] * along));
        moved = std::max(moved, std::abs(change));
      }
    }
    EXPECT_LT(drift, 1e-12) << int(method);
    EXPECT_GT(moved, 1e-2) << int(method);
  }
}

TEST(Checkpoints, FixedStepIntegratorsLandOnWholeSteps) {
  const Study study = testing::study_with(
      {{"integrator", "gd"}, {"step", 0.3}, {"checkpoints", {{"schedule", "list"}, {"times", {0, 0.1, 1.0, 1.02, 10}}}}});
  const CellCheckpoints checkpoints = cell_checkpoints(study, study.cells[0]);
  // 0.1 rounds to step 0 (a duplicate of t = 0, dropped); 1.0 and 1.02 both round to step 3.
  ASSERT_EQ(checkpoints.steps, (std::vector<long long>{0, 3, 33}));
  EXPECT_DOUBLE_EQ(checkpoints.times[1], 0.9);
  EXPECT_DOUBLE_EQ(checkpoints.times[2], 9.9);
}

}  // namespace
}  // namespace softflow

namespace softflow {
namespace {

TEST(Integrators, Dopri5NeverLeavesASliverBeforeACheckpoint) {
  // A fixed initial step that nearly divides the interval: the last step must stretch, not leave 1e-13 behind.
  const auto setup = testing::run_setup<double>(smooth_problem(), 2);
  AdaptiveRule rule;
  rule.initial_step = 0.1 - 1e-14;
  rule.rtol = 1e-3;
  rule.atol = 1e-3;
  std::vector<double> theta = setup.theta;
  const RunRecord rec = testing::integrate(setup.shape, Method::dopri5, 0, 0.1, theta, setup.data, rule);
  EXPECT_EQ(rec.status, RunStatus::running);
  EXPECT_EQ(rec.t, 0.1);
  EXPECT_EQ(rec.steps, 1);
}

// Each method's workspace is integrator_workspace_size(shape, method) (gd and normalized gd: one state-sized vector
// and the scratch; rk4: five; dopri5: nine): a guard of NaN past that size is never written, by the integrator or by
// observe_run on the same workspace, for every model family; and a layout that put the scratch of gd past the
// gradient's vector (as the one 9-vector layout did) would overwrite the guard.
TEST(Integrators, EachMethodStaysInsideItsWorkspace) {
  const std::vector<Study> studies = {
      smooth_problem("logistic"), smooth_problem("regression"),
      testing::study_with({{"model", "tied"}, {"n", 5}}),
      testing::study_with({{"model", "attention"}, {"n", nullptr}, {"trainable", "vp"}, {"inputs", 3}, {"tokens", 4},
                           {"d", 5}})};
  for (const Study& study : studies) {
    const auto setup = testing::run_setup<double>(study, 2);
    for (Method method : {Method::gd, Method::normalized_gd, Method::rk4, Method::dopri5}) {
      const size_t size = size_t(integrator_workspace_size(setup.shape, method)), guard = 64;
      const int p = setup.shape.state_size();
      EXPECT_EQ(size, size_t(integrator_stage_vectors(method) * p + setup.shape.scratch_size()));
      std::vector<double> work(size + guard, std::numeric_limits<double>::quiet_NaN());
      std::vector<double> theta = setup.theta;
      RunRecord rec;
      if (method == Method::dopri5)
        advance_adaptive(setup.shape, AdaptiveRule{}, 0.5, StopRule{}, theta.data(), setup.data.data(), rec,
                         work.data());
      else
        advance_fixed_step(setup.shape, method, 0.05, 0, 10, StopRule{}, theta.data(), setup.data.data(), rec,
                           work.data());
      double values[kStateObservableCount];
      observe_run(setup.shape, method == Method::dopri5, rec.t, StopRule{}, theta.data(), setup.theta.data(),
                  setup.data.data(), rec, work.data(), work.data() + p, values);
      EXPECT_EQ(rec.status, RunStatus::running);
      for (size_t i = size; i < size + guard; ++i)
        ASSERT_TRUE(std::isnan(work[i])) << study.cells[0].shape.state_size() << " entries, method "
                                          << int(method) << ": workspace entry " << i << " of " << size
                                          << " written";
    }
  }
}

}  // namespace
}  // namespace softflow
