// Purpose: the `softflow bench` sweep (see bench.h).
#include "bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "bench_metrics.h"
#include "cell_runner.h"
#include "cuda_check.h"
#include "engine.h"
#include "fma_peak.h"
#include "study.h"
#include "version.h"
#ifdef SOFTFLOW_HAVE_CUDA
#include "cuda_backend.h"
#endif

namespace softflow {
namespace {

// An exact binary step keeps checkpoint times exact; small enough that runs stay far from polarization (and
// denormal softmax entries) over the horizons timed.
constexpr double kBenchStep = 1.0 / 1024;
constexpr long long kCalibrationSteps = 16;
constexpr long long kMaxSteps = 100000000;

Study bench_study(int size, long long runs, const std::string& precision, const std::string& integrator,
                  long long steps) {
  const nlohmann::json raw = {{"name", "bench"}, {"loss", "logistic"}, {"d", size}, {"n", size},
                              {"precision", precision}, {"integrator", integrator}, {"step", kBenchStep},
                              {"sigma_a", 0.1}, {"runs", runs},
                              {"checkpoints", {{"schedule", "list"}, {"times", {0.0, kBenchStep * double(steps)}}}}};
  return parse_study(raw, "bench point");
}

// Seconds the steps of the study's only cell took, from its first checkpoint (t = 0, no steps) to its second.
// CPU: the wall time of the second checkpoint's advance pass, which advances every run before any is observed.
// CUDA: the kernel time of the second checkpoint (the steps and an observation) less that of the first (an
// observation only), so the observations' cost, which does not depend on the steps, is left out; a run whose
// difference is not positive (the first observation was slow) is repeated, up to 5 times; then the result is
// <= 0: the steps' time is lost in the noise. Initial draws, statistics and JSON are never timed.
// kernel (if not null): set to the kernel that advanced the cell (CellOutcome::kernel).
double time_steps(const Study& study, bool cuda, CpuKernel cpu_kernel, std::string* kernel = nullptr) {
  Progress silent(1, false);
  double seconds = 0;
  for (int attempt = 0; attempt < 5 && !(seconds > 0); ++attempt) {
    const CellOutcome outcome =
        cuda ? run_cell_on_cuda(study, 0, silent) : run_cell_on_cpu(study, 0, silent, cpu_kernel);
    seconds = cuda ? outcome.checkpoint_seconds.at(1) - outcome.checkpoint_seconds.at(0)
                   : outcome.advance_seconds.at(1);
    if (kernel) *kernel = outcome.kernel;
  }
  return seconds;
}

// CUDA: whether the cell's states take at most 40 % of the free device memory, so they stay resident (a bench
// point that streams waves through the host would time the host's memory, not the kernels).
bool fits_one_wave(const Study& study) {
#ifdef SOFTFLOW_HAVE_CUDA
  const CellParams& cell = study.cells[0];
  const double real_bytes = cell.precision == Precision::float32 ? 4 : 8;
  return double(study.runs) * cell.shape.state_size() * real_bytes <= 0.4 * cuda_device_info().free_bytes;
#else
  (void)study;
  return false;
#endif
}

double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t m = values.size() / 2;
  return values.size() % 2 ? values[m] : 0.5 * (values[m - 1] + values[m]);
}

std::string utc_date() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

// The machine part of the report: backends found, their names and peaks in GFLOP/s per precision.
nlohmann::json machine_report(const BenchOptions& options, int threads) {
  nlohmann::json machine = {{"backends", nlohmann::json::object()}};
  for (const std::string& backend : options.backends) {
    if (backend == "cpu") {
      nlohmann::json cpu = {{"device", resolve_backend(BackendChoice::cpu, false).device}, {"threads", threads}};
      std::string isa;
      for (const bool float64 : {false, true}) {
        const FmaPeak peak = measure_fma_peak(float64, threads);
        cpu["peak_gflops"][float64 ? "float64" : "float32"] = peak.gflops();
        isa = peak.isa;
      }
      cpu["peak_source"] = "measured: FMA micro-kernel (" + isa + ") on every thread, best of 5 trials";
      machine["backends"]["cpu"] = cpu;
    } else if (backend == "cuda") {
#ifdef SOFTFLOW_HAVE_CUDA
      if (cuda_device_count() > 0) {
        const CudaDeviceInfo info = cuda_device_info();
        machine["backends"]["cuda"] = {
            {"device", info.name},
            {"multiprocessors", info.multiprocessors},
            {"clock_khz", info.clock_khz},
            {"peak_gflops",
             {{"float32", gpu_peak_gflops(info.multiprocessors, info.clock_khz, false)},
              {"float64", gpu_peak_gflops(info.multiprocessors, info.clock_khz, true)}}},
            {"peak_source", "device properties: SMs x (128 FP32 | 64 FP64) lanes x 2 x clock"}};
        continue;
      }
#endif
      machine["skipped"]["cuda"] = "no usable CUDA device in this build or machine";
    }
  }
  return machine;
}

}  // namespace

