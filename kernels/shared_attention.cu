// Purpose: gd and normalized gd of the attention family with a shared data set through cuBLAS (see
// shared_attention.cuh): the selection matrix M and X v formed once, then per step two (vp: four) GEMMs around a
// per-run selection kernel (attention_flow's per-input math) and a per-run check-and-step kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cublas_gemm.cuh"
#include "cuda_check.h"
#include "device_array.cuh"
#include "grid_launch.cuh"
#include "shared_attention.cuh"
#include "softflow/attention.h"
#include "softflow/run_record.h"

namespace softflow {
namespace {

constexpr int kThreads = 128;

// Where a trainable set's selection parameters (those the logits are linear in) sit in theta, and how many.
struct SelectionBlock {
  int offset, size;
};
SelectionBlock selection_block(const ModelShape& shape) {
  if (shape.trainable == AttentionTrainable::w) return {0, shape.d * shape.d};
  return {shape.trainable == AttentionTrainable::vp ? shape.d : 0, shape.d};
}

// Rows of M, L and Q~: one per (input, token), input-major.
__host__ __device__ inline int token_rows(const ModelShape& shape) { return shape.inputs * shape.n; }

// M (N T x k, column-major) from the shared data: p, vp: (X W)_(it),c = sum_r x_itr W_rc, summed in double;
// W: x_ita z_ib at column a d + b (W's row-major index).
template <class Real>
__global__ void selection_matrix_kernel(ModelShape shape, const Real* data, Real* m) {
  const AttentionView<Real> view(shape, nullptr, data);
  const int d = shape.d, T = shape.n, rows = token_rows(shape);
  const bool train_w = shape.trainable == AttentionTrainable::w;
  const long long count = (long long)rows * (train_w ? d * d : d);
  const long long stride = gridDim.x * (long long)blockDim.x;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < count; e += stride) {
    const int row = int(e % rows), col = int(e / rows);
    const Real* x = view.x + (long long)row * d;
    if (train_w) {
      m[e] = x[col / d] * view.z[(row / T) * d + col % d];
    } else {
      double total = 0;
      for (int r = 0; r < d; ++r) total += double(x[r]) * double(view.w[r * d + col]);
      m[e] = Real(total);
    }
  }
}

// xv_it = <x_it, v> for the fixed v of trainable p and W, as attention_flow forms it. xv: N T.
template <class Real>
__global__ void shared_xv_kernel(ModelShape shape, const Real* data, Real* xv) {
  const AttentionView<Real> view(shape, nullptr, data);
  const int d = shape.d, rows = token_rows(shape);
  for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += gridDim.x * blockDim.x)
    xv[row] = dot(view.x + (long long)row * d, view.v, d);
}

// The per-run arrays of one step. (R x N T arrays are column-major with the runs fastest: entry (r, row) at
// r + row R, so that consecutive threads read consecutive runs.)
template <class Real>
struct StepArrays {
  const Real* logits;     // L: R x N T
  const Real* xv_shared;  // N T (p, W), or null
  const Real* xv_runs;    // XV: R x N T (vp), or null
  Real* q;                // Q~: R x N T, c_i q_it
  Real* s_weighted;       // S~: R x N T, c_i s_it (vp), or null
  Real* loss;             // R
  Real* s_max;            // R: mean over inputs of max_t s_it
};

