// Purpose: the CUDA backend (see cuda_backend.h). Thread-per-run kernels over a persistent grid: each thread owns a
// workspace slot and walks run ids with a grid stride, advancing one run from checkpoint to checkpoint with the
// shared integrators (include/softflow/), then observing it with the shared observe_run (and, for the attention
// family, observe_attention_direction in a kernel of its own, with a double att-SVM workspace per slot). Per-run
// observables stay on the device (one array per observable, run-major) and DeviceStatistics reduces them.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "device_array.cuh"
#include "device_statistics.cuh"
#include "grid_launch.cuh"
#include "block_dopri5.cuh"
#include "fused_dopri5.cuh"
#include "block_per_run.cuh"
#include "block_tied.cuh"
#include "fused_gd.cuh"
#include "fused_rk4.cuh"
#include "shared_attention.cuh"
#include "shared_regression.cuh"
#include "softflow/observables.h"

namespace softflow {
namespace {

constexpr int kThreadsPerBlock = 128;
// gd cells with at least this many state entries take the block-per-run kernel (when no fused kernel fits).
constexpr long long kBlockGdMinState = 64;

// Counters reduced by count_kernel: by status, above each passage threshold, then the winner statistics.
enum CounterIndex : int {
  kCountStatus = 0,                         // 5 entries, by RunStatus
  kCountAbove = 5,                          // kPassageCount entries
  kCountFinite = kCountAbove + kPassageCount,
  kCountWinnerIsU0,
  kCountA0Defined,
  kCountWinnerIsA0,
  kCountSteps,                              // accepted + rejected steps
  kCountWinners                             // n entries: winner counts
};

template <class Real>
struct CellArgs {
  ModelShape shape;
  Method method;
  double step;
  AdaptiveRule adaptive;
  InitParams init;
  StopRule stop;
  std::uint64_t seed;
  std::uint32_t cell_index;
  long long first_run;    // global run id of the wave's first run
  long long runs;         // runs in this wave
  long long total_runs;   // runs in the cell
  Real* states;           // wave: runs x state_size
  RunRecord* records;     // wave: runs
  const Real* data;       // wave: data_size per run, or one shared copy (data_stride 0)
  long long data_stride;
  Real* work;             // slots x work_stride
  long long work_stride;
  double* svm_work;       // attention: slots x svm_workspace_size (the att-SVMs of the direction classes)
  double* values;         // cell: kSummarizedCount x total_runs
  int* winners;           // cell: total_runs

  __device__ const Real* data_for(long long i) const { return data + i * data_stride; }
  __device__ bool needs_initial_state() const { return observes_logistic_values(shape); }
};

// Draws the wave's per-run target vectors on the device (same bits as the host: draw_target_vector uses only
// correctly rounded operations for these losses). targets: runs x data_size of the wave.
template <class Real>
__global__ void draw_targets_kernel(CellArgs<Real> a, Real* targets) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < a.runs;
       i += gridDim.x * (long long)blockDim.x)
    draw_target_vector(a.shape, a.init, a.seed, a.cell_index, std::uint32_t(a.first_run + i),
                       targets + i * a.data_stride);
}

// Draws the wave's initial states and fills their records. i: index in the wave; run = first_run + i.
template <class Real>
__global__ void init_kernel(CellArgs<Real> a) {
  const long long slot = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  Real* scratch = a.work + slot * a.work_stride;
  const int p = a.shape.state_size();
  for (long long i = slot; i < a.runs; i += gridDim.x * (long long)blockDim.x) {
    Real* theta = a.states + i * p;
    draw_initial_state(a.shape, a.init, a.seed, a.cell_index, std::uint32_t(a.first_run + i), theta);
    a.records[i] = initial_record(a.shape, theta, a.data_for(i), scratch);
  }
}

