// Purpose: gd with a shared regression data set through cuBLAS (see shared_regression.cuh).
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "block_per_run.cuh"
#include "block_run.cuh"
#include "cublas_gemm.cuh"
#include "cuda_check.h"
#include "device_array.cuh"
#include "grid_launch.cuh"
#include "shared_regression.cuh"

namespace softflow {
namespace {

// Every running run's s = softmax(a) (row of S) and beta = V s (row of B); a stopped run's beta row is zeroed so
// the products stay finite. One block per run, grid-stride.
template <class Real, int B>
__global__ void __launch_bounds__(B) softmax_beta_kernel(FixedStepSegmentArgs<Real> args, Real* s_all, Real* beta_all) {
  __shared__ BlockRun<Real, B> block;
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n;
  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    Real* beta = beta_all + run * d;
    if (args.records[run].status != RunStatus::running) {  // the same value in every thread: no divergence
      for (int i = threadIdx.x; i < d; i += B) beta[i] = 0;
      continue;
    }
    const Real* v = args.states + run * shape.state_size();
    Real s_max, s_sq;
    block.softmax_and_beta(shape, v, v + (long long)d * n, s_all + run * n, beta, s_max, s_sq);
  }
}

// E <- Y - E: the residuals y_k - x_k . beta of every run (runs x m, run-major).
template <class Real>
__global__ void residual_kernel(Real* e, const Real* y, long long runs, int m) {
  const long long count = runs * m;
  const long long stride = gridDim.x * (long long)blockDim.x;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += stride) e[i] = y[i % m] - e[i];
}

// Step k of every running run, given its s (S), residuals (E) and r (R): the loss ||E_p||^2, da = s .* (u - <s,u>)
// with u = V^T r, the checks at t = k h, then V += h r s^T, a += h da. u in dynamic shared memory (n).
template <class Real, int B>
__global__ void __launch_bounds__(B) check_and_update_kernel(FixedStepSegmentArgs<Real> args, long long k,
                                                             const Real* s_all, const Real* e_all, const Real* r_all) {
  __shared__ BlockRun<Real, B> block;
  Real* u = reinterpret_cast<Real*>(block_vectors);  // the launch's dynamic shared memory (block_run.cuh)
  RunRecord& rec = block.rec();
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, m = shape.m, t = threadIdx.x;
  const Real h = Real(args.step);
  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (!block.begin_run(args.records, run)) continue;
    Real* v = args.states + run * shape.state_size();
    Real* a = v + (long long)d * n;
    const Real *s = s_all + run * n, *e = e_all + run * m, *r = r_all + run * d;
    Real loss = 0, s_max = 0, s_sq = 0, r_sq = 0;
    for (int q = t; q < m; q += B) loss += e[q] * e[q];
    for (int j = t; j < n; j += B) {
      s_max = max_of(s_max, s[j]);
      s_sq += s[j] * s[j];
    }
    for (int i = t; i < d; i += B) r_sq += r[i] * r[i];
    loss = block.reduce.sum(loss);
    s_max = block.reduce.max(s_max);
    s_sq = block.reduce.sum(s_sq);
    r_sq = block.reduce.sum(r_sq);
    if (t == 0) block.eval = FlowEval<Real>{loss, s_max, r_sq * s_sq, 0};
    __syncthreads();
    block.tangent(shape, v, s, r, u);  // adds ||da||^2 to eval.grad_norm_sq
    const bool going = block.check_step(double(k) * args.step, args.stop);
    if (t == 0) {
      if (going && k + 1 == args.step_to) rec.t = double(args.step_to) * args.step;
      args.records[run] = rec;
    }
    if (going) {
      for (int j = t; j < n; j += B) {
        const Real sj = s[j];
        for (int i = 0; i < d; ++i) v[(long long)i * n + j] += h * (r[i] * sj);  // as theta += h dtheta
        a[j] += h * u[j];
      }
    }
    __syncthreads();
  }
}

}  // namespace

