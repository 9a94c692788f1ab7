// Purpose: one value-softmax run's flow evaluation spread over a thread block (the block-per-run kernels,
// block_per_run.cu and block_dopri5.cu, and the shared-data regression steps, shared_regression.cu): block-wide
// reductions (CUB), the softmax and beta = V s (one warp per row), the loss residual on one thread through the
// shared loss_and_residual, u = V^T r and da (one thread per column); optionally at a stage's shift of V (rk4,
// dopri5). Also the block kernels' launch: block size by shape, grid by occupancy, run vectors in shared memory.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cub/block/block_reduce.cuh>
#include <type_traits>
#include <utility>

#include "cuda_check.h"
#include "grid_launch.cuh"
#include "softflow/model.h"
#include "softflow/run_record.h"
#include "softflow/softmax.h"

namespace softflow {

// The matrix a stage evaluates, entry by entry: at(v_ij, i, j) is entry (i, j) of the stage's V, formed exactly as
// the CPU forms the stage's state (integrators.h), never stored. NoShift: V itself.
struct NoShift {
  template <class Real>
  __device__ Real at(Real v_ij, int, int) const { return v_ij; }
};

// An rk4 stage's rank-one shift V + c r s^T: c, and r (d), s (n) in shared memory.
template <class Real>
struct StageShift {
  Real c;
  const Real *r, *s;
  __device__ Real at(Real v_ij, int i, int j) const { return v_ij + c * (r[i] * s[j]); }
};

// Block-wide sum and maximum of T with the result in every thread (CUB BlockReduce, then a broadcast).
template <class T, int B>
struct BlockAllReduce {
  using Reduce = cub::BlockReduce<T, B>;
  typename Reduce::TempStorage temp;
  T result;

  __device__ T sum(T x) { return broadcast(Reduce(temp).Sum(x)); }
  __device__ T max(T x) { return broadcast(Reduce(temp).Reduce(x, [](T p, T q) { return max_of(p, q); })); }
  __device__ T broadcast(T x) {
    if (threadIdx.x == 0) result = x;
    __syncthreads();
    x = result;
    __syncthreads();  // temp and result free for the next reduction
    return x;
  }
};

// One run's flow evaluation, spread over a block of B threads; thread t owns columns t, t + B, ... in every
// column pass. The vectors live in dynamic shared memory; eval and rec in static shared memory (raw storage for
// rec: RunRecord has a constructor, which a __shared__ variable may not).
template <class Real, int B>
struct BlockRun {
  BlockAllReduce<Real, B> reduce;
  FlowEval<Real> eval;
  alignas(RunRecord) unsigned char rec_bytes[sizeof(RunRecord)];
  bool keep_going;

  __device__ RunRecord& rec() { return *reinterpret_cast<RunRecord*>(rec_bytes); }

  // Loads run `run`'s record into rec() (thread 0); in every thread, whether the run is still running.
  __device__ bool begin_run(const RunRecord* records, long long run) {
    if (threadIdx.x == 0) rec() = records[run];
    __syncthreads();
    const bool running = rec().status == RunStatus::running;
    __syncthreads();  // rec is rewritten (by the next run) only once every thread has read it
    return running;
  }

  // Stores rec() as run `run`'s record (thread 0); every thread returns once it is stored and rec() is free for the
  // next run.
  __device__ void end_run(RunRecord* records, long long run) {
    if (threadIdx.x == 0) records[run] = rec();
    __syncthreads();
  }
  // end_run after a fixed-step segment that ends at t_end: a run still running is at t_end (as advance_fixed_step).
  __device__ void end_segment(RunRecord* records, long long run, double t_end) {
    if (threadIdx.x == 0 && rec().status == RunStatus::running) rec().t = t_end;
    end_run(records, run);
  }

  // apply_checks on eval at time t (thread 0), as advance_fixed_step: a step that passes is counted, a run that
  // stops keeps t as its time. In every thread, whether the run goes on.
  __device__ bool check_step(double t, const StopRule& stop) {
    if (threadIdx.x == 0) {
      keep_going = apply_checks(eval, t, stop, false, rec());
      if (keep_going) ++rec().steps;
      else rec().t = t;
    }
    __syncthreads();
    return keep_going;
  }

