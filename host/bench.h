// Purpose: `softflow bench`: a throughput sweep of value-softmax gd / rk4 studies over sizes, runs and precisions on
// each available backend, with warm-up, repeats, median and spread, against the hardware's peak (measured FMA
// micro-kernel on the CPU, device properties on the GPU; bench_metrics.h, fma_peak.h). Results as JSON and a
// markdown table.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpu_backend.h"

namespace softflow {

struct BenchOptions {
  std::vector<std::string> backends = {"cpu", "cuda"};  // those not available are reported as skipped
  std::vector<int> sizes = {4, 8, 16, 32, 64, 128, 256};  // d = n
  std::vector<long long> runs = {4096, 65536, 1048576};
  std::vector<std::string> precisions = {"float32", "float64"};
  std::vector<std::string> integrators = {"gd", "rk4"};
  double seconds = 0.2;  // compute time aimed at per repeat (the steps are scaled to it)
  int repeats = 5;       // timed repeats after one warm-up
  int threads = 0;       // CPU threads (0: OpenMP's default)
  CpuKernel cpu_kernel = CpuKernel::simd;
  bool progress = true;  // a line per point on stderr
};

// Runs the sweep. Points that do not fit in memory are listed with the reason instead of timings.
nlohmann::json run_bench(const BenchOptions& options);

// The sweep as a markdown table (one row per point) with the machine's peaks above it.
std::string bench_markdown(const nlohmann::json& bench);

}  // namespace softflow
