// Purpose: cuda_check.h's functions for the emulation tests' stand-in runtime (tests/emulation/cuda_runtime.h):
// kernels/cuda_check.cu is CUDA's and is not linked into them. The emulated device is always there.
#include <cuda_runtime.h>  // the stand-in of tests/emulation

#include <string>

#include "cuda_check.h"

namespace softflow {

void cuda_check(int code, const char* call, const char* file, int line) {
  if (code != 0)
    throw CudaError("emulated " + cuda_error_message(call, file, line, cudaGetErrorString(static_cast<cudaError_t>(code))));
}

int cuda_device_count() { return 1; }

}  // namespace softflow
