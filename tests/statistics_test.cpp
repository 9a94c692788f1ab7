// Purpose: the statistics of one observable: type-7 quantiles, block-merged moments equal to a direct computation,
// non-finite values excluded, histograms that account for every value.
#include <gtest/gtest.h>

#include <cmath>

#include "softflow/moments.h"
#include "statistics.h"

namespace softflow {
namespace {

TEST(Statistics, QuantilesInterpolateLinearlyBetweenOrderStatistics) {
  const std::vector<double> sorted = {1, 2, 3, 4, 10};
  EXPECT_DOUBLE_EQ(quantile_of_sorted(sorted, 0.0), 1);
  EXPECT_DOUBLE_EQ(quantile_of_sorted(sorted, 0.5), 3);
  EXPECT_DOUBLE_EQ(quantile_of_sorted(sorted, 1.0), 10);
  EXPECT_DOUBLE_EQ(quantile_of_sorted(sorted, 0.9), 4 + 0.6 * 6);  // position 3.6
  EXPECT_DOUBLE_EQ(quantile_of_sorted(sorted, 0.25), 2);
}

TEST(Statistics, MergedBlockMomentsMatchADirectComputation) {
  std::vector<double> values;
  for (int i = 0; i < 5000; ++i) values.push_back(std::sin(0.37 * i) * 3 + 0.001 * i);
  double sum = 0;
  for (double x : values) sum += x;
  const double mean = sum / values.size();
  double squares = 0;
  for (double x : values) squares += (x - mean) * (x - mean);
  const nlohmann::json stats = summarize(values, 10);
  EXPECT_EQ(stats["count"], 5000);
  EXPECT_NEAR(stats["mean"].get<double>(), mean, 1e-12);
  EXPECT_NEAR(stats["std"].get<double>(), std::sqrt(squares / (values.size() - 1)), 1e-12);
  Moments a, b, both;
  for (int i = 0; i < 10; ++i) (i < 3 ? a : b).add(values[size_t(i)]), both.add(values[size_t(i)]);
  a.merge(b);
  EXPECT_NEAR(a.mean, both.mean, 1e-14);
  EXPECT_NEAR(a.m2, both.m2, 1e-12);
  EXPECT_EQ(a.min, both.min);
  EXPECT_EQ(a.max, both.max);
}

TEST(Statistics, NonFiniteValuesAreLeftOut) {
  const std::vector<double> values = {1.0, NAN, 3.0, INFINITY, 2.0};
  const nlohmann::json stats = summarize(values, 4);
  EXPECT_EQ(stats["count"], 3);
  EXPECT_DOUBLE_EQ(stats["mean"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(stats["max"].get<double>(), 3.0);
  EXPECT_TRUE(summarize({NAN, NAN}, 4).is_null());
}

TEST(Statistics, HistogramCountsEveryValueInItsBin) {
  const std::vector<double> values = {0.0, 0.1, 0.26, 0.5, 0.99, 1.0};
  const nlohmann::json stats = summarize(values, 4, HistogramRange{0.0, 1.0});
  EXPECT_EQ(stats["histogram"]["counts"], (std::vector<long long>{2, 1, 1, 2}));
  const nlohmann::json free_range = summarize({5.0, 5.0, 7.0}, 2);
  EXPECT_EQ(free_range["histogram"]["lo"], 5.0);
  EXPECT_EQ(free_range["histogram"]["hi"], 7.0);
  EXPECT_EQ(free_range["histogram"]["counts"], (std::vector<long long>{2, 1}));
  const nlohmann::json constant = summarize({4.0, 4.0}, 3);
  EXPECT_EQ(constant["histogram"]["counts"], (std::vector<long long>{2, 0, 0}));
}

}  // namespace
}  // namespace softflow
