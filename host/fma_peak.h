// Purpose: the CPU's measured FMA peak, the yardstick of `softflow bench` on the CPU backend: every thread runs a
// loop of independent vector fused multiply-adds (the widest the CPU has: AVX-512, else AVX2 with FMA, else SSE2
// multiply and add), and the FLOPs they did are divided by the wall time.
#pragma once

#include <string>

namespace softflow {

struct FmaPeak {
  std::string isa;      // "avx512f", "avx2+fma" or "sse2 (no fma)"
  int threads = 0;
  double flops = 0;     // FLOPs done: threads x iterations x accumulators x lanes x 2
  double seconds = 0;
  double gflops() const { return flops / seconds / 1e9; }
};

// Runs the micro-kernel on `threads` OpenMP threads (0: OpenMP's default) for `iterations` rounds each, `trials`
// times, and returns the fastest trial: a busy machine can only slow a trial down, so the best is the peak.
FmaPeak measure_fma_peak(bool float64, int threads, long long iterations = 20000000, int trials = 5);

// FLOPs the micro-kernel does per thread and iteration for an ISA ("avx512f", "avx2+fma", "sse2 (no fma)").
double fma_flops_per_iteration(const std::string& isa, bool float64);

}  // namespace softflow
