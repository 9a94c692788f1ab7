// Purpose: the CPU backend: advances every run of one cell from checkpoint to checkpoint with OpenMP threads, each
// thread taking tiles of consecutive run ids. The SIMD kernel (simd_kernel.h) advances a tile's runs in groups of
// one run per vector lane, where it handles the cell (value-softmax gd and rk4); the scalar kernel (integrators.h,
// the reference) advances one run at a time with its state and workspace in L1. Results do not depend on the
// thread count: a run's math is the same wherever it runs (groups are aligned to tiles), and statistics reduce in
// fixed blocks of run ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cell_data.h"
#include "observations.h"
#include "progress.h"
#include "study.h"

namespace softflow {

// Runs per scheduling tile of the CPU backend (a multiple of every SIMD lane count).
constexpr int kCpuTileRuns = 64;

// simd: the SIMD kernel wherever it handles the cell, else the scalar one; scalar: the scalar kernel always.
enum class CpuKernel { simd, scalar };

// The kernel that advances a cell under a choice: "simd (AVX3, 16 lanes x 1)" or "scalar".
std::string cpu_kernel_name(CpuKernel choice, const CellParams& cell);

template <class Real>
class CpuCellSimulation {
 public:
  // Draws the cell's data and every run's initial state (runs: study.runs). keep_initial_states: false draws the
  // initial states again at every observation that needs them, even where memory would hold a copy.
  CpuCellSimulation(const Study& study, const CellParams& cell, std::uint32_t cell_index,
                    CpuKernel kernel = CpuKernel::simd, bool keep_initial_states = true);

  size_t checkpoint_count() const { return checkpoints_.times.size(); }
  const CellCheckpoints& checkpoints() const { return checkpoints_; }

  // Advances every running run to checkpoint c (from checkpoint c - 1, or from t = 0 for c = 0), then observes
  // them: two threaded passes, every run advanced before any is observed. Checkpoints must be visited in order.
  void advance_and_observe(size_t c, CheckpointObservations& out, Progress* progress);
  // Wall seconds of the last checkpoint's advance pass alone (its steps; `softflow bench` times these).
  double advance_seconds() const { return advance_seconds_; }

  long long runs() const { return runs_; }
  const Real* state(long long run) const { return states_.data() + run * state_size_; }
  const Real* data(long long run) const { return data_.for_run(run); }
  const RunRecord& record(long long run) const { return records_[size_t(run)]; }
  // Total accepted + rejected steps over all runs so far.
  long long trajectory_steps() const;

 private:
  void advance_run(long long run, size_t c, Real* work);
  void advance_simd_groups(long long begin, long long end, size_t c);
  const Study& study_;
  const CellParams& cell_;
  std::uint32_t cell_index_;
  long long runs_;
  int state_size_;
  CellCheckpoints checkpoints_;
  CellData<Real> data_;
  std::vector<Real> states_;        // runs x state_size
  // runs x state_size: the initial states, for the logistic loss's invariant_drift, kept where they take at most a
  // fifth of the memory still available (with the states and observations the memory check allowed, at most about
  // 97 % of what was available in all); else empty, and each observation draws a run's initial state again (at
  // d = n = 256, over half a study's time on the Zen 4 host). The observables are the same bits either way.
  std::vector<Real> initial_states_;
  std::vector<RunRecord> records_;  // runs
  size_t next_checkpoint_ = 0;
  bool simd_ = false;  // the SIMD kernel advances this cell
  double advance_seconds_ = 0;
};

// Bytes of host memory the CPU backend needs for one cell (states, records, observations, data, and the
// integrator workspace and SIMD group buffer of each of `threads` threads).
double cpu_cell_bytes(const Study& study, const CellParams& cell, int threads);

}  // namespace softflow
