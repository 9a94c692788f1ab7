// Purpose: the attention family's vector field (include/softflow/attention.h) against central finite differences of
// its own loss, for every trainable set (p, W, (v, p)) and margin loss (logistic, linear, exponential), in float64
// on random data; and the FlowEval bookkeeping (||grad L||^2, s_max, winner) on a hand-checkable instance.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "softflow/attention.h"

namespace softflow {
namespace {

struct Instance {
  ModelShape shape;
  std::vector<double> theta, data;
};

// Gaussian tokens, fixed parameters and state (scale 0.7), labels +-1.
Instance random_instance(AttentionTrainable trainable, LossKind loss, unsigned seed) {
  Instance out;
  out.shape.model = ModelKind::attention;
  out.shape.trainable = trainable;
  out.shape.loss = loss;
  out.shape.inputs = 3;
  out.shape.n = 4;  // tokens
  out.shape.d = 3;
  std::mt19937 engine(seed);
  std::normal_distribution<double> normal(0.0, 0.7);
  out.theta.resize(size_t(out.shape.state_size()));
  out.data.resize(size_t(out.shape.data_size()));
  for (double& x : out.theta) x = normal(engine);
  for (double& x : out.data) x = normal(engine);
  double* labels = out.data.data() + out.shape.inputs * out.shape.n * out.shape.d;
  for (int i = 0; i < out.shape.inputs; ++i) labels[i] = i % 2 ? -1.0 : 1.0;
  return out;
}

FlowEval<double> evaluate(const Instance& instance, std::vector<double>& dtheta) {
  std::vector<double> scratch(size_t(instance.shape.scratch_size()));
  dtheta.assign(instance.theta.size(), 0.0);
  return attention_flow(instance.shape, instance.theta.data(), instance.data.data(), dtheta.data(), scratch.data());
}

TEST(AttentionFlow, IsMinusTheFiniteDifferenceGradientOfTheLoss) {
  unsigned seed = 7;
  for (const AttentionTrainable trainable : {AttentionTrainable::p, AttentionTrainable::w, AttentionTrainable::vp})
    for (const LossKind loss : {LossKind::logistic, LossKind::linear, LossKind::exponential}) {
      Instance instance = random_instance(trainable, loss, seed++);
      std::vector<double> dtheta, ignored;
      const FlowEval<double> eval = evaluate(instance, dtheta);
      double grad_sq = 0;
      for (size_t k = 0; k < dtheta.size(); ++k) {
        const double h = 1e-6, saved = instance.theta[k];
        instance.theta[k] = saved + h;
        const double up = evaluate(instance, ignored).loss;
        instance.theta[k] = saved - h;
        const double down = evaluate(instance, ignored).loss;
        instance.theta[k] = saved;
        const double numeric = (up - down) / (2 * h);
        EXPECT_NEAR(-dtheta[k], numeric, 1e-7 * std::max(1.0, std::abs(numeric)))
            << "trainable " << int(trainable) << " loss " << int(loss) << " entry " << k;
        grad_sq += dtheta[k] * dtheta[k];
      }
      EXPECT_NEAR(eval.grad_norm_sq, grad_sq, 1e-14 * std::max(1.0, grad_sq));
      EXPECT_GT(grad_sq, 1e-6);  // a gradient that vanished would make the comparison above empty
    }
}

TEST(AttentionFlow, HandCheckedInstance) {
  // One input, two tokens in d = 1: X = [1; 0], W = 1, v = 1, p = 0, Y = 1: logits (0, 0), s = (1/2, 1/2),
  // f = 1/2, q = s .* (Xv - f) = (1/4, -1/4), X^T q = 1/4, c = l'(1/2) = -1 / (1 + e^{1/2}) (logistic),
  // grad_p = c W^T X^T q = c / 4.
  Instance instance;
  instance.shape.model = ModelKind::attention;
  instance.shape.inputs = 1;
  instance.shape.n = 2;
  instance.shape.d = 1;
  instance.theta = {0.0};
  instance.data = {1.0, 0.0, /*Y*/ 1.0, /*W*/ 1.0, /*v*/ 1.0};
  std::vector<double> dtheta;
  const FlowEval<double> eval = evaluate(instance, dtheta);
  const double c = -1.0 / (1.0 + std::exp(0.5));
  EXPECT_NEAR(dtheta[0], -c / 4, 1e-15);
  EXPECT_NEAR(eval.loss, std::log1p(std::exp(-0.5)), 1e-15);
  EXPECT_DOUBLE_EQ(eval.s_max, 0.5);
  EXPECT_EQ(eval.winner, 0);  // ties go to the first token
  EXPECT_NEAR(eval.grad_norm_sq, c * c / 16, 1e-15);
}

}  // namespace
}  // namespace softflow
