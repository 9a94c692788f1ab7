// Purpose: the CUDA queries of kernels/cuda_check.h for builds without the CUDA parts: no device, ever.
#include "cuda_check.h"

namespace softflow {

int cuda_device_count() { return 0; }

}  // namespace softflow
