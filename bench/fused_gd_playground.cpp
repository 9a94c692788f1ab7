// Purpose: kernel playground for the value-softmax gd, rk4 and dopri5 steps (in the manner of llm.c's dev/cuda): every variant
// is first validated against the CPU reference on a small study, then timed on the throughput target's shape.
// Variants (gd):
//   generic     the thread-per-run kernel on the shared math (kernels/cuda_backend.cu), state in global memory
//   block       one thread block per run (kernels/block_per_run.cuh), state in global memory, any size
//   vK lanes=T  the fused register kernel (kernels/fused_gd.cuh) with T lanes of a warp per run, T in
//               fused_gd_lane_choices(d, n), and loop structure K: 0 per-run loop, 1 warp-uniform loop,
//               2 the logistic loss's own kernel (kernels/fused_gd_logistic.cuh: unnormalised softmax, u = g V^T y,
//               one group sum per scalar, checks through the pre-filter)
// Variants (--integrator rk4):
//   generic     the thread-per-run kernel
//   rk4 lanes=T the fused rk4 kernel (kernels/fused_rk4.cuh), T in fused_rk4_lane_choices(d, n)
//   block rk4   one thread block per run
// Variants (--integrator dopri5: the horizon is t = 0.1 --steps, as for gd; each run takes its own steps):
//   generic       the thread-per-run kernel
//   block dopri5  one thread block per run (kernels/block_dopri5.cuh)
//   dopri5 lanes=T  the fused dopri5 kernel (kernels/fused_dopri5.cuh), T in fused_dopri5_lane_choices(d, n)
// Variants (--loss regression: gd, one data set of --samples rows shared by all runs):
//   generic, block as for gd
//   cublas      the X products across runs by cuBLAS between block kernels (kernels/shared_regression.cuh)
// Variants (--model attention: --trainable p | W | vp, --inputs N x --tokens T Gaussian tokens of dimension --size,
// one data set shared by all runs; --integrator gd or normalized_gd):
//   generic     the thread-per-run kernel
//   cublas      the data products across runs by cuBLAS (kernels/shared_attention.cuh)
// Usage (on a GPU machine, after scripts/build or scripts/device-check):
//   build-device/bench/fused_gd_playground [--size 16] [--precision float32] [--integrator gd] [--runs 1048576]
//                                          [--steps 10000] [--loss logistic | regression [--samples M]]
//   (--integrator gd | rk4 | dopri5 | normalized_gd)
// (--size: d = n, any size; the fused variants exist for 8, 16 and 32 only)
// Prints one line per variant: validation error, kernel seconds, trajectory-steps/s (dopri5: accepted and rejected
// steps), useful GFLOP/s (6 d n per step for gd, 34 d n for rk4, as `softflow bench` counts; regression's 4 m d a
// step on X and dopri5 are not counted) and the fraction of the FP32 (or FP64) peak from the device's properties. A variant that fails its validation (FAIL) or throws (error: ...) makes the exit code 1.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

#include "cpu_backend.h"
#include "cuda_cell_input.h"
#include "bench_metrics.h"
#include "fused_dopri5.cuh"
#include "fused_gd.cuh"
#include "fused_rk4.cuh"

namespace softflow {
namespace {

// One kernel choice: the CUDA input's fields (cuda_backend.h) and the steps it is timed over.
struct Variant {
  std::string integrator;  // gd or rk4
  int fused_lanes = -1;    // fused gd lanes per run (-1: not the fused gd kernel)
  int fused_variant = -1;  // fused gd loop variant
  int block_gd = 0;        // block-per-run gd kernel
  int rk4_lanes = 0;       // fused rk4 lanes per run (0: not the fused rk4 kernel)
  long long steps = 0;
  int block_rk4 = 0;       // block-per-run rk4 kernel
  int cublas = 0;          // shared regression data through cuBLAS
  int block_dopri5 = 0;    // block-per-run dopri5 kernel
  int cublas_attention = 0;  // attention with shared data through cuBLAS
  int dopri5_lanes = 0;      // fused dopri5 lanes per run (0: not the fused dopri5 kernel)

