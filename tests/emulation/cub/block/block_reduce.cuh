// Purpose: the stand-in for CUB's BlockReduce<T, B> under the host emulation (tests/emulation/cuda_runtime.h), with
// CUB's contract: every thread of the block calls Reduce or Sum with its value; the aggregate is valid in thread 0
// only (the others get NaN for floating-point T, their own input otherwise, so a kernel that reads it elsewhere
// fails); TempStorage may be reused only after a __syncthreads. Each thread writes its value to TempStorage (B
// entries), one barrier, thread 0 combines them in thread order; no barrier after, as in CUB. The summation order
// differs from CUB's (warp shuffles, then warps): results agree with the GPU's to rounding, not bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <limits>
#include <type_traits>

namespace cub {

template <class T, int B>
class BlockReduce {
 public:
  struct TempStorage {
    T values[B];
  };

  explicit BlockReduce(TempStorage& temp) : temp_(temp) {}

  template <class Op>
  T Reduce(T input, Op op) {
    temp_.values[threadIdx.x] = input;
    __syncthreads();
    if (threadIdx.x != 0) {
      if constexpr (std::is_floating_point<T>::value) return std::numeric_limits<T>::quiet_NaN();
      return input;
    }
    T aggregate = temp_.values[0];
    for (int t = 1; t < B; ++t) aggregate = op(aggregate, temp_.values[t]);
    return aggregate;
  }

  T Sum(T input) {
    return Reduce(input, [](const T& p, const T& q) { return p + q; });
  }

 private:
  TempStorage& temp_;
};

}  // namespace cub
