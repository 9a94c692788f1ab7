// Purpose: the statistics of one observable: type-7 quantiles, block-merged moments equal to a direct computation,
// non-finite values excluded, histograms that account for every value, and all of them finite for values up to the
// largest double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

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
  EXPECT_NEAR(a.mean(), both.mean(), 1e-14);
  EXPECT_NEAR(a.stddev(), both.stddev(), 1e-12);
  EXPECT_EQ(a.min, both.min);
  EXPECT_EQ(a.max, both.max);
}

// Values scaled by 2^600 have statistics scaled by 2^600, bit for bit (a power of two is exact): the moments of
// values near 1e300 (a loss just short of divergence) stay finite where squared deviations would overflow, across
// blocks whose scales differ (the first block small, the rest huge) and a rescale inside a block.
TEST(Statistics, HugeValuesHaveTheScaledStatisticsOfSmallOnes) {
  std::vector<double> small, huge;
  for (int i = 0; i < 3000; ++i) {
    const double x = i < 1024 ? 1e-200 * std::sin(0.37 * i) : std::cos(0.11 * i) * (i % 3 + 1) + 0.001 * i;
    small.push_back(x);
    huge.push_back(std::ldexp(x, 600));
  }
  const nlohmann::json a = summarize(small, 10), b = summarize(huge, 10);
  for (const char* key : {"mean", "std", "min", "max"}) {
    ASSERT_TRUE(b[key].is_number()) << key << ": " << b[key];
    EXPECT_EQ(b[key].get<double>(), std::ldexp(a[key].get<double>(), 600)) << key;
  }
  for (const auto& [name, q] : a["quantiles"].items())
    EXPECT_EQ(b["quantiles"][name].get<double>(), std::ldexp(q.get<double>(), 600)) << name;
  EXPECT_EQ(a["histogram"]["counts"], b["histogram"]["counts"]);
  double mean = 0, squares = 0;
  for (double x : small) mean += x / small.size();
  for (double x : small) squares += (x - mean) * (x - mean);
  EXPECT_NEAR(a["std"].get<double>(), std::sqrt(squares / (small.size() - 1)), 1e-12);
}

// Values of both signs near the largest double: the range, the quantiles between them and the histogram's bins
// stay finite and in place (their differences pass the largest double).
TEST(Statistics, ValuesSpanningTheWholeDoubleRangeStayFinite) {
  const double top = std::numeric_limits<double>::max();
  const nlohmann::json stats = summarize({-top, -0.5 * top, 0.0, 0.5 * top, top}, 4);
  EXPECT_EQ(stats["mean"].get<double>(), 0.0);
  EXPECT_EQ(stats["quantiles"]["q50"].get<double>(), 0.0);
  EXPECT_EQ(stats["quantiles"]["q25"].get<double>(), -0.5 * top);
  EXPECT_TRUE(stats["quantiles"]["q05"].is_number());
  EXPECT_EQ(stats["histogram"]["counts"], (std::vector<long long>{1, 1, 1, 2}));
  EXPECT_NEAR(stats["std"].get<double>() / top, std::sqrt(0.625), 1e-15);
  // Two values, -top and top: their std, sqrt(2) top, is past the largest double itself (written as null, the one
  // way std is not a number in a results file).
  const nlohmann::json extremes = summarize({-top, top}, 4);
  EXPECT_EQ(extremes["std"].get<double>(), INFINITY);
  EXPECT_EQ(extremes["quantiles"]["q50"].get<double>(), 0.0);  // halfway across a gap of 2 top
  EXPECT_DOUBLE_EQ(extremes["quantiles"]["q25"].get<double>(), -0.5 * top);
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
