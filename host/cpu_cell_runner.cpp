// Purpose: one cell on the CPU backend, reduced to statistics on the CPU (see cell_runner.h).
#include <chrono>

#include "cell_runner.h"
#include "checkpoint_report.h"

namespace softflow {
namespace {

template <class Real>
CellOutcome run_cell(const Study& study, std::uint32_t index, Progress& progress, CpuKernel kernel) {
  const CellParams& cell = study.cells[index];
  CpuCellSimulation<Real> simulation(study, cell, index, kernel);
  CellOutcome outcome;
  outcome.json = cell_header(study, index);
  nlohmann::json checkpoints = nlohmann::json::array();
  CheckpointObservations observations;
  // Touched once before the clock starts, so that no checkpoint's time includes the first-touch page faults of the
  // observation arrays (at 2^20 runs they took the first checkpoint tens of milliseconds longer than the others,
  // which `softflow bench`, timing the second checkpoint less the first, read as faster steps).
  observations.resize(simulation.runs());
  for (size_t c = 0; c < simulation.checkpoint_count(); ++c) {
    const auto start = std::chrono::steady_clock::now();
    simulation.advance_and_observe(c, observations, &progress);
    outcome.checkpoint_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    outcome.advance_seconds.push_back(simulation.advance_seconds());
    checkpoints.push_back(checkpoint_json(summarize_checkpoint(observations, cell.shape.n, study.histogram_bins)));
  }
  outcome.json["checkpoints"] = checkpoints;
  outcome.trajectory_steps = simulation.trajectory_steps();
  outcome.kernel = cpu_kernel_name(kernel, study.cells[index]);
  return outcome;
}

}  // namespace

nlohmann::json cell_header(const Study& study, std::uint32_t index) {
  const CellParams& cell = study.cells[index];
  return {{"index", index}, {"parameters", cell.parameters}, {"state_size", cell.shape.state_size()}};
}

CellOutcome run_cell_on_cpu(const Study& study, std::uint32_t index, Progress& progress, CpuKernel kernel) {
  return study.cells[index].precision == Precision::float32 ? run_cell<float>(study, index, progress, kernel)
                                                            : run_cell<double>(study, index, progress, kernel);
}

}  // namespace softflow
