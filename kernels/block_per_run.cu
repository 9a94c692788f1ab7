// Purpose: the block-per-run value-softmax kernels: gd segments and checkpoint observation (see block_per_run.cuh).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cub/block/block_reduce.cuh>
#include <type_traits>

#include "block_per_run.cuh"
#include "block_run.cuh"
#include "cuda_check.h"
#include "softflow/observables.h"
#include "softflow/softmax.h"

namespace softflow {
namespace {

// Shared-memory vectors of one run, in Real entries: s (n), u (n, then da), beta (d), r (d), loss scratch (d + m).
inline long long block_vector_entries(const ModelShape& shape) { return 2LL * shape.n + 3LL * shape.d + shape.m; }

// rk4's: s, da (n each) and r (d) for each of the four stages, the stage's a (n), beta (d), loss scratch (d + m).
inline long long block_rk4_vector_entries(const ModelShape& shape) {
  return 9LL * shape.n + 6LL * shape.d + shape.m;
}

// The run's shared-memory vectors: s, u (n each), beta, r (d each), loss scratch (d + m).
template <class Real>
struct RunVectors {
  Real *s, *u, *beta, *r, *work;
  __device__ RunVectors(Real* base, const ModelShape& shape)
      : s(base), u(base + shape.n), beta(base + 2 * shape.n), r(base + 2 * shape.n + shape.d),
        work(base + 2 * shape.n + 2 * shape.d) {}
};

template <class Real, int B>
__global__ void __launch_bounds__(B) block_gd_kernel(FixedStepSegmentArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, t = threadIdx.x;
  const RunVectors<Real> x(reinterpret_cast<Real*>(block_vectors), shape);
  const Real h = Real(args.step);

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* v = args.states + run * shape.state_size();
    Real* a = v + (long long)d * n;
    const Real* data = args.data + run * args.data_stride;
    for (long long k = args.step_from; k < args.step_to; ++k) {
      block.evaluate(shape, v, a, data, x.s, x.u, x.beta, x.r, x.work);
      if (!block.check_step(double(k) * args.step, args.stop)) break;
      for (int j = t; j < n; j += B) {
        const Real sj = x.s[j];
#pragma unroll 4
        for (int i = 0; i < d; ++i) v[(long long)i * n + j] += h * (x.r[i] * sj);  // as theta += h dtheta
        a[j] += h * x.u[j];
      }
      __syncthreads();  // V and a are read across threads by the next step
    }
    block.end_segment(args.records, run, double(args.step_to) * args.step);
  }
}

// rk4's shared-memory vectors of one run (block_rk4_vector_entries): stage m's s, da (n each) and r (d), the stage's
// a (n), beta (d), loss scratch (d + m).
template <class Real>
struct Rk4Vectors {
  Real *s[4], *da[4], *r[4], *a_stage, *beta, *work;
  __device__ Rk4Vectors(Real* base, const ModelShape& shape) {
    for (int m = 0; m < 4; ++m) {
      s[m] = base + (2 * m) * shape.n;
      da[m] = base + (2 * m + 1) * shape.n;
      r[m] = base + 8 * shape.n + m * shape.d;
    }
    a_stage = base + 8 * shape.n + 4 * shape.d;
    beta = a_stage + shape.n;
    work = beta + shape.d;
  }
};

// rk4 as advance_fixed_step (integrators.h): stage 1 at the state, checked; stages 2-4 at a + c da_p and the shift
// V + c r_p s_p^T of the previous stage (c = h/2, h/2, h); then theta += h/6 (k1 + 2 (k2 + k3) + k4) entry by entry.
template <class Real, int B>
__global__ void __launch_bounds__(B) block_rk4_kernel(FixedStepSegmentArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, t = threadIdx.x;
  const Rk4Vectors<Real> x(reinterpret_cast<Real*>(block_vectors), shape);
  const Real h = Real(args.step), half = h / Real(2), sixth = h / Real(6);

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* v = args.states + run * shape.state_size();
    Real* a = v + (long long)d * n;
    const Real* data = args.data + run * args.data_stride;
    for (long long k = args.step_from; k < args.step_to; ++k) {
      block.evaluate(shape, v, a, data, x.s[0], x.da[0], x.beta, x.r[0], x.work);
      if (!block.check_step(double(k) * args.step, args.stop)) break;
      for (int m = 1; m < 4; ++m) {
        const Real c = m < 3 ? half : h;
        for (int j = t; j < n; j += B) x.a_stage[j] = a[j] + c * x.da[m - 1][j];
        __syncthreads();
        block.evaluate(shape, v, x.a_stage, data, x.s[m], x.da[m], x.beta, x.r[m], x.work,
                       StageShift<Real>{c, x.r[m - 1], x.s[m - 1]});
      }
      for (int j = t; j < n; j += B) {
        const Real s1 = x.s[0][j], s2 = x.s[1][j], s3 = x.s[2][j], s4 = x.s[3][j];
        for (int i = 0; i < d; ++i) {
          const Real k1 = x.r[0][i] * s1, k2 = x.r[1][i] * s2, k3 = x.r[2][i] * s3, k4 = x.r[3][i] * s4;
          v[(long long)i * n + j] += sixth * (k1 + Real(2) * (k2 + k3) + k4);
        }
        a[j] += sixth * (x.da[0][j] + Real(2) * (x.da[1][j] + x.da[2][j]) + x.da[3][j]);
      }
      __syncthreads();  // V and a are read across threads by the next step
    }
    block.end_segment(args.records, run, double(args.step_to) * args.step);
  }
}

