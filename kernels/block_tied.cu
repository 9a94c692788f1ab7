// Purpose: the tied model's gd and rk4 kernels, one thread block per run (see block_tied.cuh): tied_flow (model.h)
// with its passes over U spread over the block, and advance_fixed_step's gd and rk4 loops around it.
#include <cuda_runtime.h>

#include "block_per_run.cuh"
#include "block_run.cuh"
#include "block_tied.cuh"
#include "block_tied_flow.cuh"
#include "cuda_check.h"

namespace softflow {
namespace {

// Shared-memory vectors of one run, in Real entries: logits U a, alpha, beta, r, gvec, da (D each); rk4: those of
// each of the four stages, and the logits a of stages 2-4 (D each).
inline long long block_tied_vector_entries(const ModelShape& shape) { return 6LL * shape.n; }
inline long long block_tied_rk4_vector_entries(const ModelShape& shape) { return 4 * 6LL * shape.n + 3LL * shape.n; }

template <class Real, int B>
__global__ void __launch_bounds__(B) block_tied_gd_kernel(FixedStepSegmentArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  const ModelShape shape = args.shape;
  const int n = shape.n, t = threadIdx.x;
  const TiedVectors<Real> x(reinterpret_cast<Real*>(block_vectors), shape);
  const Real h = Real(args.step);

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* u = args.states + run * shape.state_size();
    Real* a = u + (long long)n * n;
    const Real* target = args.data + run * args.data_stride;
    for (long long k = args.step_from; k < args.step_to; ++k) {
      tied_evaluate(block, shape, u, a, target, x);
      if (!block.check_step(double(k) * args.step, args.stop)) break;
      for (int j = t; j < n; j += B) {
        const Real aj = a[j], alpha_j = x.alpha[j];
        for (int i = 0; i < n; ++i) u[(long long)i * n + j] += h * (x.r[i] * alpha_j + x.gvec[i] * aj);
        a[j] += h * x.da[j];
      }
      __syncthreads();  // U and a are read across threads by the next step
    }
    block.end_segment(args.records, run, double(args.step_to) * args.step);
  }
}

// advance_fixed_step's rk4 on the tied model: stages 2-4 at U + c dU_p, a + c da_p of the previous stage (c = h/2,
// h/2, h), then U += h/6 (dU_1 + 2 (dU_2 + dU_3) + dU_4) and a likewise, entry by entry as the CPU.
template <class Real, int B>
__global__ void __launch_bounds__(B) block_tied_rk4_kernel(FixedStepSegmentArgs<Real> args) {
  __shared__ BlockRun<Real, B> block;
  const ModelShape shape = args.shape;
  const int n = shape.n, t = threadIdx.x;
  Real* base = reinterpret_cast<Real*>(block_vectors);
  const TiedVectors<Real> stage[4] = {TiedVectors<Real>(base, shape), TiedVectors<Real>(base + 6 * n, shape),
                                      TiedVectors<Real>(base + 12 * n, shape), TiedVectors<Real>(base + 18 * n, shape)};
  Real* const stage_a[4] = {nullptr, base + 24 * n, base + 25 * n, base + 26 * n};  // stage 1's a is the state's
  const Real h = Real(args.step), half = h / Real(2), sixth = h / Real(6);
  const Real offset[4] = {0, half, half, h};

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* u = args.states + run * shape.state_size();
    Real* a = u + (long long)n * n;
    const Real* target = args.data + run * args.data_stride;
    const Real* logits_of[4] = {a, stage_a[1], stage_a[2], stage_a[3]};
    for (long long k = args.step_from; k < args.step_to; ++k) {
      tied_evaluate(block, shape, u, a, target, stage[0]);
      if (!block.check_step(double(k) * args.step, args.stop)) break;
      for (int m = 1; m < 4; ++m) {
        const TiedVectors<Real>& p = stage[m - 1];
        for (int j = t; j < n; j += B) stage_a[m][j] = a[j] + offset[m] * p.da[j];
        __syncthreads();
        tied_evaluate(block, shape, u, stage_a[m], target, stage[m],
                      TiedStageShift<Real>{offset[m], p.r, p.alpha, p.gvec, logits_of[m - 1]});
      }
      for (int j = t; j < n; j += B) {  // column j of U, then a_j (stage 1's dU reads the old a_j)
        for (int i = 0; i < n; ++i) {
          Real k_m[4];
          for (int m = 0; m < 4; ++m)
            k_m[m] = stage[m].r[i] * stage[m].alpha[j] + stage[m].gvec[i] * logits_of[m][j];
          u[(long long)i * n + j] += sixth * (k_m[0] + Real(2) * (k_m[1] + k_m[2]) + k_m[3]);
        }
        a[j] += sixth * (stage[0].da[j] + Real(2) * (stage[1].da[j] + stage[2].da[j]) + stage[3].da[j]);
      }
      __syncthreads();  // U and a are read across threads by the next step
    }
    block.end_segment(args.records, run, double(args.step_to) * args.step);
  }
}

}  // namespace

bool block_tied_gd_available(const ModelShape& shape, int real_bytes) {
  return shape.model == ModelKind::tied && run_vectors_fit(block_tied_vector_entries(shape), real_bytes);
}

template <class Real>
void block_tied_gd_advance(const FixedStepSegmentArgs<Real>& args) {
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    launch_block_kernel(block_tied_gd_kernel<Real, decltype(threads)::value>, threads, args, args.runs,
                        block_tied_vector_entries(args.shape));
  });
}

bool block_tied_rk4_available(const ModelShape& shape, int real_bytes) {
  return shape.model == ModelKind::tied && run_vectors_fit(block_tied_rk4_vector_entries(shape), real_bytes);
}

template <class Real>
void block_tied_rk4_advance(const FixedStepSegmentArgs<Real>& args) {
  with_block_size(block_gd_threads(args.shape), [&](auto threads) {
    launch_block_kernel(block_tied_rk4_kernel<Real, decltype(threads)::value>, threads, args, args.runs,
                        block_tied_rk4_vector_entries(args.shape));
  });
}

template void block_tied_gd_advance<float>(const FixedStepSegmentArgs<float>&);
template void block_tied_gd_advance<double>(const FixedStepSegmentArgs<double>&);
template void block_tied_rk4_advance<float>(const FixedStepSegmentArgs<float>&);
template void block_tied_rk4_advance<double>(const FixedStepSegmentArgs<double>&);

}  // namespace softflow
