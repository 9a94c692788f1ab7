// Purpose: one cell on the CUDA backend (see cell_runner.h): the host draws the loss data (cell_data.h), the device
// does everything else and hands back one CheckpointSummary per checkpoint. Compiled only with the CUDA parts.
#include <cstdio>

#include "cell_data.h"
#include "cell_runner.h"
#include "checkpoint_report.h"
#include "cuda_cell_input.h"
#include "engine.h"

namespace softflow {
namespace {

template <class Real>
CellOutcome run_cell(const Study& study, std::uint32_t index, Progress& progress, CudaKernelSet kernels) {
  const CellParams& cell = study.cells[index];
  // Per-run random unit targets are drawn on the device; other loss data on the host (cell_data.h).
  const bool host_data = cell.data_shared() || !device_draws_targets(cell.shape);
  const CellData<Real> data(cell, study.seed, index, host_data ? study.runs : 0);
  CudaCellInput<Real> input = make_cuda_cell_input(study, index, data);
  if (!host_data) input.data = nullptr;
  apply_cuda_kernel_set(kernels, input);
  CudaCellSimulation<Real> simulation(input);

  CellOutcome outcome;
  outcome.json = cell_header(study, index);
  nlohmann::json results = nlohmann::json::array();
  CheckpointSummary summary;
  for (size_t c = 0; c < simulation.checkpoint_count(); ++c) {
    const double before = simulation.kernel_seconds();
    simulation.advance_and_summarize(c, summary);
    outcome.checkpoint_seconds.push_back(simulation.kernel_seconds() - before);
    results.push_back(checkpoint_json(summary));
    progress.add(study.runs);
  }
  outcome.json["checkpoints"] = results;
  outcome.trajectory_steps = simulation.trajectory_steps();
  outcome.kernel_seconds = simulation.kernel_seconds();
  outcome.kernel = simulation.stepping_kernel();
  return outcome;
}

}  // namespace

void check_cuda_memory(const Study& study, const std::vector<std::uint32_t>& cells) {
  const CudaDeviceInfo device = cuda_device_info();
  const std::vector<std::uint32_t> checked = cells_or_all(study, cells);
  const double available = available_memory_bytes(), results = results_bytes(study, checked);
  for (const std::uint32_t index : checked) {
    const CellParams& cell = study.cells[index];
    const int real_bytes = cell.precision == Precision::float32 ? 4 : 8;
    const double needed = cuda_cell_bytes(cell.shape, study.runs, cell.data_shared(), real_bytes);
    char message[320];
    if (needed > 0.85 * device.free_bytes) {
      std::snprintf(message, sizeof message,
                    "too little device memory: cell %u needs %.2f GiB for %lld runs, %.2f GiB is free on %s; lower "
                    "runs or use --backend cpu",
                    index, needed / 1073741824.0, study.runs, device.free_bytes / 1073741824.0, device.name.c_str());
      throw InputError(message);
    }
    // In several waves every run's state waits on the host between them, beside the host-drawn per-run data that
    // check_memory counted already.
    const double waiting =
        cuda_wave_host_bytes(cell.shape, study.runs, cell.data_shared(), real_bytes, device.free_bytes);
    const double host_data =
        cell.data_shared() ? 0.0 : double(study.runs) * real_bytes * double(cell.shape.data_size());
    if (waiting > 0 && results + host_data + waiting > 0.8 * available) {
      std::snprintf(message, sizeof message,
                    "too little memory: cell %u runs in waves on %s and keeps every run's state on the host between "
                    "them: %.2f GiB for %lld runs, %.2f GiB is available; lower runs",
                    index, device.name.c_str(), (results + host_data + waiting) / 1073741824.0, study.runs,
                    available / 1073741824.0);
      throw InputError(message);
    }
  }
}

CellOutcome run_cell_on_cuda(const Study& study, std::uint32_t index, Progress& progress, CudaKernelSet kernels) {
  return study.cells[index].precision == Precision::float32 ? run_cell<float>(study, index, progress, kernels)
                                                            : run_cell<double>(study, index, progress, kernels);
}

}  // namespace softflow