  std::string name() const {
    if (cublas || cublas_attention) return "cublas";
    if (block_dopri5) return "block dopri5";
    if (dopri5_lanes > 0) return "dopri5 lanes=" + std::to_string(dopri5_lanes);
    if (block_rk4) return "block rk4";
    if (rk4_lanes > 0) return "rk4 lanes=" + std::to_string(rk4_lanes);
    if (fused_lanes >= 0) return "v" + std::to_string(fused_variant) + " lanes=" + std::to_string(fused_lanes);
    return block_gd ? "block" : "generic";
  }
};

// The model and loss: for regression, the rows of the shared data set; for attention, its trainable set and the
// shape of its shared data set.
struct LossChoice {
  std::string loss = "logistic";
  int samples = 0;
  std::string model = "value_softmax";
  std::string trainable = "p";
  int inputs = 6, tokens = 8;
};

Study playground_study(int size, const std::string& precision, const std::string& integrator, long long runs,
                       long long steps, const LossChoice& loss) {
  // Regression: a smaller step (the loss grows with the rows) and one data set for all runs.
  const double step = loss.loss == "regression" ? 0.01 : 0.1;
  nlohmann::json raw = {{"loss", loss.loss}, {"d", size}, {"n", size}, {"precision", precision},
                        {"integrator", integrator}, {"step", step}, {"sigma_a", 0.1}, {"runs", runs},
                        {"checkpoints", {{"schedule", "list"}, {"times", {0.0, step * double(steps)}}}}};
  if (loss.loss == "regression") {
    raw["regression_samples"] = loss.samples;
    raw["target"] = "shared";
  }
  if (loss.model == "attention") {
    raw.erase("n");
    raw.erase("sigma_a");
    raw.update({{"model", "attention"}, {"trainable", loss.trainable}, {"dataset", "gaussian"}, {"target", "shared"},
                {"inputs", loss.inputs}, {"tokens", loss.tokens}, {"sigma_v", 1.0}});
  }
  return parse_study(raw, "playground");
}

// The CUDA input of a study's cell with a variant's choices.
template <class Real>
CudaCellInput<Real> variant_input(const Study& study, const CellData<Real>& data, const Variant& v) {
  CudaCellInput<Real> input = make_cuda_cell_input(study, 0, data);
  input.fused_lanes = v.fused_lanes;
  input.fused_variant = v.fused_variant;
  input.block_gd = v.block_gd;
  input.fused_rk4_lanes = v.rk4_lanes;
  input.block_rk4 = v.block_rk4;
  input.cublas_regression = v.cublas;
  input.block_dopri5 = v.block_dopri5;
  input.cublas_attention = v.cublas_attention;
  input.fused_dopri5_lanes = v.dopri5_lanes;
  return input;
}

// Largest relative state difference between the variant and the CPU after the small validation study.
template <class Real>
double validation_error(int size, const std::string& precision, const Variant& v, const LossChoice& loss) {
  // Validation size: about 2^22 state entries in all, so the CPU reference stays quick at large sizes.
  const long long runs = std::clamp((1LL << 22) / (1LL * size * size), 8LL, 512LL);
  const Study study = playground_study(size, precision, v.integrator, runs, 200, loss);
  CpuCellSimulation<Real> cpu(study, study.cells[0], 0);
  const CellData<Real> data(study.cells[0], study.seed, 0, study.runs);
  CudaCellSimulation<Real> cuda(variant_input(study, data, v));
  CheckpointObservations observations;
  CheckpointSummary summary;
  for (size_t c = 0; c < cpu.checkpoint_count(); ++c) {
    cpu.advance_and_observe(c, observations, nullptr);
    cuda.advance_and_summarize(c, summary);
  }
  std::vector<Real> states;
  std::vector<RunRecord> records;
  cuda.download(states, records);
  double worst = 0;
  const int p = study.cells[0].shape.state_size();
  for (long long run = 0; run < study.runs; ++run)
    for (int i = 0; i < p; ++i) {
      const double x = double(states[size_t(run * p + i)]), y = double(cpu.state(run)[i]);
      worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
    }
  return worst;
}

// Validates and times one variant and prints its row; returns false if its validation failed.
template <class Real>
bool run_variant(int size, const std::string& precision, long long runs, const Variant& v, const LossChoice& loss,
                 double peak) {
  const double error = validation_error<Real>(size, precision, v, loss);
  // dopri5: the step control may decide a step differently on rounding-level differences (rtol 1e-6).
  const bool adaptive = v.integrator == "dopri5";
  const double tolerance = sizeof(Real) == 8 ? (adaptive ? 1e-6 : 1e-10) : (adaptive ? 1e-3 : 1e-4);
  const Study study = playground_study(size, precision, v.integrator, runs, v.steps, loss);
  const CellData<Real> data(study.cells[0], study.seed, 0, study.runs);
  CudaCellSimulation<Real> cuda(variant_input(study, data, v));
  CheckpointSummary summary;
  for (size_t c = 0; c < cuda.checkpoint_count(); ++c) cuda.advance_and_summarize(c, summary);
  const double seconds = cuda.kernel_seconds();
  const double trajectory_steps = adaptive ? double(cuda.trajectory_steps()) : double(runs) * double(v.steps);
  const double gflops = useful_flops_per_step(study.cells[0].method, size, size) * trajectory_steps / seconds / 1e9;
  std::printf("| %-12s | %.2e %-4s | %9.4f | %.3e | %9.1f | %5.1f%% |\n", v.name().c_str(), error,
              error <= tolerance ? "ok" : "FAIL", seconds, trajectory_steps / seconds, gflops, 100 * gflops / peak);
  return error <= tolerance;
}

}  // namespace
}  // namespace softflow