// attention_flow's per-input math for every running run: s = softmax(logits_i), the selected token, f relative to
// it, the margin, the loss and c = l'(margin) Y_i / N; writes Q~ (and S~), the loss and s_max. A stopped run's Q~
// and S~ are zeroed so that the gradient GEMMs stay finite.
template <class Real>
__global__ void selection_kernel(ModelShape shape, long long runs, const RunRecord* records, const Real* y,
                                 StepArrays<Real> a) {
  const int T = shape.n, inputs = shape.inputs;
  const long long stride = gridDim.x * (long long)blockDim.x;
  for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < runs; r += stride) {
    auto at = [&](int row) { return r + (long long)row * runs; };
    if (records[r].status != RunStatus::running) {
      for (int row = 0; row < inputs * T; ++row) {
        a.q[at(row)] = 0;
        if (a.s_weighted) a.s_weighted[at(row)] = 0;
      }
      continue;
    }
    Real loss = 0, s_max = 0;
    for (int i = 0; i < inputs; ++i) {
      const int base = i * T;
      // softmax (softmax.h): s_t = exp(l_t - max l) / sum, recomputed where needed rather than stored.
      Real l_max = a.logits[at(base)];
      for (int t = 1; t < T; ++t) l_max = max_of(l_max, a.logits[at(base + t)]);
      Real total = 0;
      for (int t = 0; t < T; ++t) total += exp(a.logits[at(base + t)] - l_max);
      const Real inv = Real(1) / total;
      auto s_of = [&](int t) { return exp(a.logits[at(base + t)] - l_max) * inv; };
      auto xv_of = [&](int t) { return a.xv_runs ? a.xv_runs[at(base + t)] : a.xv_shared[base + t]; };
      int winner = 0;  // argmax (first on ties)
      Real best = s_of(0);
      for (int t = 1; t < T; ++t) {
        const Real st = s_of(t);
        if (st > best) {
          best = st;
          winner = t;
        }
      }
      s_max += best / Real(inputs);
      const Real selected = xv_of(winner);
      Real delta = 0;
      for (int t = 0; t < T; ++t) delta += s_of(t) * (xv_of(t) - selected);
      const Real margin = y[i] * (selected + delta);
      loss += margin_loss(shape.loss, margin) / Real(inputs);
      const Real c = margin_loss_slope(shape.loss, margin) * y[i] / Real(inputs);
      for (int t = 0; t < T; ++t) {
        const Real st = s_of(t);
        a.q[at(base + t)] = c * (st * ((xv_of(t) - selected) - delta));
        if (a.s_weighted) a.s_weighted[at(base + t)] = c * st;
      }
    }
    a.loss[r] = loss;
    a.s_max[r] = s_max;
  }
}

// Step k of every running run as advance_fixed_step takes it, given grad L (G, theta's layout): ||grad L||^2, the
// checks at t = k h, then theta += h dtheta (gd) or the normalized step, with dtheta = -grad L.
template <class Real>
__global__ void check_and_step_kernel(FixedStepSegmentArgs<Real> args, Method method, long long k, Real* gradients,
                                      const Real* loss, const Real* s_max) {
  const ModelShape shape = args.shape;
  const int p = shape.state_size();
  const double t = double(k) * args.step;
  const Real h = Real(args.step);
  for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < args.runs;
       r += gridDim.x * (long long)blockDim.x) {
    RunRecord rec = args.records[r];
    if (rec.status != RunStatus::running) continue;
    Real* g = gradients + r * p;
    Real* theta = args.states + r * p;
    Real grad_sq = 0;
    for (int i = 0; i < p; ++i) grad_sq += g[i] * g[i];
    rec.t = t;
    if (apply_checks(FlowEval<Real>{loss[r], s_max[r], grad_sq, 0}, t, args.stop, false, rec)) {
      for (int i = 0; i < p; ++i) g[i] = -g[i];  // dtheta
      if (method == Method::gd)
        for (int i = 0; i < p; ++i) theta[i] += h * g[i];
      else
        normalized_step(shape, h, g, theta);
      ++rec.steps;
      if (k + 1 == args.step_to) rec.t = double(args.step_to) * args.step;
    }
    args.records[r] = rec;
  }
}

}  // namespace

bool shared_attention_available(const ModelShape& shape, Method method, bool shared_data) {
  return shape.model == ModelKind::attention && shared_data &&
         (method == Method::gd || method == Method::normalized_gd);
}

long long shared_attention_bytes_per_run(const ModelShape& shape, int real_bytes) {
  const long long rows = token_rows(shape);
  const long long per_token = shape.trainable == AttentionTrainable::vp ? 4 : 2;  // L, Q~ (and XV, S~)
  return (long long)real_bytes * (per_token * rows + shape.state_size() + 2);
}

long long shared_attention_fixed_bytes(const ModelShape& shape, int real_bytes) {
  const long long rows = token_rows(shape);
  const bool train_v = shape.trainable == AttentionTrainable::vp;
  return (long long)real_bytes * (rows * selection_block(shape).size + (train_v ? 0 : rows));
}

template <class Real>
struct SharedAttentionSteps<Real>::Impl {
  ModelShape shape;
  Method method;
  const Real* data;
  long long max_runs = 0;
  DeviceArray<Real> m, xv;                                  // M (N T x k), X v (N T; p and W)
  DeviceArray<Real> logits, q, xv_runs, s_weighted, gradients, loss, s_max;
  CublasHandle handle;
  int sms = 1;
};

