// Purpose: the one comparison of dopri5 run records between two backends or kernels (the GPU parity tests and the
// CPU emulation tests of the CUDA kernels): statuses equal; times, step counts and first passages alike up to what
// two summation orders (and the GPU's fused multiply-adds) make of the step control.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "softflow/run_record.h"

namespace softflow::testing {

// Records of dopri5 runs: the same status; steps and rejected steps within 2 or 1 % of the steps (where a run
// converges to a fixed point, square and regression losses at rtol 1e-9, the error estimate sits at the rounding
// floor, so the proposed step follows the rounding: a CPU emulation of a kernel, summing in its order, moved the
// final step size by up to 7 % and a rejected count by 1); first passages (placed on the dense output) within 1e-6
// relative; t and the stop time within 1e-6 relative, and for a run that stopped inside a segment within one step
// more (the larger proposed step h of the two): it stops at the end of the first step past its rule, and the step
// sequences drift apart by rounding over hundreds of steps (seen under the host emulation: 2.5e-6 relative at
// t = 550, d = n = 16, rtol 1e-9, while the passages agreed to 1e-6).
inline void expect_same_adaptive_records(const std::vector<RunRecord>& kernel, const std::vector<RunRecord>& cpu,
                                         const std::string& label) {
  ASSERT_EQ(kernel.size(), cpu.size());
  auto near = [](double a, double b, double slack) {
    return (std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(b)) + slack;
  };
  for (size_t r = 0; r < cpu.size(); ++r) {
    const RunRecord &a = kernel[r], &b = cpu[r];
    const std::string where = label + " run " + std::to_string(r);
    EXPECT_EQ(a.status, b.status) << where;
    const double step = b.status == RunStatus::running ? 0.0 : std::max(std::abs(a.h), std::abs(b.h));
    EXPECT_TRUE(near(a.t, b.t, step)) << where << ": t " << a.t << " vs " << b.t << " (step " << step << ")";
    EXPECT_TRUE(near(a.stop_time, b.stop_time, step))
        << where << ": stop " << a.stop_time << " vs " << b.stop_time << " (step " << step << ")";
    const long long slack = std::max(2LL, b.steps / 100);
    EXPECT_LE(std::llabs(a.steps - b.steps), slack) << where << ": steps " << a.steps << " vs " << b.steps;
    EXPECT_LE(std::llabs(a.rejected - b.rejected), slack) << where << ": rejected " << a.rejected << " vs "
                                                          << b.rejected;
    for (int k = 0; k < kPassageCount; ++k)
      EXPECT_TRUE(near(a.first_time[k], b.first_time[k], 0.0))
          << where << " passage " << k << ": " << a.first_time[k] << " vs " << b.first_time[k];
  }
}

}  // namespace softflow::testing