// Advances the wave's running runs to checkpoint c (from c - 1, or from t = 0 for c = 0; steps step_from..step_to
// for fixed-step methods, where step_from == step_to only observes) and writes every run's observables at its global
// run id.
template <class Real>
__global__ void advance_observe_kernel(CellArgs<Real> a, int c, double t_checkpoint, long long step_from,
                                       long long step_to) {
  const long long slot = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  Real* work = a.work + slot * a.work_stride;
  const int p = a.shape.state_size();
  Real* initial = work + integrator_workspace_size(a.shape, a.method);
  for (long long i = slot; i < a.runs; i += gridDim.x * (long long)blockDim.x) {
    const long long run = a.first_run + i;
    RunRecord rec = a.records[i];
    Real* theta = a.states + i * p;
    const Real* data = a.data_for(i);
    if (rec.status == RunStatus::running) {  // from t = 0 (step 0) for c = 0
      if (a.method == Method::dopri5)
        advance_adaptive(a.shape, a.adaptive, t_checkpoint, a.stop, theta, data, rec, work);
      else
        advance_fixed_step(a.shape, a.method, a.step, step_from, step_to, a.stop, theta, data, rec, work);
    }
    // A stopped run is observed at its frozen state; its event times and status stay as they were.
    const double t = rec.status == RunStatus::running ? t_checkpoint : rec.t;
    if (a.needs_initial_state()) draw_initial_state(a.shape, a.init, a.seed, a.cell_index, std::uint32_t(run), initial);
    double values[kStateObservableCount];
    a.winners[run] = observe_run(a.shape, a.method == Method::dopri5, t, a.stop, theta,
                                 a.needs_initial_state() ? initial : nullptr, data, rec, work, work + p, values);
    for (int o = 0; o < kStateObservableCount; ++o) a.values[o * a.total_runs + run] = values[o];
    for (int k = 0; k < kPassageCount; ++k)
      a.values[(kStateObservableCount + k) * a.total_runs + run] = rec.first_time[k] >= 0 ? rec.first_time[k] : NAN;
    a.records[i] = rec;
  }
}

// The attention family's direction observables of the wave's runs (after advance_observe_kernel, which left them
// NaN): each thread solves its runs' att-SVMs in double in its own workspace slot. A kernel of its own, so that the
// solver's registers do not lower the occupancy of the stepping kernel.
template <class Real>
__global__ void attention_direction_kernel(CellArgs<Real> a) {
  const long long slot = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  double* svm_work = a.svm_work + slot * svm_workspace_size(a.shape);
  const int p = a.shape.state_size();
  for (long long i = slot; i < a.runs; i += gridDim.x * (long long)blockDim.x) {
    const long long run = a.first_run + i;
    double values[kStateObservableCount];
    for (int o = kCosOptimal; o <= kDirectionNotConverged; ++o) values[o] = NAN;
    observe_attention_direction(a.shape, a.records[i], a.states + i * p, a.data_for(i), svm_work, values);
    for (int o = kCosOptimal; o <= kDirectionNotConverged; ++o) a.values[o * a.total_runs + run] = values[o];
  }
}

// Integer counters of a checkpoint (exact, so the order of the atomic adds does not matter).
__global__ void count_kernel(const RunRecord* records, const int* winners, const double* s_max, long long runs,
                             unsigned long long* counters) {
  unsigned long long local[kCountWinners] = {};
  for (long long run = blockIdx.x * (long long)blockDim.x + threadIdx.x; run < runs;
       run += gridDim.x * (long long)blockDim.x) {
    const RunRecord& rec = records[run];
    ++local[kCountStatus + int(rec.status)];
    local[kCountSteps] += (unsigned long long)(rec.steps + rec.rejected);
    if (rec.status == RunStatus::diverged) continue;
    ++local[kCountFinite];
    for (int k = 0; k < kPassageCount; ++k)
      if (s_max[run] >= passage_threshold(k)) ++local[kCountAbove + k];
    atomicAdd(&counters[kCountWinners + winners[run]], 1ull);
    if (winners[run] == rec.argmax_u0) ++local[kCountWinnerIsU0];
    if (rec.argmax_a0 >= 0) {
      ++local[kCountA0Defined];
      if (winners[run] == rec.argmax_a0) ++local[kCountWinnerIsA0];
    }
  }
  for (int i = 0; i < kCountWinners; ++i)
    if (local[i]) atomicAdd(&counters[i], local[i]);
}

