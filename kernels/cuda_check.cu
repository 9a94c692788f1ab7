// Purpose: CUDA error checking (see cuda_check.h).
#include <cuda_runtime.h>

#include "cuda_check.h"

namespace softflow {

void cuda_check(int code, const char* call, const char* file, int line) {
  if (code == cudaSuccess) return;
  throw CudaError(cuda_error_message(call, file, line, cudaGetErrorString(static_cast<cudaError_t>(code))));
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a missing driver or device
    return 0;
  }
  return count;
}

}  // namespace softflow
