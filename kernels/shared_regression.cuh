// Purpose: gd for the value-softmax regression loss when every run of a cell shares one data set (X: m x d,
// y: m), with the loss's two products that involve X done across all runs at once by cuBLAS (issue: "cuBLAS where
// the math is a genuine matrix product shared across runs"). Per step, for the runs P of a wave:
//   block kernel   s = softmax(a), beta = V s for every run (block_run.cuh)    -> S (P x n), B (P x d)
//   cuBLAS GEMM    E = B X^T                                                   (P x m)
//   kernel         E <- Y - E, the residuals (Y's rows all y)
//   cuBLAS GEMM    R = 2 E X = r for every run                                 (P x d)
//   block kernel   loss = ||E_p||^2, da from u = V^T r, the checks (apply_checks), V += h r s^T, a += h da
// X is read once a step instead of once per run and step, at the price of five launches a step instead of one
// kernel a segment, so it can only win where m d is large. Built, and emulated on the host with a cuBLAS stand-in
// (tests/shared_data_emulation_test.cpp), without a GPU so far: off unless CudaCellInput::cublas_regression asks,
// until a GPU has validated and measured it (bench/fused_gd_playground --loss regression).
#pragma once

#include <memory>

#include "fixed_step_segment.cuh"

namespace softflow {

// True if the cell's steps can go this way: value-softmax gd with the regression loss, one shared data set, and
// the block kernels' shared memory suffices.
bool shared_regression_available(const ModelShape& shape, bool shared_data, int real_bytes);

// Device bytes per run of its buffers (S, B, E, R).
long long shared_regression_bytes_per_run(const ModelShape& shape, int real_bytes);

template <class Real>
class SharedRegressionSteps {
 public:
  // max_runs: the most runs of one wave. Allocates the buffers and a cuBLAS handle; throws CudaError.
  SharedRegressionSteps(const ModelShape& shape, long long max_runs);
  ~SharedRegressionSteps();
  SharedRegressionSteps(const SharedRegressionSteps&) = delete;
  SharedRegressionSteps& operator=(const SharedRegressionSteps&) = delete;

  // Advances every running run of the wave from step_from to step_to (args.data: the shared X then y; data_stride
  // 0). Throws CudaError on CUDA or cuBLAS failures.
  void advance(const FixedStepSegmentArgs<Real>& args);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace softflow