  // apply_checks on eval at time t with first passages interpolated (thread 0), as advance_adaptive checks a state.
  // In every thread, whether the run goes on.
  __device__ bool check_adaptive(double t, const StopRule& stop) {
    if (threadIdx.x == 0) keep_going = apply_checks(eval, t, stop, true, rec());
    __syncthreads();
    return keep_going;
  }

  // Fills s = softmax(a), beta = V s, r and the loss (thread 0, shared loss_and_residual), da = s .* (u - <s,u>)
  // with u = V^T r (in u), and eval's loss, s_max and ||grad L||^2, V shifted by `shift` (a stage's V, see
  // NoShift) or not. Every thread sees them on return.
  // v: d x n (row-major), a: n, data: data_size(); s, u: n, beta, r: d, work: d + m (shared).
  template <class Shift = NoShift>
  __device__ void evaluate(const ModelShape& shape, const Real* v, const Real* a, const Real* data, Real* s,
                           Real* u, Real* beta, Real* r, Real* work, const Shift& shift = Shift()) {
    Real s_max, s_sq;
    softmax_and_beta(shape, v, a, s, beta, s_max, s_sq, shift);
    if (threadIdx.x == 0) {
      eval.loss = loss_and_residual(shape, beta, data, r, work);
      eval.grad_norm_sq = dot(r, r, shape.d) * s_sq;  // ||dV||^2 = ||r||^2 ||s||^2 (dV = r s^T); + ||da||^2 below
      eval.s_max = s_max;
      eval.winner = 0;  // the observation finds it; the checks do not use it
    }
    __syncthreads();
    tangent(shape, v, s, r, u, shift);
  }

  // The first half of evaluate: s = softmax(a) with max_j s_j and sum_j s_j^2 (in every thread), and beta = V s
  // (V shifted or not: rows_times); s and beta are visible to the whole block on return. s: n, beta: d (shared or
  // global).
  template <class Shift = NoShift>
  __device__ void softmax_and_beta(const ModelShape& shape, const Real* v, const Real* a, Real* s, Real* beta,
                                   Real& s_max_out, Real& s_sq_out, const Shift& shift = Shift()) {
    const int d = shape.d, n = shape.n, t = threadIdx.x;
    Real local = a[t < n ? t : 0];
    for (int j = t + B; j < n; j += B) local = max_of(local, a[j]);
    const Real a_max = reduce.max(local);
    local = 0;
    for (int j = t; j < n; j += B) {
      s[j] = exp(a[j] - a_max);
      local += s[j];
    }
    const Real inv = Real(1) / reduce.sum(local);
    Real s_max = 0, s_sq = 0;
    for (int j = t; j < n; j += B) {
      s[j] *= inv;
      s_max = max_of(s_max, s[j]);
      s_sq += s[j] * s[j];
    }
    s_max = reduce.max(s_max);  // its syncs also publish s to every thread
    s_sq = reduce.sum(s_sq);
    rows_times(v, d, n, s, beta, shift);
    s_max_out = s_max;
    s_sq_out = s_sq;
  }

  // out_i = sum_j M'_ij x_j for i < rows, M' = M shifted by `shift` (M: rows x cols, row-major): warp w takes rows
  // w, w + B / 32, ...; its lanes stride along the row, four loads in flight. Visible to the whole block on return.
  // x: cols, out: rows.
  template <class Shift = NoShift>
  static __device__ void rows_times(const Real* m, int rows, int cols, const Real* x, Real* out,
                                    const Shift& shift = Shift()) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    constexpr int kWarps = B / 32;
    for (int i = warp; i < rows; i += kWarps) {
      const Real* row = m + (long long)i * cols;
      auto entry = [&](int j) { return shift.at(row[j], i, j); };
      Real p0 = 0, p1 = 0, p2 = 0, p3 = 0;
      int j = lane;
      for (; j + 96 < cols; j += 128) {
        p0 += entry(j) * x[j];
        p1 += entry(j + 32) * x[j + 32];
        p2 += entry(j + 64) * x[j + 64];
        p3 += entry(j + 96) * x[j + 96];
      }
      for (; j < cols; j += 32) p0 += entry(j) * x[j];
      Real partial = (p0 + p1) + (p2 + p3);
      for (int offset = 16; offset > 0; offset /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, offset);
      if (lane == 0) out[i] = partial;
    }
    __syncthreads();
  }

