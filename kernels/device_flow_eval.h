// Purpose: host entry point that evaluates the shared vector field (include/softflow/model.h) on the GPU, one
// thread per run. It proves the per-trajectory math compiles and runs as device code and matches the CPU bit for
// bit or to rounding; the fused study kernels of the CUDA backend build on the same functions.
#pragma once

#include <vector>

#include "softflow/flow.h"

namespace softflow {

// theta: runs x state_size (run-major); data: runs x data_size; returns dtheta (runs x state_size) and each run's
// loss in loss_out (runs). Throws CudaError on any CUDA failure.
template <class Real>
void evaluate_flow_on_device(const ModelShape& shape, const std::vector<Real>& theta, const std::vector<Real>& data,
                             std::vector<Real>& dtheta, std::vector<Real>& loss_out);

}  // namespace softflow