// Device bytes per run of a wave: its state, per-run data (none where shared) and record, and the per-run buffers
// of the cuBLAS paths that run (regression_buffers, attention_buffers).
double wave_bytes_per_run(const ModelShape& shape, bool shared_data, int real_bytes, bool regression_buffers,
                          bool attention_buffers) {
  return double(real_bytes) * double(shape.state_size() + (shared_data ? 0 : shape.data_size())) +
         sizeof(RunRecord) +
         (regression_buffers ? double(shared_regression_bytes_per_run(shape, real_bytes)) : 0.0) +
         (attention_buffers ? double(shared_attention_bytes_per_run(shape, real_bytes)) : 0.0);
}

}  // namespace

// A cell lives on the device in one wave when it fits (states, records and data stay resident between
// checkpoints); otherwise in waves of whole statistics blocks, each uploaded, advanced, observed and downloaded in
// turn at every checkpoint, with the host holding the states. The observables of all runs stay on the device in
// both cases, so the statistics are exact and computed once per checkpoint.
template <class Real>
struct CudaCellSimulation<Real>::Impl {
  CudaCellInput<Real> input;
  DeviceArray<double> values;
  DeviceArray<int> winners;
  DeviceStatistics statistics;
  DeviceArray<Real> states, data, work;
  DeviceArray<double> svm_work;  // attention only
  DeviceArray<RunRecord> records;
  DeviceArray<unsigned long long> counters;
  std::vector<Real> host_states;           // several waves only: every run's state
  std::vector<RunRecord> host_records;     // several waves only: every run's record
  CellArgs<Real> args;
  long long wave_runs = 0, waves = 1;
  unsigned grid = 1;
  size_t next_checkpoint = 0;
  double kernel_seconds = 0;
  long long steps_taken = 0;
  bool fused_gd = false;  // gd steps by the fused register kernel (fused_gd.cuh)
  bool block_gd = false;  // gd steps by the block-per-run kernel (block_per_run.cuh)
  bool fused_rk4 = false;  // rk4 steps by the fused register kernel (fused_rk4.cuh)
  bool block_rk4 = false;  // rk4 steps by the block-per-run kernel (block_per_run.cuh)
  bool block_dopri5 = false;  // dopri5 steps by the block-per-run kernel (block_dopri5.cuh)
  bool fused_dopri5 = false;  // dopri5 steps by the fused register kernel (fused_dopri5.cuh)
  bool block_tied = false;  // the tied model's gd or rk4 steps by a block-per-run kernel (block_tied.cuh)
  std::unique_ptr<SharedRegressionSteps<Real>> shared_regression;  // regression gd through cuBLAS, when chosen
  std::unique_ptr<SharedAttentionSteps<Real>> shared_attention;    // attention steps through cuBLAS, when chosen
  cudaEvent_t kernel_start = nullptr, kernel_stop = nullptr;