// (value, index) with the larger value, the smaller index on ties: argmax (softmax.h) as a reduction.
template <class Real>
struct IndexedValue {
  Real value;
  int index;
};

template <class Real, int B>
__global__ void __launch_bounds__(B) block_observe_kernel(BlockObserveArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  __shared__ BlockAllReduce<double, B> reduce_double;
  __shared__ typename cub::BlockReduce<IndexedValue<Real>, B>::TempStorage argmax_temp;
  __shared__ int winner;
  RunRecord& rec = block.rec();
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, t = threadIdx.x;
  const RunVectors<Real> x(reinterpret_cast<Real*>(block_vectors), shape);

  for (long long i = blockIdx.x; i < args.runs; i += gridDim.x) {
    const long long run = args.first_run + i;
    if (t == 0) rec = args.records[i];
    __syncthreads();
    const Real* v = args.states + i * shape.state_size();
    const Real* a = v + (long long)d * n;
    const Real* data = args.data + i * args.data_stride;
    block.evaluate(shape, v, a, data, x.s, x.u, x.beta, x.r, x.work);

    // winner = argmax s (first on ties), then the observables' sums (observe_run's terms, in its precisions).
    IndexedValue<Real> best{x.s[t < n ? t : 0], t < n ? t : 0};
    for (int j = t + B; j < n; j += B)
      if (x.s[j] > best.value) best = {x.s[j], j};
    best = cub::BlockReduce<IndexedValue<Real>, B>(argmax_temp)
               .Reduce(best, [](IndexedValue<Real> p, IndexedValue<Real> q) {
                 return (q.value > p.value || (q.value == p.value && q.index < p.index)) ? q : p;
               });
    if (t == 0) winner = best.index;
    __syncthreads();
    Real entropy_part = 0;
    const bool drift = shape.loss == LossKind::logistic;  // the logistic loss's invariant and u_winner
    double v_sq = 0, col_sq = 0, sum_a = 0, drift_sq = 0, u_winner = 0;
    for (int j = t; j < n; j += B) {
      if (x.s[j] > Real(0)) entropy_part -= x.s[j] * log(x.s[j]);
      sum_a += double(a[j]);
      for (int row = 0; row < d; ++row) {
        const double value = double(v[(long long)row * n + j]);
        v_sq += value * value;
        if (j == winner) {
          col_sq += value * value;
          if (drift) u_winner += double(data[row]) * value;  // data = beta*
        }
      }
    }
    if (drift) {
      // (I - b b^T)(V - V0), column by column (b = beta*, the data); V0 redrawn entry by entry from its stream.
      const RandomStream matrix{args.seed, args.cell_index, std::uint32_t(run), RandomVariable::value_matrix};
      auto initial = [&](int row, int j) {
        const int index = row * n + j;
        return double(Real(initial_matrix_entry(shape, args.init, index, matrix.normal_at(index))));
      };
      for (int j = t; j < n; j += B) {
        double projection = 0;
        for (int row = 0; row < d; ++row)
          projection += double(data[row]) * (double(v[(long long)row * n + j]) - initial(row, j));
        for (int row = 0; row < d; ++row) {
          const double y = (double(v[(long long)row * n + j]) - initial(row, j)) - double(data[row]) * projection;
          drift_sq += y * y;
        }
      }
    }
    const Real entropy_total = block.reduce.sum(entropy_part);
    v_sq = reduce_double.sum(v_sq);
    col_sq = reduce_double.sum(col_sq);
    sum_a = reduce_double.sum(sum_a);
    drift_sq = reduce_double.sum(drift_sq);
    u_winner = reduce_double.sum(u_winner);
    if (t == 0) {
      const double time = rec.status == RunStatus::running ? args.t_checkpoint : rec.t;
      apply_checks(block.eval, time, args.stop, args.adaptive, rec);
      double out[kStateObservableCount];
      for (int o = 0; o < kStateObservableCount; ++o) out[o] = NAN;  // the attention family's observables
      const double h = double(entropy_total);
      out[kEntropy] = h;
      out[kEntropyRatio] = h / log(double(n));
      out[kSMax] = double(block.eval.s_max);
      out[kLoss] = double(block.eval.loss);
      out[kGradNorm] = sqrt(double(block.eval.grad_norm_sq));
      out[kVNorm] = sqrt(v_sq);
      out[kWinnerColNorm] = sqrt(col_sq);
      out[kSumADrift] = sum_a - rec.sum_a0;
      out[kInvariantDrift] = drift ? sqrt(drift_sq) : NAN;
      out[kUWinner] = drift ? u_winner : NAN;
      out[kSteps] = double(rec.steps);
      out[kRejectedSteps] = args.adaptive ? double(rec.rejected) : NAN;  // fixed steps are never rejected
      if (rec.status == RunStatus::diverged)
        for (int o = 0; o < kStateObservableCount; ++o) out[o] = NAN;
      for (int o = 0; o < kStateObservableCount; ++o) args.values[o * args.total_runs + run] = out[o];
      for (int k = 0; k < kPassageCount; ++k)
        args.values[(kStateObservableCount + k) * args.total_runs + run] =
            rec.first_time[k] >= 0 ? rec.first_time[k] : NAN;
      args.winners[run] = winner;
      args.records[i] = rec;
    }
    __syncthreads();
  }
}

}  // namespace

