// Purpose: the CPU backend's SIMD kernel for value-softmax gd and rk4: one vector lane per run, so a group of
// consecutive runs (one or two vectors' worth: 16 or 32 float32 runs with AVX-512, 8 or 16 with AVX2) advances in
// lockstep with the whole group's state in cache. Built on Highway (run-time dispatch to the best instruction set
// the CPU has); in builds without Highway simd_handles() is false and the scalar kernel (integrators.h) does
// everything.
//
// The math is value_softmax_flow and the gd / rk4 steps of model.h / integrators.h, with differences a user can
// see only in the last bits: products are fused multiply-adds where the target has them (AVX2, AVX-512; not SSE4);
// exp is simd_exp-inl.h's (arguments <= 0, Highway's polynomial), log / log1p are Highway's; the O(n) sums run in
// four interleaved partials; ||r s^T||_F^2 is computed as ||r||^2 ||s||^2; rk4's stage states are never formed
// (each stage's V is V + c r s^T, applied inside the passes over V); for the logistic loss's gd, u = V^T r is
// formed as g (V^T y) (r = g y) with V^T y summed in the pass that updates V, and the softmax is kept as
// unnormalised weights and their normaliser. The stopping and event rules are apply_checks itself, called for the
// lanes a vector pre-filter flags (a conservative superset); so statuses, event times and step counts follow the
// scalar kernel's rules exactly.
#pragma once

#include <cstddef>
#include <string>

#include "softflow/integrators.h"
#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

// The instruction set the SIMD kernel dispatches to on this CPU ("AVX3" = AVX-512, "AVX2", "SSE4", ...), or
// "none" in builds without Highway.
std::string simd_target();
// Lanes of one vector for float32 or float64 on this CPU; 1 without Highway.
int simd_lanes(bool float64);
// Vectors of runs a gd group holds (its runs: simd_slices x simd_lanes): 2 where two vectors' worth of states fit
// in kSimdTwoSliceBytes (half a typical L1 data cache), so the latency-bound O(n) phases of one slice overlap the
// other's; else 1. rk4 groups always hold 1. Always 1 without Highway.
constexpr double kSimdTwoSliceBytes = 24.0 * 1024;
int simd_slices(const ModelShape& shape, Method method, bool float64);

// Whether the SIMD kernel advances cells of this shape, method and precision: value-softmax, gd or rk4, any loss,
// with a group's states at most kSimdGroupBytes. Beyond L1 and L2 it still beats the scalar kernel (measured here
// at d = n = 256 float32 gd: 22 % of the FMA peak against 2.5 %); the bound keeps each thread's buffer moderate.
constexpr double kSimdGroupBytes = 16.0 * 1024 * 1024;
bool simd_handles(const ModelShape& shape, Method method, bool float64);

// Bytes of the per-thread group buffer the SIMD kernel allocates for this shape (0 where it does not handle it).
double simd_thread_bytes(const ModelShape& shape, Method method, bool float64);

// One group of consecutive runs of a cell, advanced by `method` (gd or rk4) from step k_from to step k_to
// (t = k step), as advance_fixed_step does for each run: runs not running on entry are left alone; a run that
// stops keeps its state at the stop. count: runs in the group (1 .. simd_slices x simd_lanes); states: count x
// state_size (in/out); data: data_size (shared by all runs) or count x data_size (per run); records: count
// (in/out).
template <class Real>
struct SimdGroup {
  const ModelShape* shape = nullptr;
  Method method = Method::gd;
  double step = 0;
  long long k_from = 0, k_to = 0;
  const StopRule* stop = nullptr;
  int count = 0;
  Real* states = nullptr;
  const Real* data = nullptr;
  bool data_per_run = false;
  RunRecord* records = nullptr;
};
void simd_advance(const SimdGroup<float>& group);
void simd_advance(const SimdGroup<double>& group);

// The kernel's exponential for arguments <= 0 (simd_exp-inl.h), exposed for its accuracy test: out[i] =
// exp(x[i]) for i < count. Without Highway: a logic error.
void simd_exp_nonpositive(const float* x, float* out, size_t count);
void simd_exp_nonpositive(const double* x, double* out, size_t count);

}  // namespace softflow
