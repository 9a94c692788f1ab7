// Purpose: the CUDA entry points for builds without the CUDA parts: no device, ever, so the engine never asks
// for the CUDA cell runner (resolve_backend refuses --backend cuda first).
#include <stdexcept>

#include "cell_runner.h"
#include "cuda_check.h"

namespace softflow {

int cuda_device_count() { return 0; }

CellOutcome run_cell_on_cuda(const Study&, std::uint32_t, Progress&, CudaKernelSet) {
  throw std::logic_error("run_cell_on_cuda called in a build without the CUDA parts");
}

void check_cuda_memory(const Study&, const std::vector<std::uint32_t>&) {
  throw std::logic_error("check_cuda_memory called in a build without the CUDA parts");
}

}  // namespace softflow
