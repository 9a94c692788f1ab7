// Purpose: the stand-in for <cublas_v2.h> that the CPU emulation tests give the shared-data kernels
// (shared_regression.cu, shared_attention.cu through cublas_gemm.cuh): a handle, the math-mode and status calls they
// make, and cublasSgemm / cublasDgemm written from cuBLAS's documented contract, not from the kernels' use of it:
//   C (m x n) = alpha op(A) op(B) + beta C, every matrix column-major with its leading dimension; op(A) is m x k,
//   stored k x m when transposed; lda >= max(1, m) for op N and max(1, k) for op T; ldb >= max(1, k) for op N and
//   max(1, n) for op T; ldc >= max(1, m); m, n, k >= 0; C is not read when beta is 0.
// A call outside that contract answers CUBLAS_STATUS_INVALID_VALUE as cuBLAS does (so cublas_check throws), and a
// call whose operands reach outside the emulated device's memory (cudaMalloc'd regions and the arrays a test
// declares device memory) aborts, as the memory checker would flag it. The sums run in the operands' precision, in
// order of the inner index (cuBLAS's order is unspecified: the tests allow for rounding).
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>

#include "cuda_runtime.h"

#ifndef SOFTFLOW_HOST_EMULATION
#error "tests/emulation/cublas_v2.h is for the host emulation build (-DSOFTFLOW_HOST_EMULATION) only"
#endif

enum cublasStatus_t : int {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
};
enum cublasOperation_t : int { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t : int { CUBLAS_DEFAULT_MATH = 0 };

struct cublasContext {
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
};
using cublasHandle_t = cublasContext*;

inline cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}
inline const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

namespace softflow::emulation {

// Aborts unless the column-major rows x cols matrix at `first` (leading dimension ld) lies in the device's memory.
template <class Real>
void check_operand(const char* name, const Real* first, int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return;
  const std::size_t bytes = (std::size_t(cols - 1) * std::size_t(ld) + std::size_t(rows)) * sizeof(Real);
  if (!device_memory().holds(first, bytes)) {
    std::fprintf(stderr, "cuBLAS stand-in: GEMM operand %s (%d x %d, ld %d) reaches outside device memory\n", name,
                 rows, cols, ld);
    std::abort();
  }
}

template <class Real>
cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                    const Real* alpha, const Real* a, int lda, const Real* b, int ldb, const Real* beta, Real* c,
                    int ldc) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool ta = op_a == CUBLAS_OP_T, tb = op_b == CUBLAS_OP_T;
  auto at_least = [](int ld, int rows) { return ld >= (rows > 1 ? rows : 1); };
  if (m < 0 || n < 0 || k < 0 || !at_least(lda, ta ? k : m) || !at_least(ldb, tb ? n : k) || !at_least(ldc, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  check_operand("C", c, m, n, ldc);
  if (k > 0 && *alpha != Real(0)) {
    check_operand("A", a, ta ? k : m, ta ? m : k, lda);
    check_operand("B", b, tb ? n : k, tb ? k : n, ldb);
  }
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      Real sum = 0;
      if (*alpha != Real(0))
        for (int l = 0; l < k; ++l) {
          const Real a_il = ta ? a[l + std::size_t(i) * lda] : a[i + std::size_t(l) * lda];
          const Real b_lj = tb ? b[j + std::size_t(l) * ldb] : b[l + std::size_t(j) * ldb];
          sum += a_il * b_lj;
        }
      Real& out = c[i + std::size_t(j) * ldc];
      out = *beta == Real(0) ? *alpha * sum : *alpha * sum + *beta * out;
    }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace softflow::emulation

inline cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
                                  int k, const float* alpha, const float* a, int lda, const float* b, int ldb,
                                  const float* beta, float* c, int ldc) {
  return softflow::emulation::gemm(handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
                                  int k, const double* alpha, const double* a, int lda, const double* b, int ldb,
                                  const double* beta, double* c, int ldc) {
  return softflow::emulation::gemm(handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
