// Purpose: every loss's analytic gradient flow (-grad L) against central finite differences of the loss, float64,
// at random states.
#include <gtest/gtest.h>

#include <cmath>

#include "softflow/flow.h"
#include "test_support.h"

namespace softflow {
namespace {

struct GradientCase {
  const char* name;
  nlohmann::json study;
};

class GradientTest : public ::testing::TestWithParam<GradientCase> {};

TEST_P(GradientTest, MatchesCentralFiniteDifferences) {
  // Random states away from the origin: sigma_v = 0.7, a ~ 0.3 + 0.8 N(0, 1).
  nlohmann::json changes = GetParam().study;
  changes["sigma_v"] = 0.7;
  changes["mu_a"] = 0.3;
  changes["sigma_a"] = 0.8;
  const Study study = testing::study_with(changes);
  for (std::uint32_t run = 0; run < 5; ++run) {
    auto setup = testing::run_setup<double>(study, run);
    const ModelShape& shape = setup.shape;
    std::vector<double> dtheta(setup.theta.size()), ignored(setup.theta.size()),
        scratch(size_t(shape.scratch_size()));
    const FlowEval<double> eval = evaluate_flow(shape, setup.theta.data(), setup.data.data(), dtheta.data(),
                                                scratch.data());
    auto loss_at = [&](const std::vector<double>& theta) {
      return evaluate_flow(shape, theta.data(), setup.data.data(), ignored.data(), scratch.data()).loss;
    };
    double norm_sq = 0;
    for (size_t i = 0; i < setup.theta.size(); ++i) {
      const double eps = 1e-5 * std::max(1.0, std::abs(setup.theta[i]));
      std::vector<double> plus = setup.theta, minus = setup.theta;
      plus[i] += eps;
      minus[i] -= eps;
      const double numeric = -(loss_at(plus) - loss_at(minus)) / (2 * eps);
      EXPECT_NEAR(dtheta[i], numeric, 1e-7 * std::max(1.0, std::abs(numeric)))
          << GetParam().name << " run " << run << " component " << i;
      norm_sq += dtheta[i] * dtheta[i];
    }
    EXPECT_NEAR(eval.grad_norm_sq, norm_sq, 1e-12 * std::max(1.0, norm_sq));
    EXPECT_NEAR(eval.loss, loss_at(setup.theta), 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllLosses, GradientTest,
    ::testing::Values(GradientCase{"logistic", {{"loss", "logistic"}, {"d", 5}, {"n", 4}}},
                      GradientCase{"square", {{"loss", "square"}, {"d", 3}, {"n", 6}}},
                      GradientCase{"cross_entropy", {{"loss", "cross_entropy"}, {"d", 6}, {"n", 5}}},
                      GradientCase{"regression",
                                   {{"loss", "regression"}, {"d", 4}, {"n", 3}, {"regression_samples", 7}, {"kappa", 3}}},
                      GradientCase{"tied", {{"model", "tied"}, {"loss", "logistic"}, {"d", 5}, {"n", 5}}}),
    [](const ::testing::TestParamInfo<GradientCase>& info) { return std::string(info.param.name); });

TEST(LossNumerics, LogisticIsStableForLargeMargins) {
  EXPECT_NEAR(logistic_loss(800.0), 0.0, 1e-300);
  EXPECT_NEAR(logistic_loss(-800.0), 800.0, 1e-9);
  EXPECT_EQ(logistic_weight(-800.0), 1.0);
  EXPECT_GT(logistic_weight(700.0), 0.0);
  EXPECT_NEAR(logistic_weight(0.0), 0.5, 0.0);
}

}  // namespace
}  // namespace softflow