template <class Real>
SharedAttentionSteps<Real>::SharedAttentionSteps(const ModelShape& shape, Method method, const Real* data,
                                                 long long max_runs)
    : impl_(new Impl) {
  Impl& x = *impl_;
  x.shape = shape;
  x.method = method;
  x.data = data;
  x.max_runs = max_runs;
  const long long rows = token_rows(shape);
  const SelectionBlock selection = selection_block(shape);
  const bool train_v = shape.trainable == AttentionTrainable::vp;
  int device = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&x.sms, cudaDevAttrMultiProcessorCount, device));
  x.m.allocate(size_t(rows * selection.size));
  launch_grid(selection_matrix_kernel<Real>,
              unsigned(std::min<long long>((rows * selection.size + kThreads - 1) / kThreads, 32LL * x.sms)), kThreads,
              0, shape, data, x.m.get());
  if (!train_v) {
    x.xv.allocate(size_t(rows));
    launch_grid(shared_xv_kernel<Real>, unsigned((rows + kThreads - 1) / kThreads), kThreads, 0, shape, data,
                x.xv.get());
  }
  const size_t run_rows = size_t(max_runs * rows);
  x.logits.allocate(run_rows);
  x.q.allocate(run_rows);
  if (train_v) {
    x.xv_runs.allocate(run_rows);
    x.s_weighted.allocate(run_rows);
  }
  x.gradients.allocate(size_t(max_runs * shape.state_size()));
  x.loss.allocate(size_t(max_runs));
  x.s_max.allocate(size_t(max_runs));
}

template <class Real>
SharedAttentionSteps<Real>::~SharedAttentionSteps() = default;

template <class Real>
void SharedAttentionSteps<Real>::advance(const FixedStepSegmentArgs<Real>& args) {
  Impl& x = *impl_;
  if (args.runs < 1 || args.runs > x.max_runs)  // the buffers hold max_runs (cuBLAS sizes are ints)
    throw std::logic_error("SharedAttentionSteps: a wave of " + std::to_string(args.runs) + " runs");
  const ModelShape& shape = x.shape;
  const int d = shape.d, rows = token_rows(shape), p = shape.state_size(), runs = int(args.runs);
  const SelectionBlock selection = selection_block(shape);
  const bool train_v = shape.trainable == AttentionTrainable::vp;
  const AttentionView<Real> view(shape, nullptr, x.data);  // X (N T x d row-major: column-major d x N T), Y
  const unsigned grid = unsigned(std::min<long long>((args.runs + kThreads - 1) / kThreads, 32LL * x.sms));
  cublasHandle_t handle = x.handle.get();
  const StepArrays<Real> arrays{x.logits.get(), train_v ? nullptr : x.xv.get(), train_v ? x.xv_runs.get() : nullptr,
                                x.q.get(),      train_v ? x.s_weighted.get() : nullptr, x.loss.get(), x.s_max.get()};
  for (long long k = args.step_from; k < args.step_to; ++k) {
    // L (R x N T) = Theta_sel^T M^T: Theta_sel is column-major k x R (ld p, op T), M column-major N T x k (op T).
    SOFTFLOW_CUBLAS_CHECK(gemm(handle, CUBLAS_OP_T, CUBLAS_OP_T, runs, rows, selection.size, Real(1),
                               args.states + selection.offset, p, x.m.get(), rows, x.logits.get(), runs));
    if (train_v)  // XV (R x N T) = V^T X^T: V column-major d x R (ld p, op T), X^T is X's column-major d x N T.
      SOFTFLOW_CUBLAS_CHECK(gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, runs, rows, d, Real(1), args.states, p, view.x, d,
                                 x.xv_runs.get(), runs));
    launch_grid(selection_kernel<Real>, grid, kThreads, 0, shape, args.runs, args.records, view.y, arrays);
    // G_sel (k x R, ld p) = M^T Q~: M column-major N T x k (op T), Q~^T = the R x N T array (op T).
    SOFTFLOW_CUBLAS_CHECK(gemm(handle, CUBLAS_OP_T, CUBLAS_OP_T, selection.size, runs, rows, Real(1), x.m.get(),
                               rows, x.q.get(), runs, x.gradients.get() + selection.offset, p));
    if (train_v)  // G_v (d x R, ld p) = X^T S~: X^T column-major d x N T (op N), S~^T (op T).
      SOFTFLOW_CUBLAS_CHECK(gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, d, runs, rows, Real(1), view.x, d,
                                 x.s_weighted.get(), runs, x.gradients.get(), p));
    launch_grid(check_and_step_kernel<Real>, grid, kThreads, 0, args, x.method, k, x.gradients.get(), x.loss.get(),
                x.s_max.get());
  }
}

template class SharedAttentionSteps<float>;
template class SharedAttentionSteps<double>;

}  // namespace softflow
