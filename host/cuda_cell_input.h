// Purpose: the CUDA backend's input for one cell of a study (used by the CUDA cell runner and the parity tests).
// Only for builds with the CUDA parts.
#pragma once

#include "cell_data.h"
#include "cuda_backend.h"
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

}  // namespace softflow
