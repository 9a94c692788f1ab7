// Purpose: the register layout and the group reductions of the fused gd kernels (fused_gd.cu, fused_gd_logistic.cu):
// a run is owned by a group of T lanes of one warp (T a power of two, groups aligned within the warp), lane `lane`
// of the group holding columns [lane C, lane C + C) of V (all D rows) and of a, with C = N / T.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda_check.h"
#include "grid_launch.cuh"

namespace softflow {

constexpr int kFusedThreadsPerBlock = 128;  // a multiple of 32: groups never straddle blocks

// Where a thread of a warp-uniform fused kernel sits: the run its group owns (past the last run: the warp's first
// run, loaded so the lanes have a state to step on, never stored; like any run that was stopped or diverged before
// the segment, its values may be non-finite, and nothing reads them) and its lane in the group. Threads of a warp
// with no run at all leave before any shuffle (skip_warp).
template <int T>
struct GroupPosition {
  long long run, loaded_run;
  int lane;
  bool exists, skip_warp;

  __device__ explicit GroupPosition(long long runs) {
    const long long thread = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long warp_first_run = (thread - threadIdx.x % 32) / T;
    run = thread / T;
    lane = int(thread % T);
    exists = run < runs;
    skip_warp = warp_first_run >= runs;
    loaded_run = exists ? run : warp_first_run;
  }
};

// x + y rounded once, and never contracted with the multiply that made x into an FMA (__fadd_rn / __dadd_rn).
template <class Real>
__device__ inline Real add_uncontracted(Real x, Real y) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(Real) == 4) return __fadd_rn(x, y);
  else return __dadd_rn(x, y);
#else
  return x + y;  // the host builds never contract (-ffp-contract=off)
#endif
}

// Sum over the T lanes of a run's group (T a power of two, groups aligned within the warp). Every lane ends
// with the same bits: each butterfly stage adds the same two rounded values in either order. The adds must not
// fuse with a product feeding x (fma(a, b, partner) in one lane, fma(a', b', partner') in the other rounds
// differently), or the lanes of a run could take different stop and step decisions.
template <int T, class Real>
__device__ inline Real group_sum(Real x, unsigned mask) {
#pragma unroll
  for (int offset = T / 2; offset > 0; offset /= 2) x = add_uncontracted(x, __shfl_xor_sync(mask, x, offset, T));
  return x;
}

// NaN-free maximum in one instruction (FMNMX / DMNMX); a NaN anywhere still reaches the loss and marks divergence.
template <class Real>
__device__ inline Real fast_max(Real x, Real y) {
  if constexpr (sizeof(Real) == 4) return fmaxf(x, y);
  else return fmax(x, y);
}

template <int T, class Real>
__device__ inline Real group_max(Real x, unsigned mask) {
#pragma unroll
  for (int offset = T / 2; offset > 0; offset /= 2) x = fast_max(x, __shfl_xor_sync(mask, x, offset, T));
  return x;
}

// One run's registers in a fused kernel: lane `lane` of its group of T holds columns [lane C, lane C + C) of V
// (all D rows) and of a, with C = N / T; the loss data (D entries) is replicated in every lane.
template <class Real, int D, int N, int T>
struct LaneState {
  static constexpr int C = N / T;
  Real v[D][C], a[C], target[D];

  __device__ void load(const Real* theta, const Real* data, int lane) {
#pragma unroll
    for (int i = 0; i < D; ++i) {
      target[i] = data[i];
#pragma unroll
      for (int c = 0; c < C; ++c) v[i][c] = theta[i * N + lane * C + c];
    }
#pragma unroll
    for (int c = 0; c < C; ++c) a[c] = theta[D * N + lane * C + c];
  }
  __device__ void store(Real* theta, int lane) const {
#pragma unroll
    for (int i = 0; i < D; ++i)
#pragma unroll
      for (int c = 0; c < C; ++c) theta[i * N + lane * C + c] = v[i][c];
#pragma unroll
    for (int c = 0; c < C; ++c) theta[D * N + lane * C + c] = a[c];
  }
  // A stopped run's registers in a warp-uniform kernel: zeros, so the lanes step on finite numbers until the warp
  // leaves the loop (the state was stored when the run stopped and is never stored again).
  __device__ void clear() {
#pragma unroll
    for (int c = 0; c < C; ++c) {
      a[c] = 0;
#pragma unroll
      for (int i = 0; i < D; ++i) v[i][c] = 0;
    }
  }
};

// Launches kernel(args) over args.runs runs with T lanes each, in whole blocks of kFusedThreadsPerBlock threads.
template <int T, class Kernel, class Args>
void launch_lane_groups(Kernel kernel, const Args& args) {
  const long long threads = args.runs * T;
  const unsigned blocks = unsigned((threads + kFusedThreadsPerBlock - 1) / kFusedThreadsPerBlock);
  launch_grid(kernel, blocks, kFusedThreadsPerBlock, 0, args);
}

// Calls launch(std::integral_constant<int, T>{}) with T = lanes, one of the instantiated choices Lanes...; throws
// std::invalid_argument naming `kernel` if lanes is none of them.
template <int... Lanes, class Launch>
void with_lane_count(int lanes, const char* kernel, Launch&& launch) {
  bool launched = false;
  ((lanes == Lanes ? (launch(std::integral_constant<int, Lanes>{}), launched = true) : false), ...);
  if (!launched)
    throw std::invalid_argument(std::string(kernel) + ": " + std::to_string(lanes) + " lanes per run not instantiated");
}

}  // namespace softflow