  // The second half, given r: da = s .* (u - <s, u>) with u = V^T r (V shifted or not) into u, and ||da||^2 added
  // to eval.grad_norm_sq (which thread 0 set); visible to the whole block on return. s, u: n; r: d.
  template <class Shift = NoShift>
  __device__ void tangent(const ModelShape& shape, const Real* v, const Real* s, const Real* r, Real* u,
                          const Shift& shift = Shift()) {
    const int d = shape.d, n = shape.n, t = threadIdx.x;
    // u = V^T r (four loads in flight per thread), then da = s .* (u - <s, u>) as softmax_jacobian_apply.
    Real su = 0;
    for (int j = t; j < n; j += B) {
      const Real* column = v + j;
      auto entry = [&](int i) { return shift.at(column[(long long)i * n], i, j); };
      Real u0 = 0, u1 = 0, u2 = 0, u3 = 0;
      int i = 0;
      for (; i + 3 < d; i += 4) {
        u0 += entry(i) * r[i];
        u1 += entry(i + 1) * r[i + 1];
        u2 += entry(i + 2) * r[i + 2];
        u3 += entry(i + 3) * r[i + 3];
      }
      for (; i < d; ++i) u0 += entry(i) * r[i];
      u[j] = (u0 + u1) + (u2 + u3);
      su += s[j] * u[j];
    }
    su = reduce.sum(su);
    Real da_sq = 0;
    for (int j = t; j < n; j += B) {
      u[j] = s[j] * (u[j] - su);
      da_sq += u[j] * u[j];
    }
    da_sq = reduce.sum(da_sq);
    if (t == 0) eval.grad_norm_sq += da_sq;
    __syncthreads();
  }
};

// The block kernels' run vectors in dynamic shared memory (one declaration for block_per_run.cu, block_dopri5.cu,
// block_tied.cu and shared_regression.cu). Under SOFTFLOW_HOST_EMULATION (the CPU emulation tests,
// tests/emulation) a host buffer.
#ifdef SOFTFLOW_HOST_EMULATION
extern unsigned char block_vectors[];
#else
extern __shared__ __align__(16) unsigned char block_vectors[];
#endif

// Calls launch(std::integral_constant<int, B>) with B = threads, one of the instantiated block sizes.
template <class Launch>
inline void with_block_size(int threads, Launch&& launch) {
  switch (threads) {
    case 32: return launch(std::integral_constant<int, 32>{});
    case 64: return launch(std::integral_constant<int, 64>{});
    case 128: return launch(std::integral_constant<int, 128>{});
    case 256: return launch(std::integral_constant<int, 256>{});
    case 512: return launch(std::integral_constant<int, 512>{});
    default: return launch(std::integral_constant<int, 1024>{});
  }
}

// Launches kernel<Real, B> with B threads per block over `runs` runs, the run vectors (`entries` Reals) in dynamic
// shared memory.
template <class Kernel, class Args>
void launch_block_kernel(Kernel kernel, int threads, const Args& args, long long runs, long long entries) {
  const size_t bytes = size_t(entries) * (sizeof(args.states[0]));
  SOFTFLOW_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  int device = 0, sms = 0, blocks_per_sm = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  SOFTFLOW_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, threads, bytes));
  const long long resident = (long long)std::max(1, blocks_per_sm) * sms;
  const unsigned grid = unsigned(std::max(1LL, std::min(runs, 4 * resident)));
  launch_grid(kernel, grid, threads, bytes, args);
}

// Whether `entries` Reals of run vectors fit one block's shared memory on this device.
inline bool run_vectors_fit(long long entries, int real_bytes) {
  int device = 0, limit = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const long long static_bytes = 8192;  // CUB temp storage, the record and flags: well under this
  return entries * real_bytes + static_bytes <= limit;
}

}  // namespace softflow
