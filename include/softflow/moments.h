// Purpose: the mergeable per-block accumulator of count, mean, M2, min and max (Welford within a block, Chan et al.
// across blocks). Blocks of run ids are merged in block order, so results are bit-identical whatever the threads,
// waves or shards. Shared by both backends.
// Range: the mean and M2 are kept in units of `scale`, a power of two that grows once a value passes 2^400 times it,
// so squared deviations of values up to the largest double (a loss of 1e300 before divergence) never overflow.
// Scaling by a power of two is exact, so below 2^400 (scale 1) and above it alike the bits are those of the plain
// recurrences, up to values so much smaller than the largest that they fall below the normal range in its units.
#pragma once

#include "softflow/hostdevice.h"

namespace softflow {

struct Moments {
  double count = 0;
  double scaled_mean = 0;  // mean / scale
  double scaled_m2 = 0;    // sum of squared deviations from the mean / scale^2
  double scale = 1;        // a power of two
  double min = 0;
  double max = 0;

  // Above 2^400 scale units a value moves the scale to its own binary exponent: squares stay below 2^802, and sums
  // of 2^32 of them below 2^834.
  static constexpr double kRescaleAbove = 0x1p400;

  SOFTFLOW_HD void add(double x) {
    if (count == 0) {
      min = max = x;
    } else {
      min = min_of(min, x);
      max = max_of(max, x);
    }
    if (abs_of(x) > kRescaleAbove * scale) rescale(ldexp(1.0, ilogb(x)));
    const double y = x / scale;
    count += 1;
    const double delta = y - scaled_mean;
    scaled_mean += delta / count;
    scaled_m2 += delta * (y - scaled_mean);
  }

  SOFTFLOW_HD void merge(const Moments& other) {
    if (other.count == 0) return;
    if (count == 0) {
      *this = other;
      return;
    }
    Moments in = other;  // both in the larger of the two scales
    if (in.scale > scale) rescale(in.scale);
    if (scale > in.scale) in.rescale(scale);
    const double total = count + in.count;
    const double delta = in.scaled_mean - scaled_mean;
    scaled_mean += delta * (in.count / total);
    scaled_m2 += in.scaled_m2 + delta * delta * (count * in.count / total);
    min = min_of(min, in.min);
    max = max_of(max, in.max);
    count = total;
  }

  SOFTFLOW_HD double mean() const { return scaled_mean * scale; }

  // Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values. Infinite only where it is
  // past the largest double itself (values of both signs near 1.8e308).
  SOFTFLOW_HD double stddev() const { return count > 1 ? sqrt(scaled_m2 / (count - 1)) * scale : 0.0; }

 private:
  // Re-expresses mean and M2 in units of new_scale (a power of two at least scale): exact but for underflow.
  SOFTFLOW_HD void rescale(double new_scale) {
    const double ratio = scale / new_scale;
    scaled_mean *= ratio;
    scaled_m2 *= ratio * ratio;
    scale = new_scale;
  }
};

}  // namespace softflow
