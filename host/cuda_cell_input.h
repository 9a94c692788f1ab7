// Purpose: the CUDA backend's input for one cell of a study (used by the CUDA cell runner and the parity tests).
// Only for builds with the CUDA parts.
#pragma once

#include "cell_data.h"
#include "cuda_backend.h"
#include "cuda_kernel_set.h"
#include "study.h"

namespace softflow {

// data must outlive the returned input (it points into it).
template <class Real>
CudaCellInput<Real> make_cuda_cell_input(const Study& study, std::uint32_t index, const CellData<Real>& data) {
  const CellParams& cell = study.cells[index];
  const CellCheckpoints checkpoints = cell_checkpoints(study, cell);
  CudaCellInput<Real> input;
  input.shape = cell.shape;
  input.method = cell.method;
  input.step = cell.step;
  input.adaptive = cell.adaptive;
  input.init = init_params(cell);
  input.stop = study.stop;
  input.seed = study.seed;
  input.cell_index = index;
  input.runs = study.runs;
  input.histogram_bins = study.histogram_bins;
  input.data = data.for_run(0);
  input.shared_data = cell.data_shared();
  input.times = checkpoints.times;
  input.steps = checkpoints.steps;
  return input;
}

// The kernel choices of `set` (cuda_kernel_set.h) on a cell's input: validated leaves the backend's defaults;
// candidate turns on every opt-in kernel where it applies (each still checks that it can run the cell, else the
// backend falls back as usual): fused and block rk4, fused and block dopri5, the tied model's block kernels, the
// cuBLAS paths for shared regression and attention data, and fused gd's logistic variant 2.
template <class Real>
void apply_cuda_kernel_set(CudaKernelSet set, CudaCellInput<Real>& input) {
  if (set != CudaKernelSet::candidate) return;
  input.fused_rk4_lanes = -1;
  input.block_rk4 = -1;
  input.fused_dopri5_lanes = -1;
  input.block_dopri5 = -1;
  input.block_tied = -1;
  input.cublas_regression = 1;
  input.cublas_attention = 1;
  if (input.shape.model == ModelKind::value_softmax && input.shape.loss == LossKind::logistic) input.fused_variant = 2;
}

}  // namespace softflow
