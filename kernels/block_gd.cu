// Purpose: the block-per-run gradient-descent kernel (see block_gd.cuh).
#include <cuda_runtime.h>

#include <algorithm>
#include <cub/block/block_reduce.cuh>

#include "block_gd.cuh"
#include "cuda_check.h"
#include "softflow/softmax.h"

namespace softflow {
namespace {

// Shared-memory vectors of one run, in Real entries: s (n), u (n, then da), beta (d), r (d), loss scratch (d + m).
SOFTFLOW_HD inline long long block_vector_entries(const ModelShape& shape) {
  return 2LL * shape.n + 3LL * shape.d + shape.m;
}

// Block-wide sum and maximum with the result in every thread (CUB BlockReduce, then a broadcast).
template <class Real, int B>
struct BlockAllReduce {
  using Reduce = cub::BlockReduce<Real, B>;
  typename Reduce::TempStorage temp;
  Real result;

  __device__ Real sum(Real x) {
    const Real total = Reduce(temp).Sum(x);
    return broadcast(total);
  }
  __device__ Real max(Real x) {
    const Real largest = Reduce(temp).Reduce(x, [](Real p, Real q) { return max_of(p, q); });
    return broadcast(largest);
  }
  __device__ Real broadcast(Real x) {
    if (threadIdx.x == 0) result = x;
    __syncthreads();
    x = result;
    __syncthreads();  // temp and result free for the next reduction
    return x;
  }
};

template <class Real, int B>
__global__ void __launch_bounds__(B) block_gd_kernel(GdSegmentArgs<Real> args) {
  extern __shared__ __align__(16) unsigned char block_vectors[];
  __shared__ BlockAllReduce<Real, B> reduce;
  __shared__ FlowEval<Real> eval;
  __shared__ bool keep_going;
  // RunRecord has a constructor, which a __shared__ variable may not: raw storage, filled by thread 0.
  __shared__ alignas(RunRecord) unsigned char rec_bytes[sizeof(RunRecord)];
  RunRecord& rec = *reinterpret_cast<RunRecord*>(rec_bytes);
  const ModelShape shape = args.shape;
  const int d = shape.d, n = shape.n, t = threadIdx.x;
  const int warp = t / 32, lane = t % 32;
  constexpr int kWarps = B / 32;
  Real* s = reinterpret_cast<Real*>(block_vectors);
  Real* u = s + n;
  Real* beta = u + n;
  Real* r = beta + d;
  Real* work = r + d;
  const Real h = Real(args.step);

  for (long long run = blockIdx.x; run < args.runs; run += gridDim.x) {
    if (t == 0) rec = args.records[run];
    __syncthreads();
    if (rec.status != RunStatus::running) {
      __syncthreads();  // rec is rewritten by the next run
      continue;
    }
    Real* v = args.states + run * shape.state_size();
    Real* a = v + (long long)d * n;
    const Real* data = args.data + run * args.data_stride;

    long long k = args.step_from;
    for (; k < args.step_to; ++k) {
      // s = softmax(a): thread t owns columns t, t + B, ... (the same columns in every pass below).
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
      // beta = V s: warp w takes rows w, w + B / 32, ...; its lanes stride along the row.
      for (int i = warp; i < d; i += kWarps) {
        const Real* row = v + (long long)i * n;
        Real p0 = 0, p1 = 0, p2 = 0, p3 = 0;  // four loads in flight per lane
        int j = lane;
        for (; j + 96 < n; j += 128) {
          p0 += row[j] * s[j];
          p1 += row[j + 32] * s[j + 32];
          p2 += row[j + 64] * s[j + 64];
          p3 += row[j + 96] * s[j + 96];
        }
        for (; j < n; j += 32) p0 += row[j] * s[j];
        Real partial = (p0 + p1) + (p2 + p3);
        for (int offset = 16; offset > 0; offset /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, offset);
        if (lane == 0) beta[i] = partial;
      }
      __syncthreads();
      if (t == 0) {
        eval.loss = loss_and_residual(shape, beta, data, r, work);
        eval.grad_norm_sq = dot(r, r, d) * s_sq;  // ||dV||^2 = ||r||^2 ||s||^2 (dV = r s^T); ||da||^2 added below
        eval.s_max = s_max;
        eval.winner = 0;  // not used by the checks
      }
      __syncthreads();
      // u = V^T r, then da = s .* (u - <s, u>) (softmax_jacobian_apply, spread over the block).
      Real su = 0;
      for (int j = t; j < n; j += B) {
        const Real* column = v + j;
        Real u0 = 0, u1 = 0, u2 = 0, u3 = 0;  // four loads in flight per thread
        int i = 0;
        for (; i + 3 < d; i += 4) {
          u0 += column[(long long)i * n] * r[i];
          u1 += column[(long long)(i + 1) * n] * r[i + 1];
          u2 += column[(long long)(i + 2) * n] * r[i + 2];
          u3 += column[(long long)(i + 3) * n] * r[i + 3];
        }
        for (; i < d; ++i) u0 += column[(long long)i * n] * r[i];
        const Real uj = (u0 + u1) + (u2 + u3);
        u[j] = uj;
        su += s[j] * uj;
      }
      su = reduce.sum(su);
      Real da_sq = 0;
      for (int j = t; j < n; j += B) {
        u[j] = s[j] * (u[j] - su);
        da_sq += u[j] * u[j];
      }
      da_sq = reduce.sum(da_sq);
      if (t == 0) {
        eval.grad_norm_sq += da_sq;
        keep_going = apply_checks(eval, double(k) * args.step, args.stop, false, rec);
        if (keep_going) ++rec.steps;
      }
      __syncthreads();
      if (!keep_going) break;
      for (int j = t; j < n; j += B) {
        const Real sj = s[j];
#pragma unroll 4
        for (int i = 0; i < d; ++i) v[(long long)i * n + j] += h * (r[i] * sj);  // as theta += h dtheta
        a[j] += h * u[j];
      }
      __syncthreads();  // V and a are read across threads by the next step
    }
    if (t == 0) {
      if (rec.status == RunStatus::running) rec.t = double(args.step_to) * args.step;
      args.records[run] = rec;
    }
    __syncthreads();
  }
}

template <class Real, int B>
void launch(const GdSegmentArgs<Real>& args) {
  const size_t bytes = size_t(block_vector_entries(args.shape)) * sizeof(Real);
  SOFTFLOW_CUDA_CHECK(cudaFuncSetAttribute(block_gd_kernel<Real, B>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(bytes)));
  int device = 0, sms = 0, blocks_per_sm = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  SOFTFLOW_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, block_gd_kernel<Real, B>, B, bytes));
  const long long resident = (long long)std::max(1, blocks_per_sm) * sms;
  const unsigned grid = unsigned(std::max(1LL, std::min(args.runs, 4 * resident)));
  block_gd_kernel<Real, B><<<grid, B, bytes>>>(args);
  SOFTFLOW_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

int block_gd_threads(const ModelShape& shape) {
  int threads = 32;
  while (threads < 1024 && threads < std::max(shape.d, shape.n)) threads *= 2;
  return threads;
}

bool block_gd_available(const ModelShape& shape, int real_bytes) {
  if (shape.model != ModelKind::value_softmax) return false;
  int device = 0, limit = 0;
  SOFTFLOW_CUDA_CHECK(cudaGetDevice(&device));
  SOFTFLOW_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const long long reduce_bytes = 4096;  // CUB temp storage, the record and flags: well under this
  return block_vector_entries(shape) * real_bytes + reduce_bytes <= limit;
}

template <class Real>
void block_gd_advance(const GdSegmentArgs<Real>& args) {
  switch (block_gd_threads(args.shape)) {
    case 32: return launch<Real, 32>(args);
    case 64: return launch<Real, 64>(args);
    case 128: return launch<Real, 128>(args);
    case 256: return launch<Real, 256>(args);
    case 512: return launch<Real, 512>(args);
    default: return launch<Real, 1024>(args);
  }
}

template void block_gd_advance<float>(const GdSegmentArgs<float>&);
template void block_gd_advance<double>(const GdSegmentArgs<double>&);

}  // namespace softflow