  explicit Impl(const CudaCellInput<Real>& in)
      : input(in), values(size_t(in.runs) * kSummarizedCount), winners(size_t(in.runs)), statistics(in.runs) {
    const ModelShape& shape = in.shape;
    const long long p = shape.state_size(), q = shape.data_size();
    counters.allocate(size_t(kCountWinners + shape.n));

    // Workspace slots: as many threads as the device keeps resident, within a quarter of the free memory.
    int device = 0, sms = 0, blocks_per_sm = 0;
    SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
    SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    SOFTFLOW_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, advance_observe_kernel<Real>,
                                                                      kThreadsPerBlock, 0));
    size_t free_bytes = 0, total_bytes = 0;
    SOFTFLOW_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const long long work_stride = integrator_workspace_size(shape, in.method) + p;
    const long long svm_doubles = shape.model == ModelKind::attention ? svm_workspace_size(shape) : 0;
    const long long slot_bytes = work_stride * (long long)sizeof(Real) + svm_doubles * (long long)sizeof(double);
    long long slots = (long long)std::max(1, blocks_per_sm) * sms * kThreadsPerBlock;
    slots = std::min(slots, ((long long)in.runs + kThreadsPerBlock - 1) / kThreadsPerBlock * kThreadsPerBlock);
    slots = std::min(slots, std::max<long long>(kThreadsPerBlock, (long long)(free_bytes / 4) / slot_bytes /
                                                                      kThreadsPerBlock * kThreadsPerBlock));
    grid = unsigned(slots / kThreadsPerBlock);
    work.allocate(size_t(slots) * size_t(work_stride));
    if (svm_doubles > 0) svm_work.allocate(size_t(slots) * size_t(svm_doubles));

    // Wave size: what fits in 85 % of the memory still free (statistics reduce over the cell-wide observables, so
    // waves need not align with statistics blocks).
    SOFTFLOW_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const bool cublas_steps = in.method == Method::gd && in.cublas_regression != 0 &&
                              shared_regression_available(shape, in.shared_data, int(sizeof(Real)));
    // The cuBLAS attention path's M (runs-independent, N T x d^2 for trainable W) is allocated beside the waves:
    // where it would take over half the free memory the per-run path runs instead.
    const bool cublas_attention =
        in.cublas_attention != 0 && shared_attention_available(shape, in.method, in.shared_data) &&
        double(shared_attention_fixed_bytes(shape, int(sizeof(Real)))) <= 0.5 * double(free_bytes);
    const double per_run =
        wave_bytes_per_run(shape, in.shared_data, int(sizeof(Real)), cublas_steps, cublas_attention);
    const double shared_bytes =
        cublas_attention ? double(shared_attention_fixed_bytes(shape, int(sizeof(Real)))) : 0.0;
    wave_runs = std::min<long long>(in.runs, (long long)(0.85 * (double(free_bytes) - shared_bytes) / per_run));
    if (cublas_steps)  // cuBLAS sizes and leading dimensions are ints: runs x m (E) must stay below 2^31 too
      wave_runs = std::min<long long>(
          wave_runs, (1LL << 30) / std::max<long long>({1LL, shape.m, shape.n, shape.d}));
    if (cublas_attention)  // cuBLAS sizes and leading dimensions are ints: runs x rows must stay below 2^31
      wave_runs = std::min<long long>(
          wave_runs, (1LL << 30) / std::max<long long>(p, (long long)shape.inputs * shape.n));
    if (in.wave_runs > 0) wave_runs = std::min<long long>(wave_runs, in.wave_runs);
    if (wave_runs <= 0) throw CudaError("too little device memory for one run beside the workspace");
    waves = (in.runs + wave_runs - 1) / wave_runs;
    states.allocate(size_t(wave_runs * p));
    records.allocate(size_t(wave_runs));
    data.allocate(size_t(in.shared_data ? q : wave_runs * q));
    if (in.shared_data) data.upload(in.data, size_t(q));
    if (!in.shared_data && in.data == nullptr && !device_draws_targets(shape))
      throw std::invalid_argument("CudaCellInput: per-run data of this loss must be drawn on the host");
    if (waves > 1) {
      host_states.resize(size_t(in.runs * p));
      host_records.resize(size_t(in.runs));
    }

    args.shape = shape;
    args.method = in.method;
    args.step = in.step;
    args.adaptive = in.adaptive;
    args.init = in.init;
    args.stop = in.stop;
    args.seed = in.seed;
    args.cell_index = in.cell_index;
    args.total_runs = in.runs;
    args.states = states.get();
    args.records = records.get();
    args.data = data.get();
    args.data_stride = in.shared_data ? 0 : q;
    args.work = work.get();
    args.work_stride = work_stride;
    args.svm_work = svm_work.get();
    args.values = values.get();
    args.winners = winners.get();
    if (cublas_steps) shared_regression.reset(new SharedRegressionSteps<Real>(shape, wave_runs));
    if (cublas_attention)
      shared_attention.reset(new SharedAttentionSteps<Real>(shape, in.method, data.get(), wave_runs));
    fused_gd = in.method == Method::gd && in.fused_lanes >= 0 && fused_gd_available(shape, int(sizeof(Real)), nullptr);
    fused_rk4 = in.method == Method::rk4 && in.fused_rk4_lanes != 0 &&
                fused_rk4_available(shape, int(sizeof(Real)), nullptr);
    block_gd = in.method == Method::gd && !fused_gd && !shared_regression && in.block_gd != 0 &&
               (in.block_gd == 1 || shape.state_size() >= kBlockGdMinState) &&
               block_gd_available(shape, int(sizeof(Real)));
    block_rk4 = in.method == Method::rk4 && !fused_rk4 && in.block_rk4 != 0 &&
                (in.block_rk4 == 1 || shape.state_size() >= kBlockGdMinState) &&
                block_rk4_available(shape, int(sizeof(Real)));
    fused_dopri5 = in.method == Method::dopri5 && in.fused_dopri5_lanes != 0 &&
                   fused_dopri5_available(shape, int(sizeof(Real)), nullptr);
    block_dopri5 = in.method == Method::dopri5 && !fused_dopri5 && in.block_dopri5 != 0 &&
                   (in.block_dopri5 == 1 || shape.state_size() >= kBlockGdMinState) &&
                   block_dopri5_available(shape, int(sizeof(Real)));
    block_tied = in.block_tied != 0 && (in.block_tied == 1 || shape.state_size() >= kBlockGdMinState) &&
                 ((in.method == Method::gd && block_tied_gd_available(shape, int(sizeof(Real)))) ||
                  (in.method == Method::rk4 && block_tied_rk4_available(shape, int(sizeof(Real)))));
    SOFTFLOW_CUDA_CHECK(cudaEventCreate(&kernel_start));
    SOFTFLOW_CUDA_CHECK(cudaEventCreate(&kernel_stop));
    for (long long wave = 0; wave < waves; ++wave) {
      select_wave(wave, false);
      launch_grid(init_kernel<Real>, grid, kThreadsPerBlock, 0, args);
      store_wave();
    }
    SOFTFLOW_CUDA_CHECK(cudaDeviceSynchronize());
  }

  ~Impl() {
    if (kernel_start) cudaEventDestroy(kernel_start);
    if (kernel_stop) cudaEventDestroy(kernel_stop);
  }

  // Points the kernel arguments at wave `wave`; with several waves, uploads its per-run data and (if with_state)
  // its states and records.
  void select_wave(long long wave, bool with_state) {
    args.first_run = wave * wave_runs;
    args.runs = std::min(wave_runs, input.runs - args.first_run);
    const size_t p = size_t(input.shape.state_size()), q = size_t(input.shape.data_size());
    const size_t first = size_t(args.first_run), count = size_t(args.runs);
    if (!input.shared_data && (waves > 1 || !data_ready)) {
      if (input.data != nullptr) {
        data.upload(input.data + first * q, count * q);
      } else {
        launch_grid(draw_targets_kernel<Real>, grid, kThreadsPerBlock, 0, args, data.get());
      }
      data_ready = true;
    }
    if (waves == 1 || !with_state) return;
    states.upload(host_states.data() + first * p, count * p);
    records.upload(host_records.data() + first, count);
  }

  // With several waves, copies the current wave's states and records back to the host.
  void store_wave() {
    if (waves == 1) return;
    const size_t p = size_t(input.shape.state_size());
    const size_t first = size_t(args.first_run), count = size_t(args.runs);
    states.download(host_states.data() + first * p, count * p);
    records.download(host_records.data() + first, count);
  }

  // Adds the current wave's checkpoint counts to the counters.
  void count_wave() {
    const unsigned count_grid = unsigned(std::min<long long>((args.runs + 255) / 256, 4096));
    launch_grid(count_kernel, count_grid, 256, 0, records.get(), winners.get() + args.first_run,
                values.get() + kSMax * input.runs + args.first_run, args.runs, counters.get());
  }

  bool data_ready = false;  // one wave: the per-run data is on the device
};

