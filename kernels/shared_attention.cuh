// Purpose: gd and normalized gd for the attention family when every run of a cell shares one data set (toy data
// sets, or target "shared"), with the products that involve the data done across all runs at once by cuBLAS
// (issue 6, item 5). Every trainable set's logits are linear in its selection parameters theta_sel (p, or vec W):
//   logits_it = M_(it) . theta_sel,  M = X W (N T x d: p, vp)  or  M_(it),(a d + b) = x_ita z_ib (N T x d^2: W),
// and the gradient of the selection parameters is M^T Q~ with Q~_(it) = c_i q_it (attention.h's c and q), so per
// step, for the R runs of a wave:
//   cuBLAS GEMM    L = Theta_sel^T M^T                                  (R x N T: logits, runs fastest)
//   cuBLAS GEMM    XV = V^T X^T                      (vp only: its per-run v; p and W share X v, made once)
//   kernel         per run and input: softmax, the selected token, margin, loss, c; Q~ (and S~ = c s for vp)
//   cuBLAS GEMM    G_sel = M^T Q~  (and G_v = X^T S~ for vp)            (theta's layout: state_size x R)
//   kernel         per run: ||G||^2, the checks (apply_checks), theta -= h G (gd) or the normalized step
// M is formed once in double and rounded, so the association differs from attention_flow's X (W p) by rounding.
// Five to seven launches a step instead of one kernel a segment: where that wins is for a GPU to measure. Built, and
// emulated on the host with a cuBLAS stand-in (tests/shared_data_emulation_test.cpp), without a GPU so far: off
// unless CudaCellInput::cublas_attention asks.
#pragma once

#include <memory>

#include "fixed_step_segment.cuh"
#include "softflow/integrators.h"

namespace softflow {

// True if the cell's steps can go this way: the attention family, one shared data set, gd or normalized gd.
bool shared_attention_available(const ModelShape& shape, Method method, bool shared_data);

// Device bytes per run of its buffers (L, Q~, and for vp XV and S~; G; loss and s_max).
long long shared_attention_bytes_per_run(const ModelShape& shape, int real_bytes);

// Device bytes of its buffers shared by every run (M, and X v where v is fixed), allocated once per cell.
long long shared_attention_fixed_bytes(const ModelShape& shape, int real_bytes);

template <class Real>
class SharedAttentionSteps {
 public:
  // data: the shared data set on the device (attention.h's layout), which must outlive this object; max_runs: the
  // most runs of one wave. Forms M (and X v) on the device, allocates the buffers and a cuBLAS handle; throws
  // CudaError.
  SharedAttentionSteps(const ModelShape& shape, Method method, const Real* data, long long max_runs);
  ~SharedAttentionSteps();
  SharedAttentionSteps(const SharedAttentionSteps&) = delete;
  SharedAttentionSteps& operator=(const SharedAttentionSteps&) = delete;

  // Advances every running run of the wave from step_from to step_to as advance_fixed_step does. Throws CudaError
  // on CUDA or cuBLAS failures.
  void advance(const FixedStepSegmentArgs<Real>& args);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace softflow
