// Purpose: which CUDA kernels the backend may choose (softflow run --cuda-kernels): the validated set (the kernels
// GPU runs have checked against the CPU reference, the default), or the candidate set, which adds the kernels built
// and tested without a GPU so far (their logic checked in CI by the host emulation), so that a GPU session can run
// whole studies on them and compare them with the CPU before they become the default. Plain host code: every build
// has the option; it changes only what the CUDA backend does.
#pragma once

#include <string>

namespace softflow {

enum class CudaKernelSet { validated, candidate };

inline const char* cuda_kernel_set_name(CudaKernelSet set) {
  return set == CudaKernelSet::candidate ? "candidate" : "validated";
}

inline CudaKernelSet parse_cuda_kernel_set(const std::string& name) {
  return name == "candidate" ? CudaKernelSet::candidate : CudaKernelSet::validated;
}

}  // namespace softflow
