// Purpose: the FMA peak micro-kernel (see fma_peak.h). The ISA is chosen at run time (__builtin_cpu_supports), each
// variant compiled for its target by a function attribute, so the project needs no -march flag.
#include "fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <stdexcept>

namespace softflow {
namespace {

// Independent accumulators per thread: enough to cover the FMA latency on two pipes (4 cycles x 2 x 2).
constexpr int kAccumulators = 16;

// Each kernel returns a value depending on every accumulator, so the compiler keeps all the work.
__attribute__((target("avx512f"))) double kernel_avx512(bool float64, long long iterations) {
  double sink = 0;
  if (float64) {
    __m512d acc[kAccumulators];
    const __m512d a = _mm512_set1_pd(0.999999), b = _mm512_set1_pd(1e-7);
    for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm512_set1_pd(k);
    for (long long i = 0; i < iterations; ++i)
      for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm512_fmadd_pd(acc[k], a, b);
    alignas(64) double lanes[8];
    for (int k = 0; k < kAccumulators; ++k) {
      _mm512_store_pd(lanes, acc[k]);
      for (double x : lanes) sink += x;
    }
  } else {
    __m512 acc[kAccumulators];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm512_set1_ps(float(k));
    for (long long i = 0; i < iterations; ++i)
      for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    alignas(64) float lanes[16];
    for (int k = 0; k < kAccumulators; ++k) {
      _mm512_store_ps(lanes, acc[k]);
      for (float x : lanes) sink += x;
    }
  }
  return sink;
}

__attribute__((target("avx2,fma"))) double kernel_avx2(bool float64, long long iterations) {
  double sink = 0;
  if (float64) {
    __m256d acc[kAccumulators];
    const __m256d a = _mm256_set1_pd(0.999999), b = _mm256_set1_pd(1e-7);
    for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm256_set1_pd(k);
    for (long long i = 0; i < iterations; ++i)
      for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm256_fmadd_pd(acc[k], a, b);
    alignas(32) double lanes[4];
    for (int k = 0; k < kAccumulators; ++k) {
      _mm256_store_pd(lanes, acc[k]);
      sink += lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
  } else {
    __m256 acc[kAccumulators];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm256_set1_ps(float(k));
    for (long long i = 0; i < iterations; ++i)
      for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
    alignas(32) float lanes[8];
    for (int k = 0; k < kAccumulators; ++k) {
      _mm256_store_ps(lanes, acc[k]);
      for (float x : lanes) sink += x;
    }
  }
  return sink;
}

double kernel_sse2(bool float64, long long iterations) {
  double sink = 0;
  if (float64) {
    __m128d acc[kAccumulators];
    const __m128d a = _mm_set1_pd(0.999999), b = _mm_set1_pd(1e-7);
    for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm_set1_pd(k);
    for (long long i = 0; i < iterations; ++i)
      for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm_add_pd(_mm_mul_pd(acc[k], a), b);
    alignas(16) double lanes[2];
    for (int k = 0; k < kAccumulators; ++k) {
      _mm_store_pd(lanes, acc[k]);
      sink += lanes[0] + lanes[1];
    }
  } else {
    __m128 acc[kAccumulators];
    const __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
    for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm_set1_ps(float(k));
    for (long long i = 0; i < iterations; ++i)
      for (int k = 0; k < kAccumulators; ++k) acc[k] = _mm_add_ps(_mm_mul_ps(acc[k], a), b);
    alignas(16) float lanes[4];
    for (int k = 0; k < kAccumulators; ++k) {
      _mm_store_ps(lanes, acc[k]);
      for (float x : lanes) sink += x;
    }
  }
  return sink;
}

std::string best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
  return "sse2 (no fma)";
}

}  // namespace

double fma_flops_per_iteration(const std::string& isa, bool float64) {
  const int bytes = isa == "avx512f" ? 64 : (isa == "avx2+fma" ? 32 : 16);
  const int lanes = bytes / (float64 ? 8 : 4);
  return double(kAccumulators) * lanes * 2.0;  // a multiply and an add per lane, fused or not
}

namespace {

// One timed run of the micro-kernel on every thread of the team.
FmaPeak fma_trial(bool float64, int threads, long long iterations) {
  FmaPeak peak;
  peak.isa = best_isa();
  const int team = threads > 0 ? threads : omp_get_max_threads();
  double total = 0;
  int team_size = 0;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(team) reduction(+ : total)
  {
    if (peak.isa == "avx512f")
      total += kernel_avx512(float64, iterations);
    else if (peak.isa == "avx2+fma")
      total += kernel_avx2(float64, iterations);
    else
      total += kernel_sse2(float64, iterations);
#pragma omp master
    team_size = omp_get_num_threads();
  }
  peak.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  peak.threads = team_size;
  volatile double keep = total;  // the accumulators' values are used, so no work is dropped
  (void)keep;
  peak.flops = double(peak.threads) * double(iterations) * fma_flops_per_iteration(peak.isa, float64);
  return peak;
}

}  // namespace

FmaPeak measure_fma_peak(bool float64, int threads, long long iterations, int trials) {
  if (iterations <= 0) throw std::invalid_argument("measure_fma_peak: iterations must be positive");
  if (trials <= 0) throw std::invalid_argument("measure_fma_peak: trials must be positive");
  FmaPeak best;
  for (int trial = 0; trial < trials; ++trial) {
    const FmaPeak peak = fma_trial(float64, threads, iterations);
    if (trial == 0 || peak.gflops() > best.gflops()) best = peak;
  }
  return best;
}

}  // namespace softflow
