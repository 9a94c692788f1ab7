// Purpose: the one macro that marks per-trajectory math as callable from both the CPU and CUDA kernels.
// Under nvcc SOFTFLOW_HD is `__host__ __device__`; in a plain C++ build it is empty.
#pragma once

#if defined(__CUDACC__)
#define SOFTFLOW_HD __host__ __device__
#else
#define SOFTFLOW_HD
#endif

// Full unrolling on the device when the trip count is a compile-time constant (the fused kernels' fixed sizes), so
// small arrays stay in registers; no effect on the host or for run-time trip counts.
#if defined(__CUDA_ARCH__)
#define SOFTFLOW_UNROLL _Pragma("unroll")
#else
#define SOFTFLOW_UNROLL
#endif

#include <cmath>

namespace softflow {

// Small helpers usable on host and device (std::max and friends are not device functions).
template <class T>
SOFTFLOW_HD inline T max_of(T x, T y) { return x > y ? x : y; }
template <class T>
SOFTFLOW_HD inline T min_of(T x, T y) { return x < y ? x : y; }
template <class T>
SOFTFLOW_HD inline T abs_of(T x) { return x < T(0) ? -x : x; }
template <class T>
SOFTFLOW_HD inline bool is_finite(T x) { return x - x == T(0); }  // false for NaN and +-inf

}  // namespace softflow
