// Purpose: the one place CUDA runtime errors are checked: every call goes through SOFTFLOW_CUDA_CHECK, which throws
// CudaError naming the call, file and line (the CLI turns it into a message and exit code 3).
#pragma once

#include <stdexcept>
#include <string>

namespace softflow {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws CudaError if code (a cudaError_t) is not cudaSuccess.
void cuda_check(int code, const char* call, const char* file, int line);

// Number of usable CUDA devices (0 when there is no driver or no device); never throws.
int cuda_device_count();

}  // namespace softflow

#define SOFTFLOW_CUDA_CHECK(call) ::softflow::cuda_check(static_cast<int>(call), #call, __FILE__, __LINE__)