int block_gd_threads(const ModelShape& shape) {
  int threads = 32;
  while (threads < 1024 && threads < std::max(shape.d, shape.n)) threads *= 2;
  return threads;
}

bool block_gd_available(const ModelShape& shape, int real_bytes) {
  return shape.model == ModelKind::value_softmax && run_vectors_fit(block_vector_entries(shape), real_bytes);
}

bool block_rk4_available(const ModelShape& shape, int real_bytes) {
  return shape.model == ModelKind::value_softmax && run_vectors_fit(block_rk4_vector_entries(shape), real_bytes);
}

template <class Real>
void block_gd_advance(const FixedStepSegmentArgs<Real>& args) {
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    launch_block_kernel(block_gd_kernel<Real, decltype(threads)::value>, threads, args, args.runs,
                        block_vector_entries(args.shape));
  });
}

template <class Real>
void block_rk4_advance(const FixedStepSegmentArgs<Real>& args) {
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    launch_block_kernel(block_rk4_kernel<Real, decltype(threads)::value>, threads, args, args.runs,
                        block_rk4_vector_entries(args.shape));
  });
}

template <class Real>
void block_observe(const BlockObserveArgs<Real>& args) {
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    launch_block_kernel(block_observe_kernel<Real, decltype(threads)::value>, threads, args, args.runs,
                        block_vector_entries(args.shape));
  });
}

template void block_gd_advance<float>(const FixedStepSegmentArgs<float>&);
template void block_gd_advance<double>(const FixedStepSegmentArgs<double>&);
template void block_rk4_advance<float>(const FixedStepSegmentArgs<float>&);
template void block_rk4_advance<double>(const FixedStepSegmentArgs<double>&);
template void block_observe<float>(const BlockObserveArgs<float>&);
template void block_observe<double>(const BlockObserveArgs<double>&);

}  // namespace softflow
