// Purpose: the SIMD kernel's entry points for builds without Highway: it handles nothing, so the CPU backend takes
// the scalar kernel (integrators.h) for every cell.
#include <stdexcept>

#include "simd_kernel.h"

namespace softflow {

std::string simd_target() { return "none"; }
int simd_lanes(bool) { return 1; }
int simd_slices(const ModelShape&, Method, bool) { return 1; }
bool simd_handles(const ModelShape&, Method, bool) { return false; }
double simd_thread_bytes(const ModelShape&, Method, bool) { return 0; }
void simd_advance(const SimdGroup<float>&) { throw std::logic_error("simd_advance without Highway"); }
void simd_advance(const SimdGroup<double>&) { throw std::logic_error("simd_advance without Highway"); }
void simd_exp_nonpositive(const float*, float*, size_t) { throw std::logic_error("simd_exp_nonpositive without Highway"); }
void simd_exp_nonpositive(const double*, double*, size_t) {
  throw std::logic_error("simd_exp_nonpositive without Highway");
}

}  // namespace softflow