template <class Real>
CudaCellSimulation<Real>::CudaCellSimulation(const CudaCellInput<Real>& input) : impl_(new Impl(input)) {}

template <class Real>
CudaCellSimulation<Real>::~CudaCellSimulation() = default;

template <class Real>
size_t CudaCellSimulation<Real>::checkpoint_count() const {
  return impl_->input.times.size();
}

template <class Real>
long long CudaCellSimulation<Real>::waves() const {
  return impl_->waves;
}

template <class Real>
void CudaCellSimulation<Real>::advance_and_summarize(size_t c, CheckpointSummary& out) {
  Impl& s = *impl_;
  if (c != s.next_checkpoint) throw std::logic_error("checkpoints must be visited in order");
  ++s.next_checkpoint;
  const CudaCellInput<Real>& in = s.input;
  s.counters.zero();
  for (long long wave = 0; wave < s.waves; ++wave) {
    s.select_wave(wave, true);
    SOFTFLOW_CUDA_CHECK(cudaEventRecord(s.kernel_start));
    long long step_from = c > 0 ? in.steps[c - 1] : 0;
    if ((s.fused_gd || s.block_gd || s.fused_rk4 || s.block_rk4 || s.block_tied || s.shared_regression ||
         s.shared_attention) &&
        step_from < in.steps[c]) {
      const FixedStepSegmentArgs<Real> segment{in.shape,       in.step,        step_from,
                                               in.steps[c],    in.stop,        s.args.runs,
                                               s.states.get(), s.records.get(), s.data.get(),
                                               s.args.data_stride, in.fused_variant};
      if (s.fused_gd)
        fused_gd_advance(segment, in.fused_lanes);
      else if (s.fused_rk4)
        fused_rk4_advance(segment, in.fused_rk4_lanes);
      else if (s.block_rk4)
        block_rk4_advance(segment);
      else if (s.block_tied && in.method == Method::rk4)
        block_tied_rk4_advance(segment);
      else if (s.block_tied)
        block_tied_gd_advance(segment);
      else if (s.shared_regression)
        s.shared_regression->advance(segment);
      else if (s.shared_attention)
        s.shared_attention->advance(segment);
      else
        block_gd_advance(segment);
      step_from = in.steps[c];  // the kernel below only observes
    }
    const AdaptiveSegmentArgs<Real> adaptive_segment{in.shape,       in.adaptive,      in.times[c],
                                                     in.stop,        s.args.runs,      s.states.get(),
                                                     s.records.get(), s.data.get(),    s.args.data_stride};
    if (s.block_dopri5) block_dopri5_advance(adaptive_segment);
    if (s.fused_dopri5) fused_dopri5_advance(adaptive_segment, in.fused_dopri5_lanes);
    // Block-per-run observation for the value-softmax cells the block kernels advanced; every other cell (fused
    // dopri5's and the tied model's among them) is observed by the generic kernel, whose advance_adaptive finds an
    // adaptive run at the checkpoint already and only repeats the checks there.
    if ((s.block_gd || s.block_rk4 || s.block_dopri5 || s.shared_regression) &&
        in.shape.model == ModelKind::value_softmax) {
      const CellArgs<Real>& a = s.args;
      block_observe(BlockObserveArgs<Real>{a.shape, a.stop, a.init, a.seed, a.cell_index, in.times[c], a.first_run,
                                           a.runs, a.total_runs, a.states, a.records, a.data, a.data_stride,
                                           a.values, a.winners, s.block_dopri5});
    } else {
      launch_grid(advance_observe_kernel<Real>, s.grid, kThreadsPerBlock, 0, s.args, int(c), in.times[c], step_from,
                  in.steps[c]);
    }
    if (in.shape.model == ModelKind::attention) {
      launch_grid(attention_direction_kernel<Real>, s.grid, kThreadsPerBlock, 0, s.args);
    }
    SOFTFLOW_CUDA_CHECK(cudaEventRecord(s.kernel_stop));
    SOFTFLOW_CUDA_CHECK(cudaEventSynchronize(s.kernel_stop));
    float milliseconds = 0;
    SOFTFLOW_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, s.kernel_start, s.kernel_stop));
    s.kernel_seconds += milliseconds / 1000.0;
    s.count_wave();
    s.store_wave();
  }

  out = CheckpointSummary();
  out.t = in.times[c];
  out.step = in.steps[c];
  out.runs = in.runs;
  const std::vector<unsigned long long> counters = s.counters.to_host();
  for (int i = 0; i < 5; ++i) out.by_status[i] = (long long)counters[size_t(kCountStatus + i)];
  for (int k = 0; k < kPassageCount; ++k) out.above[k] = (long long)counters[size_t(kCountAbove + k)];
  out.finite = (long long)counters[kCountFinite];
  out.winner_is_u0 = (long long)counters[kCountWinnerIsU0];
  out.a0_defined = (long long)counters[kCountA0Defined];
  out.winner_is_a0 = (long long)counters[kCountWinnerIsA0];
  s.steps_taken = (long long)counters[kCountSteps];
  out.winner_counts.assign(counters.begin() + kCountWinners, counters.end());
  for (int o = 0; o < kSummarizedCount; ++o)
    out.observables[o] = s.statistics.summarize(s.values.get() + o * in.runs, in.runs, in.histogram_bins,
                                                o < kStateObservableCount ? natural_range(o, in.shape.n)
                                                                          : HistogramRange{});
}

