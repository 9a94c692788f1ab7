// Purpose: the tied model's gd kernel, one thread block per run (see block_tied.cuh): tied_flow (model.h) with its
// passes over U spread over the block, and advance_fixed_step's gd loop around it.
#include <cuda_runtime.h>

#include "block_per_run.cuh"
#include "block_run.cuh"
#include "block_tied.cuh"
#include "cuda_check.h"

namespace softflow {
namespace {

// Shared-memory vectors of one run, in Real entries: logits U a, alpha, beta, r, gvec, da (D each).
inline long long block_tied_vector_entries(const ModelShape& shape) { return 6LL * shape.n; }

template <class Real>
struct TiedVectors {
  Real *logits, *alpha, *beta, *r, *gvec, *da;
  __device__ TiedVectors(Real* base, const ModelShape& shape)
      : logits(base), alpha(base + shape.n), beta(base + 2 * shape.n), r(base + 3 * shape.n),
        gvec(base + 4 * shape.n), da(base + 5 * shape.n) {}
};

// tied_flow at (U, a): alpha = softmax(U a), beta = U alpha, margin = <beta*, beta>, r = g beta* (g the logistic
// weight), gvec = C(alpha) U^T r, da = U^T gvec; dU = r alpha^T + gvec a^T is left implicit (formed entry by
// entry where it is used). Sets block.eval's loss, s_max and ||grad L||^2. Every thread sees the vectors and eval
// on return. u: D x D (row-major), a, target: D.
template <class Real, int B>
__device__ void tied_evaluate(BlockRun<Real, B>& block, const ModelShape& shape, const Real* u, const Real* a,
                              const Real* target, const TiedVectors<Real>& x) {
  const int n = shape.n, t = threadIdx.x;
  block.rows_times(u, n, n, a, x.logits);
  Real s_max, s_sq;
  block.softmax_and_beta(shape, u, x.logits, x.alpha, x.beta, s_max, s_sq);
  Real local = 0;
  for (int i = t; i < n; i += B) local += target[i] * x.beta[i];
  const Real margin = block.reduce.sum(local);
  const Real g = logistic_weight(margin);
  for (int i = t; i < n; i += B) x.r[i] = g * target[i];
  __syncthreads();
  block.tangent(shape, u, x.alpha, x.r, x.gvec);  // gvec = C(alpha) U^T r (its eval.grad_norm_sq is replaced below)
  // da = U^T gvec and ||dU||^2 + ||da||^2, entry by entry as tied_flow sums them.
  Real grad_sq = 0;
  for (int j = t; j < n; j += B) {
    const Real aj = a[j], alpha_j = x.alpha[j];
    Real sum = 0;
    for (int i = 0; i < n; ++i) {
      const Real g_ij = x.r[i] * alpha_j + x.gvec[i] * aj;
      grad_sq += g_ij * g_ij;
      sum += u[(long long)i * n + j] * x.gvec[i];
    }
    x.da[j] = sum;
    grad_sq += sum * sum;
  }
  grad_sq = block.reduce.sum(grad_sq);
  if (t == 0) {
    block.eval.loss = logistic_loss(margin);
    block.eval.grad_norm_sq = grad_sq;
    block.eval.s_max = s_max;
    block.eval.winner = 0;  // the observation finds it; the checks do not use it
  }
  __syncthreads();
}

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

template void block_tied_gd_advance<float>(const FixedStepSegmentArgs<float>&);
template void block_tied_gd_advance<double>(const FixedStepSegmentArgs<double>&);

}  // namespace softflow
