// Purpose: the block-per-run dopri5 kernel (see block_dopri5.cuh): advance_adaptive (integrators.h) with each
// O(d n) pass spread over a thread block and the step control on thread 0 through the shared helpers.
#include <cuda_runtime.h>

#include "block_dopri5.cuh"
#include "block_per_run.cuh"
#include "block_run.cuh"
#include "block_tied_flow.cuh"
#include "cuda_check.h"

namespace softflow {
namespace {

constexpr int kDopri5Stages = 7;

// A dopri5 stage's matrix M + h sum_{m < count} c_m dM_m over earlier stages (at most 7), as axpy_stages forms it
// from the stage derivatives, entry by entry (never stored): Stages::dmatrix(m, i, j) gives dM_m's entry.
template <class Real, class Stages>
struct StageCombination {
  Stages stages;  // a copy: its few pointers stay in registers (a reference spilled in block dopri5 float64)
  int count;
  Real h;
  Real c[kDopri5Stages];
  __device__ Real increment(int i, int j) const {
    Real sum = 0;
#pragma unroll
    for (int m = 0; m < kDopri5Stages; ++m)
      if (m < count) sum += c[m] * stages.dmatrix(m, i, j);
    return sum;
  }
  __device__ Real at(Real v_ij, int i, int j) const { return v_ij + h * increment(i, j); }
};

// The value-softmax model's stages in shared memory, in Real entries: each of the 7 stages' s, da (n each) and r
// (d); the stage's a (n, one buffer: after the last stage, the 5th-order trial's a), beta (d), loss scratch (d + m),
// passage scratch (2 n). A stage's dV = r s^T is rank one.
template <class Real>
struct ValueSoftmaxStages {
  Real *s0, *r0;  // stage m's s at s0 + m s_stride, its da right after it (n each), its r at r0 + m d
  int s_stride, r_stride;
  Real *a_stage, *beta, *work, *passage_work;
  static long long entries(const ModelShape& shape) { return 17LL * shape.n + 9LL * shape.d + shape.m; }
  __device__ ValueSoftmaxStages(Real* base, const ModelShape& shape)
      : s0(base), r0(base + 2 * kDopri5Stages * shape.n), s_stride(2 * shape.n), r_stride(shape.d) {
    a_stage = r0 + kDopri5Stages * shape.d;
    beta = a_stage + shape.n;
    work = beta + shape.d;
    passage_work = work + shape.d + shape.m;
  }
  __device__ void begin_run(const Real*) {}
  __device__ Real* s(int m) const { return s0 + m * s_stride; }
  __device__ Real* da(int m) const { return s0 + m * s_stride + s_stride / 2; }
  __device__ Real* r(int m) const { return r0 + m * r_stride; }
  // Where stage m >= 1 takes its logits a + h sum c_m da_m.
  __device__ Real* logits(int) const { return a_stage; }
  // Entry (i, j) of stage m's dV = r_m s_m^T.
  __device__ Real dmatrix(int m, int i, int j) const { return r(m)[i] * s(m)[j]; }
  // The flow at stage m: its logits a_m, V shifted by `shift` (a StageCombination, or NoShift for stage 0).
  template <int B, class Shift>
  __device__ void evaluate(BlockRun<Real, B>& block, const ModelShape& shape, const Real* v, const Real* a_m,
                           const Real* data, int m, const Shift& shift) const {
    block.evaluate(shape, v, a_m, data, s(m), da(m), beta, r(m), work, shift);
  }
  // First same as last: stage 7's vectors become stage 1's, column j (s, da) and row i (r) at a time.
  __device__ void copy_last_column(int j) const {
    s(0)[j] = s(kDopri5Stages - 1)[j];
    da(0)[j] = da(kDopri5Stages - 1)[j];
  }
  __device__ void copy_last_row(int i) const { r(0)[i] = r(kDopri5Stages - 1)[i]; }
  // First passages inside an accepted step, on the dense output of the logits (locate_passages_in_step).
  __device__ void locate_passages(const ModelShape& shape, const Real* a, double t0, double h, double s_max_end,
                                  RunRecord& rec) const {
    locate_passages_in_step(shape, a, da(0), a_stage, da(kDopri5Stages - 1), t0, h, s_max_end, rec, passage_work);
  }
};

// The tied model's stages in shared memory: each stage's TiedVectors (logits U a, alpha, beta, r, gvec, da: 6 D) and
// the logits a_m of stages 2-7 (D each; stage 1's are the state's a). A stage's dU = r alpha^T + gvec a_m^T is
// rank two.
template <class Real>
struct TiedStages {
  Real* base;
  int n;
  const Real* state_a = nullptr;
  static long long entries(const ModelShape& shape) {
    return (long long)TiedVectors<Real>::kSlots * kDopri5Stages * shape.n + (kDopri5Stages - 1LL) * shape.n;
  }
  __device__ TiedStages(Real* base_, const ModelShape& shape) : base(base_), n(shape.n) {}
  __device__ void begin_run(const Real* a) { state_a = a; }
  __device__ TiedVectors<Real> vectors(int m) const {
    return TiedVectors<Real>(base + TiedVectors<Real>::kSlots * m * n, n);
  }
  __device__ Real* da(int m) const { return vectors(m).da; }
  __device__ Real* logits(int m) const { return base + TiedVectors<Real>::kSlots * kDopri5Stages * n + (m - 1) * n; }
  // Entry (i, j) of stage m's dU = r_m alpha_m^T + gvec_m a_m^T, as tied_flow forms it.
  __device__ Real dmatrix(int m, int i, int j) const {
    using V = TiedVectors<Real>;
    const Real* x = base + V::kSlots * m * n;
    const Real a_j = (m == 0 ? state_a : logits(m))[j];
    return x[V::kR * n + i] * x[V::kAlpha * n + j] + x[V::kGvec * n + i] * a_j;
  }
  template <int B, class Shift>
  __device__ void evaluate(BlockRun<Real, B>& block, const ModelShape& shape, const Real* u, const Real* a_m,
                           const Real* target, int m, const Shift& shift) const {
    tied_evaluate(block, shape, u, a_m, target, vectors(m), shift);
  }
  __device__ void copy_last_column(int j) const {
    const TiedVectors<Real> first = vectors(0), last = vectors(kDopri5Stages - 1);
    first.alpha[j] = last.alpha[j];
    first.da[j] = last.da[j];
  }
  __device__ void copy_last_row(int i) const {
    const TiedVectors<Real> first = vectors(0), last = vectors(kDopri5Stages - 1);
    first.r[i] = last.r[i];
    first.gvec[i] = last.gvec[i];
  }
  // The tied model keeps apply_checks' linear interpolation of first passages (as advance_adaptive).
  __device__ void locate_passages(const ModelShape&, const Real*, double, double, double, RunRecord&) const {}
};

// The tableau in constant memory (broadcast to the block), not in each thread's local memory.
__constant__ Dopri5Tableau kTableau;

// The weights of the first `count` stages (tableau row or error weights) as a stage combination.
template <class Real, class Stages>
__device__ StageCombination<Real, Stages> combination(const Stages& stages, const double* weights, int count, Real h) {
  StageCombination<Real, Stages> out{stages, count, h, {}};
  for (int m = 0; m < count; ++m) out.c[m] = Real(weights[m]);
  return out;
}

// Entry j of a + h sum_{m < count} weights[m] da_m, as axpy_stages forms it.
template <class Real, class Stages>
__device__ Real combined_a(const Stages& stages, const Real* a, const double* weights, int count, Real h, int j) {
  Real increment = 0;
  for (int m = 0; m < count; ++m) increment += Real(weights[m]) * stages.da(m)[j];
  return a[j] + h * increment;
}

// advance_adaptive, one block per run, for the model whose stages `Stages` keeps (ValueSoftmaxStages,
// TiedStages). Thread 0 keeps the record and the step control; the others see its decisions through shared memory
// after a barrier. The state's matrix (V: d x n; U: D x D) is updated in place in global memory.
template <class Real, int B, class Stages>
__global__ void __launch_bounds__(B) block_dopri5_kernel(AdaptiveSegmentArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  __shared__ BlockAllReduce<double, B> reduce_double;
  __shared__ Dopri5Plan shared_plan;
  __shared__ bool shared_accepted;
  RunRecord& rec = block.rec();
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, t = threadIdx.x;  // the tied model: d = n = D (study.cpp sets both)
  const double p = double(shape.state_size());
  Stages x(reinterpret_cast<Real*>(block_vectors), shape);
  const Dopri5Tableau& tableau = kTableau;
  const AdaptiveRule& rule = args.rule;
  constexpr int kLast = kDopri5Stages - 1;

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* v = args.states + run * shape.state_size();
    Real* a = v + (long long)d * n;
    const Real* data = args.data + run * args.data_stride;
    x.begin_run(a);
    // k1 = f(theta), checked at rec.t.
    x.evaluate(block, shape, v, a, data, 0, NoShift());
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
          d1 += scaled_square(x.dmatrix(0, i, j), y, y, rule);
        }
        d0 += scaled_square(a[j], a[j], a[j], rule);
        d1 += scaled_square(x.da(0)[j], a[j], a[j], rule);
      }
      d0 = sqrt(reduce_double.sum(d0) / p);
      d1 = sqrt(reduce_double.sum(d1) / p);
      const double h0 = dopri5_probe_step(d0, d1);
      const double unit[1] = {1.0};  // theta + h0 k1
      for (int j = t; j < n; j += B) x.logits(1)[j] = combined_a(x, a, unit, 1, Real(h0), j);
      __syncthreads();
      x.evaluate(block, shape, v, x.logits(1), data, 1, combination(x, unit, 1, Real(h0)));
      double d2 = 0;
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          const Real y = v[(long long)i * n + j];
          d2 += scaled_square(x.dmatrix(1, i, j) - x.dmatrix(0, i, j), y, y, rule);
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
      // Stages 2-7 at theta + h sum_m a_sm k_m; stage 7 is the 5th-order trial.
      for (int stage = 1; stage < kDopri5Stages; ++stage) {
        for (int j = t; j < n; j += B) x.logits(stage)[j] = combined_a(x, a, tableau.a[stage], stage, h, j);
        __syncthreads();
        x.evaluate(block, shape, v, x.logits(stage), data, stage, combination(x, tableau.a[stage], stage, h));
      }
      // The error h sum_m e_m k_m, scaled by the state and the trial (scaled_rms).
      const StageCombination<Real, Stages> trial = combination(x, tableau.a[kLast], kLast, h);
      const StageCombination<Real, Stages> error = combination(x, tableau.e, kDopri5Stages, h);
      const Real* a_trial = x.logits(kLast);
      double err = 0;
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          const Real y = v[(long long)i * n + j];
          err += scaled_square(h * error.increment(i, j), y, trial.at(y, i, j), rule);
        }
        Real increment = 0;
        for (int m = 0; m < kDopri5Stages; ++m) increment += Real(tableau.e[m]) * x.da(m)[j];
        err += scaled_square(h * increment, a[j], a_trial[j], rule);
      }
      err = sqrt(reduce_double.sum(err) / p);
      if (t == 0) {
        const Dopri5Verdict verdict = dopri5_verdict(err);
        shared_accepted = verdict.accepted;
        if (verdict.accepted && block.eval.s_max == block.eval.s_max)  // passages inside the step (dense output)
          x.locate_passages(shape, a, rec.t, plan.h, double(block.eval.s_max), rec);
        dopri5_book_step(plan, verdict, args.t_end, rec);
      }
      __syncthreads();
      if (!shared_accepted) continue;
      // theta = trial; k1 = k7 (first same as last). Column j's matrix entries read stage 1's column vectors and
      // a_j before they are overwritten, and every row vector, which waits for the barrier.
      for (int j = t; j < n; j += B) {
        for (int i = 0; i < d; ++i) {
          Real& entry = v[(long long)i * n + j];
          entry = trial.at(entry, i, j);
        }
        a[j] = a_trial[j];
        x.copy_last_column(j);
      }
      __syncthreads();
      for (int i = t; i < d; i += B) x.copy_last_row(i);
      __syncthreads();
      if (!block.check_adaptive(rec.t, args.stop)) break;  // the trial's evaluation (stage 7) at the new rec.t
    }
    block.end_run(args.records, run);
  }
}

}  // namespace

bool block_dopri5_available(const ModelShape& shape, int real_bytes) {
  if (shape.model == ModelKind::value_softmax)
    return run_vectors_fit(ValueSoftmaxStages<double>::entries(shape), real_bytes);
  return shape.model == ModelKind::tied && run_vectors_fit(TiedStages<double>::entries(shape), real_bytes);
}

template <class Real>
void block_dopri5_advance(const AdaptiveSegmentArgs<Real>& args) {
  const bool tied = args.shape.model == ModelKind::tied;
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    constexpr int B = decltype(threads)::value;
    if (tied)
      launch_block_kernel(block_dopri5_kernel<Real, B, TiedStages<Real>>, B, args, args.runs,
                          TiedStages<Real>::entries(args.shape));
    else
      launch_block_kernel(block_dopri5_kernel<Real, B, ValueSoftmaxStages<Real>>, B, args, args.runs,
                          ValueSoftmaxStages<Real>::entries(args.shape));
  });
}

template void block_dopri5_advance<float>(const AdaptiveSegmentArgs<float>&);
template void block_dopri5_advance<double>(const AdaptiveSegmentArgs<double>&);

}  // namespace softflow
