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

// The message of a failed CUDA call: "CUDA error in CALL at DIR/FILE:LINE: WHAT", the source file named by its last
// folder and name (kernels/device_array.cuh), not the build machine's absolute path.
inline std::string cuda_error_message(const char* call, const char* file, int line, const char* what) {
  const std::string path(file);
  const size_t name = path.rfind('/');
  const size_t folder = name == std::string::npos || name == 0 ? std::string::npos : path.rfind('/', name - 1);
  const std::string shown = folder == std::string::npos ? path : path.substr(folder + 1);
  return std::string("CUDA error in ") + call + " at " + shown + ":" + std::to_string(line) + ": " + what;
}

// Number of usable CUDA devices (0 when there is no driver or no device); never throws.
int cuda_device_count();

}  // namespace softflow

#define SOFTFLOW_CUDA_CHECK(call) ::softflow::cuda_check(static_cast<int>(call), #call, __FILE__, __LINE__)