nlohmann::json run_bench(const BenchOptions& options) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  const int threads = omp_get_max_threads();
  if (options.repeats < 1) throw InputError("bench: --repeats must be at least 1");
  if (!(options.seconds > 0)) throw InputError("bench: --seconds must be positive");
  nlohmann::json bench = {{"softflow_version", kSoftflowVersion}, {"git_commit", kSoftflowGitCommit},
                          {"date", utc_date()}, {"step", kBenchStep}, {"repeats", options.repeats},
                          {"seconds_per_repeat_aimed", options.seconds},
                          {"useful_flops_per_step", {{"gd", "6 d n"}, {"rk4", "34 d n"}}},
                          {"machine", machine_report(options, threads)}};
  nlohmann::json points = nlohmann::json::array();
  for (const auto& [backend, device] : bench["machine"]["backends"].items()) {
    const bool cuda = backend == "cuda";
    for (const std::string& integrator : options.integrators)
      for (const std::string& precision : options.precisions)
        for (const int size : options.sizes)
          for (const long long runs : options.runs) {
            Study study = bench_study(size, runs, precision, integrator, kCalibrationSteps);
            nlohmann::json point = {
                {"backend", backend},     {"d", size},
                {"n", size},              {"runs", runs},
                {"precision", precision}, {"integrator", integrator},
                {"kernel", cuda ? "cuda" : cpu_kernel_name(options.cpu_kernel, study.cells[0])}};  // timed: below
            try {
              check_memory(study, cuda, threads);
              if (cuda) check_cuda_memory(study);
              if (cuda && !fits_one_wave(study)) throw InputError("the states would stream in waves through the host");
            } catch (const InputError& e) {
              point["skipped"] = e.what();
              points.push_back(point);
              continue;
            }
            // Calibration (also the warm-up): grow the steps until they take a tenth of the aimed time (on CUDA,
            // so the observations, timed apart, are small beside them), then scale to the aimed time.
            long long probe_steps = kCalibrationSteps;
            std::string kernel;
            double probe_seconds = time_steps(study, cuda, options.cpu_kernel, &kernel);
            point["kernel"] = kernel;
            while (!(probe_seconds >= 0.1 * options.seconds) && probe_steps < kMaxSteps / 8) {
              probe_steps *= 8;
              study = bench_study(size, runs, precision, integrator, probe_steps);
              probe_seconds = time_steps(study, cuda, options.cpu_kernel);
            }
            const long long steps =
                probe_seconds > 0 ? std::clamp<long long>(
                                        std::llround(std::min(double(kMaxSteps),
                                                              double(probe_steps) * options.seconds / probe_seconds)),
                                        kCalibrationSteps, kMaxSteps)
                                  : kMaxSteps;
            study = bench_study(size, runs, precision, integrator, steps);
            std::vector<double> seconds;
            for (int r = 0; r < options.repeats; ++r) seconds.push_back(time_steps(study, cuda, options.cpu_kernel));
            if (*std::min_element(seconds.begin(), seconds.end()) <= 0) {
              point["skipped"] = "the steps' time was lost in the observations' timing noise; raise --seconds";
              points.push_back(point);
              continue;
            }
            const double median = median_of(seconds);
            const double trajectory_steps = double(runs) * double(steps);
            const double gflops =
                useful_flops_per_step(study.cells[0].method, size, size) * trajectory_steps / median / 1e9;
            const double peak = device["peak_gflops"][precision].get<double>();
            point.update({{"steps", steps},
                          {"seconds", seconds},
                          {"median_seconds", median},
                          {"min_seconds", *std::min_element(seconds.begin(), seconds.end())},
                          {"max_seconds", *std::max_element(seconds.begin(), seconds.end())},
                          {"trajectory_steps_per_second", trajectory_steps / median},
                          {"useful_gflops_per_second", gflops},
                          {"peak_gflops", peak},
                          {"fraction_of_peak", gflops / peak}});
            if (options.progress)
              std::fprintf(stderr, "bench: %s d = n = %d, %lld runs, %s %s: %.3g trajectory-steps/s, %.1f %% of peak\n",
                           backend.c_str(), size, runs, precision.c_str(), integrator.c_str(),
                           trajectory_steps / median, 100 * gflops / peak);
            points.push_back(point);
          }
  }
  bench["points"] = points;
  return bench;
}

std::string bench_markdown(const nlohmann::json& bench) {
  std::string text;
  char line[512];
  for (const auto& [backend, device] : bench["machine"]["backends"].items()) {
    std::snprintf(line, sizeof line, "%s: %s; peak %.0f GFLOP/s float32, %.0f float64 (%s)\n", backend.c_str(),
                  device["device"].get<std::string>().c_str(), device["peak_gflops"]["float32"].get<double>(),
                  device["peak_gflops"]["float64"].get<double>(), device["peak_source"].get<std::string>().c_str());
    text += line;
  }
  text += "\n| backend | kernel | d = n | runs | precision | integrator | steps | median s (min - max) | "
          "trajectory-steps/s | useful GFLOP/s | % of peak |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& point : bench["points"]) {
    if (point.contains("skipped")) {
      std::snprintf(line, sizeof line, "| %s | %s | %d | %lld | %s | %s | skipped: %s | | | | |\n",
                    point["backend"].get<std::string>().c_str(), point["kernel"].get<std::string>().c_str(),
                    point["d"].get<int>(),
                    point["runs"].get<long long>(), point["precision"].get<std::string>().c_str(),
                    point["integrator"].get<std::string>().c_str(), point["skipped"].get<std::string>().c_str());
    } else {
      std::snprintf(line, sizeof line,
                    "| %s | %s | %d | %lld | %s | %s | %lld | %.4f (%.4f - %.4f) | %.3g | %.1f | %.1f |\n",
                    point["backend"].get<std::string>().c_str(), point["kernel"].get<std::string>().c_str(),
                    point["d"].get<int>(),
                    point["runs"].get<long long>(), point["precision"].get<std::string>().c_str(),
                    point["integrator"].get<std::string>().c_str(), point["steps"].get<long long>(),
                    point["median_seconds"].get<double>(), point["min_seconds"].get<double>(),
                    point["max_seconds"].get<double>(), point["trajectory_steps_per_second"].get<double>(),
                    point["useful_gflops_per_second"].get<double>(), 100 * point["fraction_of_peak"].get<double>());
    }
    text += line;
  }
  return text;
}

}  // namespace softflow
