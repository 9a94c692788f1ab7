// Purpose: the CUDA backend's host interface (no CUDA types): one cell's runs live on the device from the initial
// draw to the last checkpoint; at each checkpoint the device reduces them to a CheckpointSummary, and only those
// statistics cross to the host. The per-trajectory math is the same shared code the CPU backend runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint_summary.h"
#include "softflow/initial_state.h"
#include "softflow/integrators.h"
#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

// Everything the device needs to run one cell. data: host array of shape.data_size() Reals (shared_data) or
// runs x data_size() (one per run), drawn by the host (cell_data.h); or null for per-run targets the device draws
// itself (device_draws_targets), bit-identical to the host's.
template <class Real>
struct CudaCellInput {
  ModelShape shape;
  Method method = Method::dopri5;
  double step = 0.1;
  AdaptiveRule adaptive;
  InitParams init;
  StopRule stop;
  std::uint64_t seed = 0;
  std::uint32_t cell_index = 0;
  long long runs = 0;
  int histogram_bins = 20;
  const Real* data = nullptr;
  bool shared_data = false;
  std::vector<double> times;     // checkpoint times
  std::vector<long long> steps;  // fixed-step integrators: checkpoint step indices
  int fused_lanes = 0;           // fused gd kernel: lanes per run (0 = default, -1 = not the fused kernel)
  int block_gd = -1;             // block-per-run gd kernel (block_per_run.cuh): -1 = where faster, 0 = never, 1 = always
  int fused_variant = -1;        // fused gd kernel loop variant (fused_gd.cuh; -1 = the faster for the lanes)
  int fused_rk4_lanes = 0;       // fused rk4 kernel (fused_rk4.cuh): lanes per run (-1 = default); 0 = off (the
                                 // default until a GPU has validated it)
  int block_rk4 = 0;             // block-per-run rk4 kernel: 1 = always, -1 = as block_gd's rule; 0 = never (the
                                 // default until a GPU has validated it)
  int cublas_regression = 0;     // regression gd with shared data through cuBLAS (shared_regression.cuh): 1 = where
                                 // it applies; 0 = never (the default until a GPU has validated and measured it)
  int cublas_attention = 0;      // attention gd / normalized gd with shared data through cuBLAS
                                 // (shared_attention.cuh): as cublas_regression
  int block_dopri5 = 0;          // block-per-run dopri5 kernel (block_dopri5.cuh): 1 = always, -1 = as block_gd's
                                 // rule; 0 = never (the default until a GPU has validated it)
  int block_tied = 0;            // block-per-run gd and rk4 kernels of the tied model (block_tied.cuh): as
                                 // block_dopri5
  int fused_dopri5_lanes = 0;    // fused dopri5 kernel (fused_dopri5.cuh): lanes per run (-1 = default); 0 = off
                                 // (the default until a GPU has validated it)
  long long wave_runs = 0;       // most runs per wave (0 = as many as device memory holds; tests force waves)
};

template <class Real>
class CudaCellSimulation {
 public:
  // Allocates device memory, uploads the data and draws every run's initial state on the device.
  // Throws CudaError on CUDA failures.
  explicit CudaCellSimulation(const CudaCellInput<Real>& input);
  ~CudaCellSimulation();
  CudaCellSimulation(const CudaCellSimulation&) = delete;
  CudaCellSimulation& operator=(const CudaCellSimulation&) = delete;

  size_t checkpoint_count() const;
  // Waves the cell runs in (1 when it fits in device memory; then nothing but statistics crosses to the host).
  long long waves() const;
  // Advances every running run to checkpoint c (from c - 1, or from t = 0 for c = 0), observes, and reduces
  // the observations to statistics on the device. Checkpoints must be visited in order.
  void advance_and_summarize(size_t c, CheckpointSummary& out);
  // Seconds spent in the advance-and-observe kernels so far (CUDA events).
  double kernel_seconds() const;
  // The kernel that takes the cell's steps: "fused gd", "block gd", "fused rk4", "block rk4", "block dopri5",
  // "fused dopri5", "block tied gd", "block tied rk4", "cublas regression gd", "cublas attention" or "generic" (the
  // thread-per-run kernel on the shared math, which takes every integrator and model).
  std::string stepping_kernel() const;
  // Total accepted + rejected steps over all runs so far (reduced on the device).
  long long trajectory_steps() const;
  // Copies every run's state (runs x state_size) and record to the host: for tests and per-run dumps only.
  void download(std::vector<Real>& states, std::vector<RunRecord>& records) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for the losses whose per-run targets the device draws itself (random unit vectors: logistic, square, tied;
// not the attention family, whose data sets the host draws).
bool device_draws_targets(const ModelShape& shape);

// Device bytes a cell needs at least: its observables and statistics scratch for every run, and one wave of the
// smallest size (one statistics block) for states, records and per-run data.
double cuda_cell_bytes(const ModelShape& shape, long long runs, bool shared_data, int real_bytes);

// Host bytes a cell keeps while it runs in several waves: every run's state and record wait on the host between
// waves. 0 where, by free_bytes (the device's free memory before the cell), its states fit in one wave: an estimate
// made before the cell allocates, which errs toward waves (cells whose states take over about 60 % of the free
// memory count as waves whatever the kernels).
double cuda_wave_host_bytes(const ModelShape& shape, long long runs, bool shared_data, int real_bytes,
                            double free_bytes);

struct CudaDeviceInfo {
  std::string name;
  double free_bytes = 0, total_bytes = 0;
  int multiprocessors = 0;
  int clock_khz = 0;  // the SM clock the driver reports (its maximum)
  int compute_major = 0, compute_minor = 0;
};
// Device 0's properties. Throws CudaError.
CudaDeviceInfo cuda_device_info();

}  // namespace softflow
