// Purpose: cuBLAS for the shared-data step paths (shared_regression.cu, shared_attention.cu): error checking that
// names the call, a GEMM overloaded on the precision, and a handle that computes in the requested precision only.
#pragma once

#include <cublas_v2.h>

#include <string>

#include "cuda_check.h"

namespace softflow {

// Throws CudaError naming the cuBLAS call if status is not CUBLAS_STATUS_SUCCESS.
inline void cublas_check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw CudaError(std::string("cuBLAS error in ") + call + " at " + file + ":" + std::to_string(line) + ": " +
                  cublasGetStatusString(status));
}
#define SOFTFLOW_CUBLAS_CHECK(call) ::softflow::cublas_check((call), #call, __FILE__, __LINE__)

// C (rows x cols, column-major) = alpha op(A) op(B), in the precision of the arrays.
inline cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int rows, int cols,
                           int inner, float alpha, const float* a, int lda, const float* b, int ldb, float* c,
                           int ldc) {
  const float zero = 0;
  return cublasSgemm(handle, op_a, op_b, rows, cols, inner, &alpha, a, lda, b, ldb, &zero, c, ldc);
}
inline cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int rows, int cols,
                           int inner, double alpha, const double* a, int lda, const double* b, int ldb, double* c,
                           int ldc) {
  const double zero = 0;
  return cublasDgemm(handle, op_a, op_b, rows, cols, inner, &alpha, a, lda, b, ldb, &zero, c, ldc);
}

// An owned cuBLAS handle with the default math mode: at least the requested precision throughout (no TF32 tensor
// cores), so the results match the CPU's to rounding. Throws CudaError.
class CublasHandle {
 public:
  CublasHandle() {
    SOFTFLOW_CUBLAS_CHECK(cublasCreate(&handle_));
    const cublasStatus_t status = cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH);
    if (status != CUBLAS_STATUS_SUCCESS) cublasDestroy(handle_);
    SOFTFLOW_CUBLAS_CHECK(status);
  }
  ~CublasHandle() { cublasDestroy(handle_); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace softflow
