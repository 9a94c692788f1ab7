// Purpose: the stand-in for CUB's device-wide algorithms that device_statistics.cu uses, under the host emulation
// (tests/emulation/cuda_runtime.h), with CUB's calling protocol: a first call with d_temp_storage null only sets
// temp_storage_bytes; a second, with at least that much scratch, does the work (too little scratch is an error,
// as in CUB). DeviceSelect::If keeps the inputs that pass, in order; DeviceRadixSort::SortKeys orders keys as CUB's
// radix sort of floating-point bits does: by value, -0 before +0 (NaN is never sorted here: the statistics select
// the finite values first).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <cuda_runtime.h>

#include "block/block_reduce.cuh"

namespace cub {

namespace detail {
// The protocol's first call (sizes) or a check that the scratch suffices; true when the caller should do the work.
inline bool scratch_ready(void* temp, std::size_t& temp_bytes, cudaError_t& status) {
  status = cudaSuccess;
  if (!temp) {
    temp_bytes = 16;
    return false;
  }
  if (temp_bytes < 16) status = cudaErrorInvalidValue;
  return status == cudaSuccess;
}
}  // namespace detail

struct DeviceSelect {
  template <class In, class Out, class Count, class Op>
  static cudaError_t If(void* temp, std::size_t& temp_bytes, In in, Out out, Count selected, int items, Op op) {
    cudaError_t status;
    if (!detail::scratch_ready(temp, temp_bytes, status)) return status;
    int kept = 0;
    for (int i = 0; i < items; ++i)
      if (op(in[i])) out[kept++] = in[i];
    *selected = kept;
    return cudaSuccess;
  }
};

struct DeviceRadixSort {
  template <class Key>
  static cudaError_t SortKeys(void* temp, std::size_t& temp_bytes, const Key* in, Key* out, int items) {
    cudaError_t status;
    if (!detail::scratch_ready(temp, temp_bytes, status)) return status;
    std::copy(in, in + items, out);
    std::sort(out, out + items, [](Key a, Key b) { return a < b || (a == b && std::signbit(a) && !std::signbit(b)); });
    return cudaSuccess;
  }
};

}  // namespace cub
