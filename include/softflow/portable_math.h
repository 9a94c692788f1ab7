// Purpose: bit-reproducible double arithmetic for the random draws, so a run's initial state has the same bits on
// the CPU and the GPU. Every operation is a single correctly rounded IEEE operation: on the device through
// intrinsics that nvcc never fuses into an FMA, on the host as plain operations (built with -ffp-contract=off).
// log and sin/cos are evaluated here from those operations alone, because the CPU's libm and CUDA's differ in the
// last bit. Accuracy: a few ulp, which is all a normal draw needs.
#pragma once

#include <cmath>

#include "softflow/hostdevice.h"

namespace softflow {

SOFTFLOW_HD inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
SOFTFLOW_HD inline double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
SOFTFLOW_HD inline double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
SOFTFLOW_HD inline double sqrt_rn(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Natural log of u > 0 (finite): u = m 2^k with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) by
// its series (|s| < 0.172, 12 terms), plus k log 2 in two parts.
SOFTFLOW_HD inline double portable_log(double u) {
  int k = 0;
  double m = frexp(u, &k);  // exact: u = m 2^k, m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m = mul_rn(m, 2.0);  // exact
    k -= 1;
  }
  const double s = div_rn(add_rn(m, -1.0), add_rn(m, 1.0));
  const double s2 = mul_rn(s, s);
  double series = 1.0 / 23.0;
  for (int j = 21; j >= 1; j -= 2) series = add_rn(1.0 / double(j), mul_rn(s2, series));
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;  // fdlibm's split
  const double kd = double(k);
  return add_rn(mul_rn(kd, ln2_hi), add_rn(mul_rn(kd, ln2_lo), mul_rn(mul_rn(2.0, s), series)));
}

// sin(2 pi v) and cos(2 pi v) for v in [0, 1): quadrant from 4v (exact), then Taylor series of sin and cos on
// [0, pi/2) to degree 23 / 24.
SOFTFLOW_HD inline void portable_sincos_2pi(double v, double* sin_out, double* cos_out) {
  const double w = mul_rn(v, 4.0);
  const int quadrant = int(w) & 3;
  const double theta = mul_rn(add_rn(w, -double(int(w))), 1.57079632679489661923);
  const double t2 = mul_rn(theta, theta);
  // sin = theta sum_j (-1)^j t2^j / (2j+1)!, cos = sum_j (-1)^j t2^j / (2j)!, by Horner from j = 11 down.
  const double sin_coefficient[12] = {1.0, -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0,
                                      -1.0 / 39916800.0, 1.0 / 6227020800.0, -1.0 / 1307674368000.0,
                                      1.0 / 355687428096000.0, -1.0 / 121645100408832000.0,
                                      1.0 / 51090942171709440000.0, -1.0 / 25852016738884976640000.0};
  const double cos_coefficient[12] = {1.0, -1.0 / 2.0, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0,
                                      -1.0 / 3628800.0, 1.0 / 479001600.0, -1.0 / 87178291200.0,
                                      1.0 / 20922789888000.0, -1.0 / 6402373705728000.0,
                                      1.0 / 2432902008176640000.0, -1.0 / 1124000727777607680000.0};
  double sin_series = 0, cos_series = 0;
  for (int j = 11; j >= 0; --j) {
    sin_series = add_rn(sin_coefficient[j], mul_rn(t2, sin_series));
    cos_series = add_rn(cos_coefficient[j], mul_rn(t2, cos_series));
  }
  const double s = mul_rn(theta, sin_series), c = cos_series;
  switch (quadrant) {
    case 0: *sin_out = s; *cos_out = c; break;
    case 1: *sin_out = c; *cos_out = -s; break;
    case 2: *sin_out = -s; *cos_out = -c; break;
    default: *sin_out = -c; *cos_out = s; break;
  }
}

}  // namespace softflow
