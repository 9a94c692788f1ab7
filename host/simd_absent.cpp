// Purpose: the SIMD path's entry points for builds without Highway: it handles nothing, so the CPU backend takes
// the scalar path (integrators.h) for every cell.
#include <stdexcept>

#include "simd_gd.h"

namespace softflow {

std::string simd_target() { return "none"; }
int simd_lanes(bool) { return 1; }
int simd_slices(const ModelShape&, bool) { return 1; }
bool simd_handles(const ModelShape&, Method, bool) { return false; }
double simd_thread_bytes(const ModelShape&, Method, bool) { return 0; }
void simd_advance_gd(const SimdGdGroup<float>&) { throw std::logic_error("simd_advance_gd without Highway"); }
void simd_advance_gd(const SimdGdGroup<double>&) { throw std::logic_error("simd_advance_gd without Highway"); }

}  // namespace softflow