template <class Real>
std::string CudaCellSimulation<Real>::stepping_kernel() const {
  const Impl& s = *impl_;
  if (s.shared_regression) return "cublas regression gd";
  if (s.shared_attention) return "cublas attention";
  if (s.block_dopri5) return "block dopri5";
  if (s.fused_dopri5) return "fused dopri5";
  if (s.block_tied) return s.input.method == Method::rk4 ? "block tied rk4" : "block tied gd";
  return s.fused_gd ? "fused gd" : s.block_gd ? "block gd" : s.fused_rk4 ? "fused rk4" : s.block_rk4 ? "block rk4"
                                                                                                       : "generic";
}

template <class Real>
double CudaCellSimulation<Real>::kernel_seconds() const {
  return impl_->kernel_seconds;
}

template <class Real>
long long CudaCellSimulation<Real>::trajectory_steps() const {
  return impl_->steps_taken;
}

template <class Real>
void CudaCellSimulation<Real>::download(std::vector<Real>& states, std::vector<RunRecord>& records) const {
  if (impl_->waves > 1) {
    states = impl_->host_states;
    records = impl_->host_records;
    return;
  }
  states = impl_->states.to_host();
  records = impl_->records.to_host();
}

bool device_draws_targets(const ModelShape& shape) {
  return shape.model != ModelKind::attention && (shape.loss == LossKind::logistic || shape.loss == LossKind::square);
}

