// Purpose: the shared vector field evaluated on the GPU, one thread per run (see device_flow_eval.h).
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "device_array.cuh"
#include "device_flow_eval.h"

namespace softflow {
namespace {

// One thread per run; the model's scratch lives in a per-thread slice of global memory.
template <class Real>
__global__ void evaluate_flow_kernel(ModelShape shape, int runs, const Real* theta, const Real* data, Real* dtheta,
                                     Real* loss, Real* scratch) {
  const int run = blockIdx.x * blockDim.x + threadIdx.x;
  if (run >= runs) return;
  const int p = shape.state_size();
  const FlowEval<Real> eval = evaluate_flow(shape, theta + size_t(run) * p, data + size_t(run) * shape.data_size(),
                                            dtheta + size_t(run) * p, scratch + size_t(run) * shape.scratch_size());
  loss[run] = eval.loss;
}

}  // namespace

template <class Real>
void evaluate_flow_on_device(const ModelShape& shape, const std::vector<Real>& theta, const std::vector<Real>& data,
                             std::vector<Real>& dtheta, std::vector<Real>& loss_out) {
  const int p = shape.state_size();
  const int runs = int(theta.size() / size_t(p));
  DeviceArray<Real> d_theta(theta.size()), d_data(data.size()), d_dtheta(theta.size());
  DeviceArray<Real> d_loss(static_cast<size_t>(runs));
  DeviceArray<Real> d_scratch(static_cast<size_t>(runs) * static_cast<size_t>(shape.scratch_size()));
  d_theta.upload(theta.data(), theta.size());
  d_data.upload(data.data(), data.size());
  const int threads = 128;
  evaluate_flow_kernel<Real><<<(runs + threads - 1) / threads, threads>>>(shape, runs, d_theta.get(), d_data.get(),
                                                                        d_dtheta.get(), d_loss.get(), d_scratch.get());
  SOFTFLOW_CUDA_CHECK(cudaGetLastError());
  SOFTFLOW_CUDA_CHECK(cudaDeviceSynchronize());
  dtheta = d_dtheta.to_host();
  loss_out = d_loss.to_host();
}

template void evaluate_flow_on_device<float>(const ModelShape&, const std::vector<float>&, const std::vector<float>&,
                                             std::vector<float>&, std::vector<float>&);
template void evaluate_flow_on_device<double>(const ModelShape&, const std::vector<double>&,
                                              const std::vector<double>&, std::vector<double>&, std::vector<double>&);

}  // namespace softflow
