// Purpose: the one place a kernel is launched on a grid, so that the CPU emulation tests (tests/emulation, built with
// -DSOFTFLOW_HOST_EMULATION) run the same source: kernel<<<grid, threads, bytes>>>(args...) on the device, the
// emulated block model on the host; either way followed by the launch's error check.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "cuda_check.h"

namespace softflow {

// kernel<<<grid, threads, bytes>>>(args...), then SOFTFLOW_CUDA_CHECK(cudaGetLastError()). Throws CudaError.
template <class Kernel, class... Args>
void launch_grid(Kernel kernel, unsigned grid, int threads, std::size_t bytes, const Args&... args) {
#ifdef SOFTFLOW_HOST_EMULATION
  emulation::launch_kernel(kernel, grid, threads, bytes, args...);  // on the host (tests/emulation)
#else
  kernel<<<grid, threads, bytes>>>(args...);
#endif
  SOFTFLOW_CUDA_CHECK(cudaGetLastError());
}

}  // namespace softflow