double cuda_cell_bytes(const ModelShape& shape, long long runs, bool shared_data, int real_bytes) {
  // Kept on the device for every run: observables, winners, and the statistics' copies (finite, sorted, sort
  // scratch). States, records and per-run data need only one wave, here the smallest (one statistics block), and
  // the workspace at least one block of slots.
  const double cell_wide = double(runs) * (8.0 * kSummarizedCount + 4.0 + 8.0 * 3);
  const double wave = double(std::min<long long>(runs, kStatsBlockRuns)) *
                      (double(real_bytes) * (shape.state_size() + (shared_data ? 0 : shape.data_size())) +
                       sizeof(RunRecord));
  const double svm_doubles = shape.model == ModelKind::attention ? double(svm_workspace_size(shape)) : 0.0;
  // The workspace at dopri5's size, the largest any method needs: an upper bound whatever the cell's method.
  const double workspace =
      double(kThreadsPerBlock) *
      (real_bytes * double(integrator_workspace_size(shape, Method::dopri5) + shape.state_size()) + 8.0 * svm_doubles);
  return cell_wide + wave + workspace;
}

double cuda_wave_host_bytes(const ModelShape& shape, long long runs, bool shared_data, int real_bytes,
                            double free_bytes) {
  // The wave sizing takes 85 % of what is free once the cell-wide arrays and the workspace are allocated. It errs
  // toward waves: the workspace at its cap (a quarter of the free memory; the backend takes one slot per resident
  // thread, up to that), and the cuBLAS paths' buffers wherever they may apply.
  const bool regression = shared_data && shape.model == ModelKind::value_softmax && shape.loss == LossKind::regression;
  const bool attention = shared_data && shape.model == ModelKind::attention;
  const double per_run = wave_bytes_per_run(shape, shared_data, real_bytes, regression, attention);
  const double room = 0.85 * (0.75 * free_bytes - cuda_cell_bytes(shape, runs, shared_data, real_bytes) -
                              (attention ? double(shared_attention_fixed_bytes(shape, real_bytes)) : 0.0));
  if (double(runs) * per_run <= room) return 0.0;
  return double(runs) * (double(real_bytes) * shape.state_size() + sizeof(RunRecord));
}

CudaDeviceInfo cuda_device_info() {
  int device = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp properties;
  SOFTFLOW_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  size_t free_bytes = 0, total_bytes = 0;
  SOFTFLOW_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  CudaDeviceInfo info;
  info.name = properties.name;
  info.free_bytes = double(free_bytes);
  info.total_bytes = double(total_bytes);
  info.multiprocessors = properties.multiProcessorCount;
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&info.clock_khz, cudaDevAttrClockRate, device));
  info.compute_major = properties.major;
  info.compute_minor = properties.minor;
  return info;
}

template class CudaCellSimulation<float>;
template class CudaCellSimulation<double>;

}  // namespace softflow