bool shared_regression_available(const ModelShape& shape, bool shared_data, int real_bytes) {
  return shape.model == ModelKind::value_softmax && shape.loss == LossKind::regression && shared_data &&
         block_gd_available(shape, real_bytes);
}

long long shared_regression_bytes_per_run(const ModelShape& shape, int real_bytes) {
  return (long long)real_bytes * (shape.n + 2LL * shape.d + shape.m);
}

template <class Real>
struct SharedRegressionSteps<Real>::Impl {
  ModelShape shape;
  long long max_runs = 0;
  DeviceArray<Real> s, beta, e, r;  // S (runs x n), B (runs x d), E (runs x m), R (runs x d)
  CublasHandle handle;
  int sms = 1;
};

template <class Real>
SharedRegressionSteps<Real>::SharedRegressionSteps(const ModelShape& shape, long long max_runs)
    : impl_(new Impl) {
  Impl& x = *impl_;
  x.shape = shape;
  x.max_runs = max_runs;
  x.s.allocate(size_t(max_runs * shape.n));
  x.beta.allocate(size_t(max_runs * shape.d));
  x.e.allocate(size_t(max_runs * shape.m));
  x.r.allocate(size_t(max_runs * shape.d));
  int device = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&x.sms, cudaDevAttrMultiProcessorCount, device));
}

template <class Real>
SharedRegressionSteps<Real>::~SharedRegressionSteps() = default;

template <class Real>
void SharedRegressionSteps<Real>::advance(const FixedStepSegmentArgs<Real>& args) {
  Impl& x = *impl_;
  if (args.runs < 1 || args.runs > x.max_runs)  // the buffers hold max_runs (runs x max(m, n, d) <= 2^30)
    throw std::logic_error("SharedRegressionSteps: a wave of " + std::to_string(args.runs) + " runs");
  const int d = x.shape.d, n = x.shape.n, m = x.shape.m;
  const int runs = int(args.runs);
  const Real* data = args.data;  // X (m x d, row-major = column-major d x m), then y (m)
  const Real* y = data + (long long)m * d;
  const unsigned grid = unsigned(std::min<long long>(args.runs, 8LL * x.sms));
  const unsigned residual_grid = unsigned(std::min<long long>((args.runs * m + 255) / 256, 32LL * x.sms));
  const size_t u_bytes = size_t(n) * sizeof(Real);
  with_block_size(block_gd_threads(x.shape), [&](auto threads) {
    constexpr int B = decltype(threads)::value;
    SOFTFLOW_CUDA_CHECK(cudaFuncSetAttribute(check_and_update_kernel<Real, B>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, int(u_bytes)));
    for (long long k = args.step_from; k < args.step_to; ++k) {
      launch_grid(softmax_beta_kernel<Real, B>, grid, B, 0, args, x.s.get(), x.beta.get());
      // E^T (m x runs, column-major) = X (m x d) B^T: X is column-major d x m (op T), B^T column-major d x runs.
      SOFTFLOW_CUBLAS_CHECK(gemm(x.handle.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, runs, d, Real(1), data, d,
                                 x.beta.get(), d, x.e.get(), m));
      launch_grid(residual_kernel<Real>, residual_grid, 256, 0, x.e.get(), y, args.runs, m);
      // R^T (d x runs) = 2 X^T E^T: X^T is X's column-major d x m (op N), E^T column-major m x runs.
      SOFTFLOW_CUBLAS_CHECK(gemm(x.handle.get(), CUBLAS_OP_N, CUBLAS_OP_N, d, runs, m, Real(2), data, d,
                                 x.e.get(), m, x.r.get(), d));
      launch_grid(check_and_update_kernel<Real, B>, grid, B, u_bytes, args, k, x.s.get(), x.e.get(), x.r.get());
    }
  });
}

template class SharedRegressionSteps<float>;
template class SharedRegressionSteps<double>;

}  // namespace softflow
