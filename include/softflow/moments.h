// Purpose: the mergeable per-block accumulator of count, mean, M2, min and max (Welford within a block, Chan et al.
// across blocks). Blocks of run ids are merged in block order, so results are bit-identical whatever the threads,
// waves or shards. Shared by both backends.
#pragma once

#include "softflow/hostdevice.h"

namespace softflow {

struct Moments {
  double count = 0;
  double mean = 0;
  double m2 = 0;  // sum of squared deviations from the mean
  double min = 0;
  double max = 0;

  SOFTFLOW_HD void add(double x) {
    if (count == 0) {
      min = max = x;
    } else {
      min = min_of(min, x);
      max = max_of(max, x);
    }
    count += 1;
    const double delta = x - mean;
    mean += delta / count;
    m2 += delta * (x - mean);
  }

  SOFTFLOW_HD void merge(const Moments& other) {
    if (other.count == 0) return;
    if (count == 0) {
      *this = other;
      return;
    }
    const double total = count + other.count;
    const double delta = other.mean - mean;
    mean += delta * (other.count / total);
    m2 += other.m2 + delta * delta * (count * other.count / total);
    min = min_of(min, other.min);
    max = max_of(max, other.max);
    count = total;
  }

  // Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values.
  SOFTFLOW_HD double stddev() const { return count > 1 ? sqrt(m2 / (count - 1)) : 0.0; }
};

}  // namespace softflow