int main(int argc, char** argv) {
  CLI::App app{"value-softmax step kernel playground (gd, rk4, dopri5)"};
  int size = 16;
  std::string precision = "float32", integrator = "gd";
  softflow::LossChoice loss;
  long long runs = 1 << 20, steps = 10000;
  app.add_option("--size", size, "d = n (fused variants: 8, 16 or 32; rk4: 8 or 16)")->check(CLI::Range(2, 4096));
  app.add_option("--precision", precision)->check(CLI::IsMember({"float32", "float64"}));
  app.add_option("--integrator", integrator)->check(CLI::IsMember({"gd", "rk4", "dopri5", "normalized_gd"}));
  app.add_option("--model", loss.model, "value_softmax, or attention (gd / normalized_gd, one shared data set)")
      ->check(CLI::IsMember({"value_softmax", "attention"}));
  app.add_option("--trainable", loss.trainable, "attention: p, W or vp")->check(CLI::IsMember({"p", "W", "vp"}));
  app.add_option("--inputs", loss.inputs, "attention: inputs N of the data set")->check(CLI::Range(1, 4096));
  app.add_option("--tokens", loss.tokens, "attention: tokens T per input")->check(CLI::Range(2, 4096));
  app.add_option("--loss", loss.loss, "logistic, or regression (gd, one shared data set)")
      ->check(CLI::IsMember({"logistic", "regression"}));
  app.add_option("--samples", loss.samples, "regression: rows of the shared data set (default: d)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--runs", runs, "default: 2^20, at most 2^28 / (d n) (1 GiB of float32 states)");
  app.add_option("--steps", steps, "default: 10^4 (gd), 2500 (rk4); dopri5: the horizon t = 0.1 steps");
  CLI11_PARSE(app, argc, argv);
  if (loss.loss == "regression" && integrator != "gd") {
    std::fprintf(stderr, "fused_gd_playground: --loss regression times gd only\n");
    return 2;
  }
  const bool attention = loss.model == "attention";
  if (attention ? (integrator != "gd" && integrator != "normalized_gd") : integrator == "normalized_gd") {
    std::fprintf(stderr, "fused_gd_playground: normalized_gd is for --model attention, which times gd or it only\n");
    return 2;
  }
  if (loss.samples == 0) loss.samples = size;
  if (app.count("--runs") == 0) runs = std::min(runs, std::max(1LL, (1LL << 28) / (1LL * size * size)));
  if (app.count("--steps") == 0 && integrator == "rk4") steps = 2500;
  int device = 0, sms = 0, clock_khz = 0;
  cudaDeviceProp properties;
  cudaGetDeviceProperties(&properties, device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device);
  // Hopper: 128 FP32 lanes and 64 FP64 lanes per SM, 2 FLOPs per FMA.
  const double peak = sms * (precision == "float32" ? 128.0 : 64.0) * 2.0 * clock_khz * 1e3 / 1e9;
  const long long generic_steps = std::max(1LL, steps / 100), block_steps = std::max(1LL, steps / 10);
  std::string shape = "d = n = " + std::to_string(size) + ", " + loss.loss + " loss";
  if (loss.loss == "regression") shape += " (" + std::to_string(loss.samples) + " shared rows)";
  if (attention)
    shape = "attention, trainable " + loss.trainable + ", one shared data set of " + std::to_string(loss.inputs) +
            " inputs x " + std::to_string(loss.tokens) + " tokens, d = " + std::to_string(size) + ", " + loss.loss +
            " loss";
  std::printf("%s, %d SMs at %.0f MHz: %s peak %.0f GFLOP/s; %s, %lld runs x %lld %s steps "
              "(generic: %lld, block: %lld)\n\n",
              properties.name, sms, clock_khz / 1e3, precision.c_str(), peak, shape.c_str(), runs, steps,
              integrator.c_str(), generic_steps, block_steps);
  std::printf("| variant      | validation    | kernel s  | steps/s   | GFLOP/s   | peak   |\n");
  std::printf("|--------------|---------------|-----------|-----------|-----------|--------|\n");
  using softflow::Variant;
  std::vector<Variant> variants = {{integrator, -1, -1, 0, 0, generic_steps}};
  if (loss.model == "attention") {
    Variant cublas{integrator, -1, -1, 0, 0, block_steps};
    cublas.cublas_attention = 1;
    variants.push_back(cublas);
  } else if (loss.loss == "regression") {
    variants.push_back({integrator, -1, -1, 1, 0, block_steps});
    variants.push_back({integrator, -1, -1, 0, 0, block_steps, 0, 1});
  } else if (integrator == "gd") {
    variants.push_back({integrator, -1, -1, 1, 0, block_steps});
    for (int lanes : softflow::fused_gd_lane_choices(size, size))
      for (int loop : {0, 1, 2}) variants.push_back({integrator, lanes, loop, 0, 0, steps});
  } else if (integrator == "dopri5") {
    Variant block{integrator, -1, -1, 0, 0, block_steps};
    block.block_dopri5 = 1;
    variants.push_back(block);
    for (int lanes : softflow::fused_dopri5_lane_choices(size, size)) {
      Variant fused{integrator, -1, -1, 0, 0, steps};
      fused.dopri5_lanes = lanes;
      variants.push_back(fused);
    }
  } else {
    for (int lanes : softflow::fused_rk4_lane_choices(size, size))
      variants.push_back({integrator, -1, -1, 0, lanes, steps});
    variants.push_back({integrator, -1, -1, 0, 0, block_steps, 1});
  }
  int failures = 0;
  for (const Variant& v : variants) {
    try {
      const bool valid = precision == "float32"
                             ? softflow::run_variant<float>(size, precision, runs, v, loss, peak)
                             : softflow::run_variant<double>(size, precision, runs, v, loss, peak);
      failures += valid ? 0 : 1;
    } catch (const std::exception& e) {  // one variant's failure (a CUDA error, say) does not hide the others
      std::printf("| %-12s | error: %s |\n", v.name().c_str(), e.what());
      ++failures;
    }
  }
  return failures > 0 ? 1 : 0;
}
