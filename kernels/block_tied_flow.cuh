// Purpose: the tied model's flow (model.h tied_flow) spread over a thread block, for the block-per-run kernels of
// the tied model (block_tied.cu: gd, rk4; block_dopri5.cu: dopri5): its vectors in shared memory, the evaluation at
// U or at a stage's U (rk4's rank-two shift of the previous stage, dopri5's combination of the earlier stages),
// each stage derivative dU = r alpha^T + gvec a^T formed entry by entry where it is used, never stored.
#pragma once

#include "block_run.cuh"

namespace softflow {

// One evaluation's vectors in shared memory from `base` (D entries each): logits U a, alpha, beta, r, gvec, da.
template <class Real>
struct TiedVectors {
  enum Slot : int { kLogits, kAlpha, kBeta, kR, kGvec, kDa, kSlots };  // the vectors' order from `base`
  Real *logits, *alpha, *beta, *r, *gvec, *da;
  __device__ TiedVectors(Real* base, int n)
      : logits(base + kLogits * n), alpha(base + kAlpha * n), beta(base + kBeta * n), r(base + kR * n),
        gvec(base + kGvec * n), da(base + kDa * n) {}
  __device__ TiedVectors(Real* base, const ModelShape& shape) : TiedVectors(base, shape.n) {}
};

// An rk4 stage's U: U + c dU_p with dU_p = r_p alpha_p^T + gvec_p a_p^T the previous stage's derivative (a_p the
// logits it was evaluated at), formed entry by entry as tied_flow forms dU and advance_fixed_step the stage.
template <class Real>
struct TiedStageShift {
  Real c;
  const Real *r, *alpha, *gvec, *a;
  __device__ Real at(Real u_ij, int i, int j) const { return u_ij + c * (r[i] * alpha[j] + gvec[i] * a[j]); }
};

// tied_flow at (U', a), U' = U shifted by `shift` (NoShift: U itself): alpha = softmax(U' a), beta = U' alpha,
// margin = <beta*, beta>, r = g beta* (g the logistic weight), gvec = C(alpha) U'^T r, da = U'^T gvec; dU = r
// alpha^T + gvec a^T is left implicit (formed entry by entry where it is used). Sets block.eval's loss, s_max and
// ||grad L||^2. Every thread sees the vectors and eval on return. u: D x D (row-major), a, target: D.
template <class Real, int B, class Shift = NoShift>
__device__ void tied_evaluate(BlockRun<Real, B>& block, const ModelShape& shape, const Real* u, const Real* a,
                              const Real* target, const TiedVectors<Real>& x, const Shift& shift = Shift()) {
  const int n = shape.n, t = threadIdx.x;
  block.rows_times(u, n, n, a, x.logits, shift);
  Real s_max, s_sq;
  block.softmax_and_beta(shape, u, x.logits, x.alpha, x.beta, s_max, s_sq, shift);
  Real local = 0;
  for (int i = t; i < n; i += B) local += target[i] * x.beta[i];
  const Real margin = block.reduce.sum(local);
  const Real g = logistic_weight(margin);
  for (int i = t; i < n; i += B) x.r[i] = g * target[i];
  if (t == 0) block.eval.grad_norm_sq = 0;  // tangent adds ||da||^2 to it; replaced below, but never read unset
  __syncthreads();
  block.tangent(shape, u, x.alpha, x.r, x.gvec, shift);  // gvec = C(alpha) U'^T r (its grad_norm_sq is replaced below)
  // da = U^T gvec and ||dU||^2 + ||da||^2, entry by entry as tied_flow sums them.
  Real grad_sq = 0;
  for (int j = t; j < n; j += B) {
    const Real aj = a[j], alpha_j = x.alpha[j];
    Real sum = 0;
    for (int i = 0; i < n; ++i) {
      const Real g_ij = x.r[i] * alpha_j + x.gvec[i] * aj;
      grad_sq += g_ij * g_ij;
      sum += shift.at(u[(long long)i * n + j], i, j) * x.gvec[i];
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

}  // namespace softflow
