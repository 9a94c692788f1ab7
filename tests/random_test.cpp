// Purpose: the random draws: portable log and sin/cos agree with libm to a few ulp (they exist so the GPU draws the
// same bits as the CPU), uniforms stay inside (0, 1), and the normals have the moments of N(0, 1).
#include <gtest/gtest.h>

#include <cmath>

#include "softflow/portable_math.h"
#include "softflow/random.h"

namespace softflow {
namespace {

TEST(PortableMath, LogMatchesLibmToAFewUlp) {
  for (double u : {1e-300, 1e-20, 0.001, 0.1, 0.5, 0.70710678118654752, 0.7071067811865476, 0.9, 0.999999, 1.0}) {
    const double expected = std::log(u);
    EXPECT_NEAR(portable_log(u), expected, 4e-16 * std::max(1.0, std::abs(expected))) << u;
  }
  for (int i = 1; i < 100000; ++i) {
    const double u = double(i) / 100000.0;
    ASSERT_NEAR(portable_log(u), std::log(u), 4e-16 * std::max(1.0, std::abs(std::log(u)))) << u;
  }
}

TEST(PortableMath, SinCosMatchLibm) {
  const double two_pi = 6.283185307179586476925;
  for (int i = 0; i < 100000; ++i) {
    const double v = double(i) / 100000.0;
    double s = 0, c = 0;
    portable_sincos_2pi(v, &s, &c);
    ASSERT_NEAR(s, std::sin(two_pi * v), 1e-15) << v;
    ASSERT_NEAR(c, std::cos(two_pi * v), 1e-15) << v;
  }
}

TEST(RandomStream, UniformsAreInsideTheOpenUnitInterval) {
  EXPECT_GT(RandomStream::open_unit(0), 0.0);
  EXPECT_LT(RandomStream::open_unit(~0ull), 1.0);
  EXPECT_EQ(RandomStream::half_open_unit(0), 0.0);
  EXPECT_LT(RandomStream::half_open_unit(~0ull), 1.0);
}

TEST(RandomStream, NormalsHaveTheMomentsOfAStandardNormal) {
  const RandomStream stream{42, 3, 7, RandomVariable::value_matrix};
  const int count = 200000;
  double sum = 0, sum_sq = 0, sum_4 = 0;
  for (int i = 0; i < count; ++i) {
    const double x = stream.normal_at(i);
    sum += x;
    sum_sq += x * x;
    sum_4 += x * x * x * x;
  }
  const double mean = sum / count, variance = sum_sq / count - mean * mean;
  EXPECT_NEAR(mean, 0.0, 5 * std::sqrt(1.0 / count));
  EXPECT_NEAR(variance, 1.0, 5 * std::sqrt(2.0 / count));
  EXPECT_NEAR(sum_4 / count, 3.0, 5 * std::sqrt(96.0 / count));  // E x^4 = 3, Var x^4 = 96
}

}  // namespace
}  // namespace softflow
