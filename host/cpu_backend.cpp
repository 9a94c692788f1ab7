// Purpose: the CPU backend (see cpu_backend.h).
#include "cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "softflow/initial_state.h"
#include "softflow/integrators.h"
#include "softflow/observables.h"
#include "engine.h"
#include "simd_kernel.h"

namespace softflow {

namespace {

bool simd_kernel_for(CpuKernel choice, const CellParams& cell) {
  return choice == CpuKernel::simd &&
         simd_handles(cell.shape, cell.method, cell.precision == Precision::float64);
}

}  // namespace

std::string cpu_kernel_name(CpuKernel choice, const CellParams& cell) {
  if (!simd_kernel_for(choice, cell)) return "scalar";
  const bool float64 = cell.precision == Precision::float64;
  return "simd (" + simd_target() + ", " + std::to_string(simd_lanes(float64)) + " lanes x " +
         std::to_string(simd_slices(cell.shape, cell.method, float64)) + ")";
}

template <class Real>
CpuCellSimulation<Real>::CpuCellSimulation(const Study& study, const CellParams& cell, std::uint32_t cell_index,
                                           CpuKernel kernel, bool keep_initial_states)
    : study_(study), cell_(cell), cell_index_(cell_index), runs_(study.runs),
      state_size_(cell.shape.state_size()), checkpoints_(cell_checkpoints(study, cell)),
      data_(cell, study.seed, cell_index, study.runs), states_(size_t(runs_) * size_t(state_size_)),
      records_(size_t(runs_)), simd_(simd_kernel_for(kernel, cell)) {
  const ModelShape& shape = cell.shape;
  const InitParams init = init_params(cell);
#pragma omp parallel
  {
    std::vector<Real> scratch(size_t(shape.scratch_size()));
#pragma omp for schedule(static)
    for (long long run = 0; run < runs_; ++run) {
      Real* theta = states_.data() + run * state_size_;
      draw_initial_state(shape, init, study.seed, cell_index, std::uint32_t(run), theta);
      records_[size_t(run)] = initial_record(shape, theta, data_.for_run(run), scratch.data());
    }
  }
  if (keep_initial_states && observes_logistic_values(shape) &&
      double(states_.size()) * sizeof(Real) <= 0.2 * available_memory_bytes())
    initial_states_ = states_;
}

template <class Real>
void CpuCellSimulation<Real>::advance_run(long long run, size_t c, Real* work) {
  RunRecord& rec = records_[size_t(run)];
  if (rec.status != RunStatus::running) return;
  // Every run starts at t = 0 (step 0); the first checkpoint may lie after it.
  Real* theta = states_.data() + run * state_size_;
  if (cell_.method == Method::dopri5)
    advance_adaptive(cell_.shape, cell_.adaptive, checkpoints_.times[c], study_.stop, theta, data_.for_run(run), rec,
                     work);
  else
    advance_fixed_step(cell_.shape, cell_.method, cell_.step, c == 0 ? 0 : checkpoints_.steps[c - 1],
                       checkpoints_.steps[c], study_.stop, theta, data_.for_run(run), rec, work);
}

template <class Real>
void CpuCellSimulation<Real>::advance_simd_groups(long long begin, long long end, size_t c) {
  const bool float64 = cell_.precision == Precision::float64;
  const int lanes = simd_lanes(float64) * simd_slices(cell_.shape, cell_.method, float64);
  SimdGroup<Real> group;
  group.shape = &cell_.shape;
  group.method = cell_.method;
  group.step = cell_.step;
  group.k_from = c == 0 ? 0 : checkpoints_.steps[c - 1];
  group.k_to = checkpoints_.steps[c];
  group.stop = &study_.stop;
  group.data_per_run = !data_.shared();
  if (group.k_to == group.k_from) {  // no steps (the checkpoint at t = 0): only the time, as advance_fixed_step
    for (long long run = begin; run < end; ++run)
      if (records_[size_t(run)].status == RunStatus::running) records_[size_t(run)].t = double(group.k_to) * group.step;
    return;
  }
  for (long long first = begin; first < end; first += lanes) {
    group.count = int(std::min<long long>(lanes, end - first));
    group.states = states_.data() + first * state_size_;
    group.data = data_.for_run(first);
    group.records = records_.data() + first;
    simd_advance(group);
  }
}

template <class Real>
void CpuCellSimulation<Real>::advance_and_observe(size_t c, CheckpointObservations& out, Progress* progress) {
  if (c != next_checkpoint_) throw std::logic_error("checkpoints must be visited in order");
  ++next_checkpoint_;
  const ModelShape& shape = cell_.shape;
  const InitParams init = init_params(cell_);
  out.resize(runs_);
  out.t = checkpoints_.times[c];
  out.step = checkpoints_.steps[c];
  const long long tiles = (runs_ + kCpuTileRuns - 1) / kCpuTileRuns;
  // Progress counts a run's segment when its costlier pass is done: the steps, or an attention run's att-SVMs.
  const bool attention = shape.model == ModelKind::attention;
  const auto advance_start = std::chrono::steady_clock::now();
#pragma omp parallel
  {
    std::vector<Real> work(simd_ ? 0 : static_cast<size_t>(integrator_workspace_size(shape, cell_.method)));
#pragma omp for schedule(dynamic, 1)
    for (long long tile = 0; tile < tiles; ++tile) {
      const long long begin = tile * kCpuTileRuns, end = std::min(runs_, begin + kCpuTileRuns);
      if (simd_) {
        advance_simd_groups(begin, end, c);
      } else {
        for (long long run = begin; run < end; ++run) advance_run(run, c, work.data());
      }
      if (progress && !attention) progress->add(end - begin);
    }
  }
  advance_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - advance_start).count();
#pragma omp parallel
  {
    std::vector<Real> work(static_cast<size_t>(integrator_workspace_size(shape, cell_.method)));
    std::vector<Real> initial(initial_states_.empty() ? static_cast<size_t>(state_size_) : 0);
    std::vector<double> svm_work(shape.model == ModelKind::attention ? size_t(svm_workspace_size(shape)) : 0);
    double values[kStateObservableCount];
#pragma omp for schedule(dynamic, 1)
    for (long long tile = 0; tile < tiles; ++tile) {
      const long long begin = tile * kCpuTileRuns, end = std::min(runs_, begin + kCpuTileRuns);
      for (long long run = begin; run < end; ++run) {
        RunRecord& rec = records_[size_t(run)];
        // A stopped run is observed at its frozen state; its event times and status stay as they were.
        const double t = rec.status == RunStatus::running ? checkpoints_.times[c] : rec.t;
        const Real* theta0 = nullptr;
        if (!initial_states_.empty()) {
          theta0 = initial_states_.data() + run * state_size_;
        } else if (observes_logistic_values(shape)) {
          draw_initial_state(shape, init, study_.seed, cell_index_, std::uint32_t(run), initial.data());
          theta0 = initial.data();
        }
        out.winner[size_t(run)] =
            observe_run(shape, cell_.method == Method::dopri5, t, study_.stop, state(run), theta0,
                        data_.for_run(run), rec, work.data(), work.data() + state_size_, values);
        if (shape.model == ModelKind::attention)
          observe_attention_direction(shape, rec, state(run), data_.for_run(run), svm_work.data(), values);
        for (int o = 0; o < kStateObservableCount; ++o) out.values[o][size_t(run)] = values[o];
        out.records[size_t(run)] = rec;
      }
      if (progress && attention) progress->add(end - begin);
    }
  }
}

template <class Real>
long long CpuCellSimulation<Real>::trajectory_steps() const {
  long long total = 0;
  for (const auto& rec : records_) total += rec.steps + rec.rejected;
  return total;
}

double cpu_cell_bytes(const Study& study, const CellParams& cell, int threads) {
  const double real_bytes = cell.precision == Precision::float32 ? 4.0 : 8.0;
  const double runs = double(study.runs);
  const double per_run = real_bytes * cell.shape.state_size() + sizeof(RunRecord) * 2 +
                         (kStateObservableCount * 8.0 + 4.0) + 8.0 /* sorting copy */ +
                         (cell.data_shared() ? 0.0 : real_bytes * cell.shape.data_size());
  const double svm_doubles = cell.shape.model == ModelKind::attention ? double(svm_workspace_size(cell.shape)) : 0.0;
  const double workspace = real_bytes * (integrator_workspace_size(cell.shape, cell.method) + cell.shape.state_size());
  const double per_thread = workspace + 8.0 * svm_doubles +
                            simd_thread_bytes(cell.shape, cell.method, cell.precision == Precision::float64);
  return runs * per_run + threads * per_thread;
}

template class CpuCellSimulation<float>;
template class CpuCellSimulation<double>;

}  // namespace softflow
