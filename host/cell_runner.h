// Purpose: running one cell of a study on a backend, start to last checkpoint, into its results JSON
// (index, parameters, state_size, checkpoints[]). One function per backend; the engine picks.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpu_backend.h"
#include "cuda_kernel_set.h"
#include "progress.h"
#include "study.h"

namespace softflow {

struct CellOutcome {
  nlohmann::json json;
  long long trajectory_steps = 0;  // accepted + rejected steps over all runs
  double kernel_seconds = 0;       // CUDA: time in the advance-and-observe kernels
  // Per checkpoint, the time advancing and observing runs (the first: observation only): CUDA, kernel time; CPU,
  // wall time of the threaded advance-and-observe. Statistics and JSON are not included.
  std::vector<double> checkpoint_seconds;
  // CPU only (empty on CUDA): per checkpoint, the wall time of advancing the runs alone, before the observation
  // (0 steps for the first checkpoint at t = 0).
  std::vector<double> advance_seconds;
  // The kernel that advanced the cell: the CPU's cpu_kernel_name, or the CUDA backend's stepping kernel.
  std::string kernel;
};

// The cell's JSON before its checkpoints: index, parameters, state_size.
nlohmann::json cell_header(const Study& study, std::uint32_t index);

// kernel: the CPU kernel choice (cpu_backend.h).
CellOutcome run_cell_on_cpu(const Study& study, std::uint32_t index, Progress& progress,
                            CpuKernel kernel = CpuKernel::simd);

// Only in builds with the CUDA parts (SOFTFLOW_HAVE_CUDA). kernels: which kernels the backend may choose
// (cuda_kernel_set.h). Throws CudaError on CUDA failures.
CellOutcome run_cell_on_cuda(const Study& study, std::uint32_t index, Progress& progress,
                             CudaKernelSet kernels = CudaKernelSet::validated);

// Throws InputError naming the first cell whose observables and statistics do not fit in device memory (states
// stream in waves, so they need not fit), or whose states, streaming in waves, do not fit in host memory while
// they wait there; of the cells `cells` (all when empty). Only with the CUDA parts.
void check_cuda_memory(const Study& study, const std::vector<std::uint32_t>& cells = {});

}  // namespace softflow
