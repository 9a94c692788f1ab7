// Purpose: the yardsticks of `softflow bench`, in one place: the useful FLOPs a value-softmax integration step
// does, and the peak a GPU's properties imply. Counts are of the O(d n) matrix work only (the O(d + n) softmax,
// loss and checks are left out), 2 FLOPs per multiply-add:
//   gd:  beta = V s (2 d n), u = V^T r (2 d n), V += h r s^T (2 d n)                               = 6 d n
//   rk4: 4 evaluations x (V s, V^T r: 4 d n; dV = r s^T: d n), 3 stage states theta + c k (2 d n each),
//        theta += h/6 (k1 + 2 k2 + 2 k3 + k4) (8 d n)                                              = 34 d n
#pragma once

#include "softflow/integrators.h"

namespace softflow {

inline double useful_flops_per_step(Method method, int d, int n) {
  const double dn = double(d) * double(n);
  switch (method) {
    case Method::gd: return 6 * dn;
    case Method::rk4: return 34 * dn;
    case Method::dopri5: return 0;  // not counted: steps vary per run (the bench sweeps gd and rk4)
    case Method::normalized_gd: return 0;  // not counted (the bench sweeps gd and rk4)
  }
  return 0;
}

// A GPU's peak in GFLOP/s from its properties: SMs x lanes per SM x 2 FLOPs per FMA x clock. Lanes: Hopper has
// 128 FP32 and 64 FP64 lanes per SM (the FP64 tensor-core rate is not counted).
inline double gpu_peak_gflops(int multiprocessors, int clock_khz, bool float64) {
  return double(multiprocessors) * (float64 ? 64.0 : 128.0) * 2.0 * double(clock_khz) * 1e3 / 1e9;
}

}  // namespace softflow
