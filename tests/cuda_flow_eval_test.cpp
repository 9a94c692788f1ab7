// Purpose: the shared vector field evaluated by a CUDA kernel matches the CPU evaluation (float64 to rounding,
// float32 within a few ulps of the CPU float32 result). Skips with a reason where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_check.h"
#include "device_flow_eval.h"
#include "test_support.h"

namespace softflow {
namespace {

template <class Real>
void expect_device_matches_host(const nlohmann::json& changes, double tolerance) {
  const Study study = testing::study_with(changes);
  const ModelShape shape = study.cells[0].shape;
  const int runs = 300;
  std::vector<Real> theta, data;
  for (int run = 0; run < runs; ++run) {
    const auto setup = testing::run_setup<Real>(study, std::uint32_t(run));
    theta.insert(theta.end(), setup.theta.begin(), setup.theta.end());
    data.insert(data.end(), setup.data.begin(), setup.data.end());
  }
  std::vector<Real> device_dtheta, device_loss;
  evaluate_flow_on_device(shape, theta, data, device_dtheta, device_loss);
  std::vector<Real> host_dtheta(size_t(shape.state_size())), scratch(size_t(shape.scratch_size()));
  for (int run = 0; run < runs; ++run) {
    const size_t p = size_t(shape.state_size());
    const FlowEval<Real> eval = evaluate_flow(shape, theta.data() + run * p, data.data() + run * shape.data_size(),
                                              host_dtheta.data(), scratch.data());
    EXPECT_NEAR(double(device_loss[size_t(run)]), double(eval.loss), tolerance * std::max(1.0, std::abs(double(eval.loss))));
    for (size_t i = 0; i < p; ++i)
      ASSERT_NEAR(double(device_dtheta[run * p + i]), double(host_dtheta[i]),
                  tolerance * std::max(1.0, std::abs(double(host_dtheta[i]))))
          << "run " << run << " component " << i;
  }
}

class DeviceFlowTest : public ::testing::TestWithParam<nlohmann::json> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(DeviceFlowTest, Float64MatchesHost) {
  nlohmann::json changes = GetParam();
  changes["sigma_a"] = 0.7;
  expect_device_matches_host<double>(changes, 1e-13);
}

TEST_P(DeviceFlowTest, Float32MatchesHost) {
  nlohmann::json changes = GetParam();
  changes["sigma_a"] = 0.7;
  expect_device_matches_host<float>(changes, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AllLosses, DeviceFlowTest,
                         ::testing::Values(nlohmann::json{{"loss", "logistic"}},
                                           nlohmann::json{{"loss", "square"}},
                                           nlohmann::json{{"loss", "cross_entropy"}},
                                           nlohmann::json{{"loss", "regression"}, {"d", 6}, {"n", 5}},
                                           nlohmann::json{{"model", "tied"}}),
                         [](const ::testing::TestParamInfo<nlohmann::json>& info) {
                           return info.param.contains("model") ? std::string("tied")
                                                               : info.param["loss"].get<std::string>();
                         });

}  // namespace
}  // namespace softflow
