// Purpose: the block-per-run dopri5 kernel (see block_dopri5.cuh): advance_adaptive (integrators.h) with each
// O(d n) pass spread over a thread block and the step control on thread 0 through the shared helpers.
#include <cuda_runtime.h>

#include "block_dopri5.cuh"
#include "block_per_run.cuh"
#include "block_run.cuh"
#include "cuda_check.h"

namespace softflow {
namespace {

// Shared-memory vectors of one run, in Real entries: each of the 7 stages' s, da (n each) and r (d); the stage's
// a (n; after the last stage, the 5th-order trial's a), beta (d), loss scratch (d + m), passage scratch (2 n).
inline long long block_dopri5_vector_entries(const ModelShape& shape) {
  return 17LL * shape.n + 9LL * shape.d + shape.m;
}

template <class Real>
struct Dopri5Vectors {
  static constexpr int kStages = 7;
  Real *s0, *r0;  // stage m's s at s0 + m s_stride, its da right after it (n each), its r at r0 + m d
  int s_stride, r_stride;
  Real *a_stage, *beta, *work, *passage_work;
  __device__ Dopri5Vectors(Real* base, const ModelShape& shape)
      : s0(base), r0(base + 2 * kStages * shape.n), s_stride(2 * shape.n), r_stride(shape.d) {
    a_stage = r0 + kStages * shape.d;
    beta = a_stage + shape.n;
    work = beta + shape.d;
    passage_work = work + shape.d + shape.m;
  }
  __device__ Real* s(int m) const { return s0 + m * s_stride; }
  __device__ Real* da(int m) const { return s0 + m * s_stride + s_stride / 2; }
  __device__ Real* r(int m) const { return r0 + m * r_stride; }
  // The combination V + h sum_{m < count} weights[m] r_m s_m^T of the first `count` stages.
  __device__ StageCombination<Real> combination(const double* weights, int count, Real h) const {
    StageCombination<Real> out{count, h, {}, r0, s0, r_stride, s_stride};
    for (int m = 0; m < count; ++m) out.c[m] = Real(weights[m]);
    return out;
  }
  // Entry j of a + h sum_{m < count} weights[m] da_m, as axpy_stages forms it.
  __device__ Real combined_a(const Real* a, const double* weights, int count, Real h, int j) const {
    Real increment = 0;
    for (int m = 0; m < count; ++m) increment += Real(weights[m]) * da(m)[j];
    return a[j] + h * increment;
  }
};

// The tableau in constant memory (broadcast to the block), not in each thread's local memory.
__constant__ Dopri5Tableau kTableau;

// advance_adaptive, one block per run. Thread 0 keeps the record and the step control; the others see its
// decisions through shared memory after a barrier.
template <class Real, int B>
__global__ void __launch_bounds__(B) block_dopri5_kernel(AdaptiveSegmentArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  __shared__ BlockAllReduce<double, B> reduce_double;
  __shared__ Dopri5Plan shared_plan;
  __shared__ bool shared_accepted;
  RunRecord& rec = block.rec();
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, t = threadIdx.x;
  const double p = double(shape.state_size());
  const Dopri5Vectors<Real> x(reinterpret_cast<Real*>(block_vectors), shape);
  const Dopri5Tableau& tableau = kTableau;
  const AdaptiveRule& rule = args.rule;

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* v = args.states + run * shape.state_size();
    Real* a = v + (long long)d * n;
    const Real* data = args.data + run * args.data_stride;
    // k1 = f(theta), checked at rec.t.
    block.evaluate(shape, v, a, data, x.s(0), x.da(0), x.beta, x.r(0), x.work);
    if (!block.check_adaptive(rec.t, args.stop)) {
      block.end_run(args.records, run);
      continue;
    }
    const bool choose_step = rec.h <= 0;  // the run's first segment
    __syncthreads();                      // every thread has read rec.h before thread 0 sets it
    if (choose_step && rule.initial_step <= 0) {  // the starting step (dopri5_initial_step), from k1 and k2
      double d0 = 0, d1 = 0;
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          const Real y = v[(long long)i * n + j];
          d0 += scaled_square(y, y, y, rule);
          d1 += scaled_square(x.r(0)[i] * x.s(0)[j], y, y, rule);
        }
        d0 += scaled_square(a[j], a[j], a[j], rule);
        d1 += scaled_square(x.da(0)[j], a[j], a[j], rule);
      }
      d0 = sqrt(reduce_double.sum(d0) / p);
      d1 = sqrt(reduce_double.sum(d1) / p);
      const double h0 = dopri5_probe_step(d0, d1);
      for (int j = t; j < n; j += B) x.a_stage[j] = a[j] + Real(h0) * x.da(0)[j];
      __syncthreads();
      block.evaluate(shape, v, x.a_stage, data, x.s(1), x.da(1), x.beta, x.r(1), x.work,
                     StageShift<Real>{Real(h0), x.r(0), x.s(0)});
      double d2 = 0;
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          const Real y = v[(long long)i * n + j];
          d2 += scaled_square(x.r(1)[i] * x.s(1)[j] - x.r(0)[i] * x.s(0)[j], y, y, rule);
        }
        d2 += scaled_square(x.da(1)[j] - x.da(0)[j], a[j], a[j], rule);
      }
      d2 = sqrt(reduce_double.sum(d2) / p) / h0;
      if (t == 0) rec.h = dopri5_starting_step(h0, d1, d2);
    } else if (t == 0 && choose_step) {
      rec.h = rule.initial_step;
    }
    __syncthreads();

    while (true) {
      if (t == 0)
        shared_plan = rec.t < args.t_end ? dopri5_plan_step(rule, args.t_end, rec)
                                         : Dopri5Plan{StepAction::at_end, 0.0, true};
      __syncthreads();
      const Dopri5Plan plan = shared_plan;
      if (plan.action != StepAction::take) break;
      const Real h = Real(plan.h);
      // Stages 2-7 at V + h sum_m a_sm r_m s_m^T and a + h sum_m a_sm da_m; stage 7 is the 5th-order trial.
      for (int stage = 1; stage < 7; ++stage) {
        for (int j = t; j < n; j += B) x.a_stage[j] = x.combined_a(a, tableau.a[stage], stage, h, j);
        __syncthreads();
        block.evaluate(shape, v, x.a_stage, data, x.s(stage), x.da(stage), x.beta, x.r(stage), x.work,
                       x.combination(tableau.a[stage], stage, h));
      }
      // The error h sum_m e_m k_m, scaled by the state and the trial (scaled_rms).
      const StageCombination<Real> trial = x.combination(tableau.a[6], 6, h);
      const StageCombination<Real> error = x.combination(tableau.e, 7, h);
      double err = 0;
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          const Real y = v[(long long)i * n + j];
          err += scaled_square(h * error.increment(i, j), y, trial.at(y, i, j), rule);
        }
        Real increment = 0;
        for (int m = 0; m < 7; ++m) increment += Real(tableau.e[m]) * x.da(m)[j];
        err += scaled_square(h * increment, a[j], x.a_stage[j], rule);
      }
      err = sqrt(reduce_double.sum(err) / p);
      if (t == 0) {
        const Dopri5Verdict verdict = dopri5_verdict(err);
        shared_accepted = verdict.accepted;
        if (verdict.accepted && block.eval.s_max == block.eval.s_max)  // passages inside the step (dense output)
          locate_passages_in_step(shape, a, x.da(0), x.a_stage, x.da(6), rec.t, plan.h, double(block.eval.s_max),
                                  rec, x.passage_work);
        dopri5_book_step(plan, verdict, args.t_end, rec);
      }
      __syncthreads();
      if (!shared_accepted) continue;
      // theta = trial; k1 = k7 (first same as last).
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          Real& entry = v[(long long)i * n + j];
          entry = trial.at(entry, i, j);
        }
        a[j] = x.a_stage[j];
        x.s(0)[j] = x.s(6)[j];
        x.da(0)[j] = x.da(6)[j];
      }
      __syncthreads();  // every thread is done reading r_0 (in trial.at) before it is overwritten
      for (int i = t; i < d; i += B) x.r(0)[i] = x.r(6)[i];
      __syncthreads();
      if (!block.check_adaptive(rec.t, args.stop)) break;  // the trial's evaluation (stage 7) at the new rec.t
    }
    block.end_run(args.records, run);
  }
}

}  // namespace

bool block_dopri5_available(const ModelShape& shape, int real_bytes) {
  return shape.model == ModelKind::value_softmax && run_vectors_fit(block_dopri5_vector_entries(shape), real_bytes);
}

template <class Real>
void block_dopri5_advance(const AdaptiveSegmentArgs<Real>& args) {
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    launch_block_kernel(block_dopri5_kernel<Real, decltype(threads)::value>, threads, args, args.runs,
                        block_dopri5_vector_entries(args.shape));
  });
}

template void block_dopri5_advance<float>(const AdaptiveSegmentArgs<float>&);
template void block_dopri5_advance<double>(const AdaptiveSegmentArgs<double>&);

}  // namespace softflow
