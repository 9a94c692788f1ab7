// Purpose: running a study and assembling its results (see engine.h).
#include "engine.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cell_runner.h"
#include "cpu_backend.h"
#include "checkpoint_summary.h"
#include "cuda_check.h"
#ifdef SOFTFLOW_HAVE_CUDA
#include "cuda_backend.h"
#endif
#include "version.h"

namespace softflow {
namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  return describe_cpu(cpuinfo);
}

}  // namespace

std::string describe_cpu(std::istream& cpuinfo) {
  std::string line, name, family, model;
  while (std::getline(cpuinfo, line) && !line.empty()) {  // the first processor's block only: "key<tabs>: value"
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    const std::string value = start == std::string::npos ? std::string() : line.substr(start);
    if (key == "model name") name = value;
    else if (key == "cpu family") family = value;
    else if (key == "model") model = value;
  }
  if (name.empty()) return "unknown CPU";
  if (family.empty() || model.empty()) return name;
  return name + " (family " + family + ", model " + model + ")";
}

double available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024.0;
  const double pages = double(sysconf(_SC_AVPHYS_PAGES));
  return pages * double(sysconf(_SC_PAGESIZE));
}

std::vector<std::uint32_t> cells_or_all(const Study& study, const std::vector<std::uint32_t>& cells) {
  return cells.empty() ? shard_cells(study.cells.size(), Shard{}) : cells;  // the one shard of all cells
}

double results_bytes(const Study& study, const std::vector<std::uint32_t>& cells) {
  // Measured: about 4.5 bytes of memory per byte of JSON text while the results are built and written; the text
  // of one checkpoint is about 14 observables x (400 + 8 bins) bytes plus the winner counts.
  double bytes = 0;
  for (const std::uint32_t index : cells_or_all(study, cells)) {
    const CellParams& cell = study.cells[index];
    const double text = kSummarizedCount * (400.0 + 8.0 * study.histogram_bins) + 10.0 * cell.shape.n + 800.0;
    bytes += 4.5 * text * double(cell_checkpoints(study, cell).times.size());
  }
  return bytes;
}

void check_memory(const Study& study, bool cuda, int threads, const std::vector<std::uint32_t>& cells) {
  const double available = available_memory_bytes();
  const std::vector<std::uint32_t> checked = cells_or_all(study, cells);
  const double results = results_bytes(study, checked);
  for (const std::uint32_t i : checked) {
    const CellParams& cell = study.cells[i];
    const double real_bytes = cell.precision == Precision::float32 ? 4.0 : 8.0;
    // The CUDA backend holds per-run loss data on the host at most (states stay on the device, or stream in waves).
    const double cell_bytes = cuda ? (cell.data_shared() ? 0.0 : double(study.runs) * real_bytes * cell.shape.data_size())
                                   : cpu_cell_bytes(study, cell, threads);
    const double needed = results + cell_bytes;
    if (needed > 0.8 * available) {
      char message[320];
      std::snprintf(message, sizeof message,
                    "too little memory: cell %u needs %.2f GiB for %lld runs (%.2f GiB of it for the results of %zu "
                    "cells), %.2f GiB is available; lower runs, cells or checkpoints",
                    i, needed / 1073741824.0, study.runs, results / 1073741824.0, checked.size(),
                    available / 1073741824.0);
      throw InputError(message);
    }
  }
}

Backend resolve_backend(BackendChoice choice, bool announce) {
  if (choice == BackendChoice::cpu) return {false, cpu_model_name()};
#ifdef SOFTFLOW_HAVE_CUDA
  if (cuda_device_count() > 0) return {true, cuda_device_info().name};
  if (choice == BackendChoice::cuda) throw InputError("--backend cuda: no usable CUDA device (driver or GPU missing)");
  if (announce) std::fprintf(stderr, "notice: no usable CUDA device; running on the CPU backend\n");
#else
  if (choice == BackendChoice::cuda)
    throw InputError("--backend cuda: this build has no CUDA backend (nvcc was not found at configure time)");
  if (announce) std::fprintf(stderr, "notice: this build has no CUDA backend; running on the CPU backend\n");
#endif
  return {false, cpu_model_name()};
}

nlohmann::json run_study(const Study& study, const EngineOptions& options) {
  Backend backend = resolve_backend(options.backend, options.progress);
  bool attention = false;
  for (const auto& cell : study.cells) attention = attention || cell.shape.model == ModelKind::attention;
  // The attention family's GPU path (kernels/cuda_backend.cu: the thread-per-run kernels and the att-SVMs per
  // thread) is built but has not run on a device yet; this gate lifts once CudaBackendTest.
  // AttentionStatesAndStatisticsMatchTheCpu has passed on a GPU.
  if (backend.cuda && attention) {
    if (options.backend == BackendChoice::cuda)
      throw InputError("--backend cuda: the attention model runs on the CPU backend only in this version");
    if (options.progress) std::fprintf(stderr, "notice: the attention model runs on the CPU backend only; using it\n");
    backend = {false, cpu_model_name()};
  }
  if (options.threads > 0) {
#ifdef _OPENMP
    omp_set_num_threads(options.threads);
#endif
  }
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  const std::vector<std::uint32_t> shard = shard_cells(study.cells.size(), options.shard);
  check_memory(study, backend.cuda, threads, shard);
  if (backend.cuda) check_cuda_memory(study, shard);

  long long total_units = 0;
  for (const std::uint32_t index : shard)
    total_units += study.runs * (long long)cell_checkpoints(study, study.cells[index]).times.size();
  Progress progress(total_units, options.progress);
  const std::string started_at = utc_now();
  const auto start = std::chrono::steady_clock::now();
  nlohmann::json cells = nlohmann::json::array();
  long long trajectory_steps = 0;
  double kernel_seconds = 0;
  nlohmann::json kernels = nlohmann::json::array();
  for (const std::uint32_t index : shard) {
    CellOutcome outcome = backend.cuda ? run_cell_on_cuda(study, index, progress, options.cuda_kernels)
                                       : run_cell_on_cpu(study, index, progress, options.cpu_kernel);
    kernels.push_back(outcome.kernel);
    trajectory_steps += outcome.trajectory_steps;
    kernel_seconds += outcome.kernel_seconds;
    cells.push_back(std::move(outcome.json));
  }
  progress.finish();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  nlohmann::json results;
  results["schema_version"] = kResultsSchemaVersion;
  results["provenance"] = {{"softflow_version", kSoftflowVersion},
                           {"git_commit", kSoftflowGitCommit},
                           {"backend", backend.cuda ? "cuda" : "cpu"},
                           {"device", backend.device},
                           {"threads", threads},
                           {"started_at", started_at},
                           {"command_line", options.command_line},
                           {"wall_seconds", wall},
                           {"trajectory_steps", trajectory_steps},
                           {"trajectory_steps_per_second", wall > 0 ? double(trajectory_steps) / wall : 0.0}};
  if (options.shard.count > 1)
    results["provenance"]["shard"] = {{"index", options.shard.index}, {"count", options.shard.count}};
  if (backend.cuda) {
    results["provenance"]["kernel_seconds"] = kernel_seconds;
    results["provenance"]["cuda_kernels"] = kernels;
    results["provenance"]["cuda_kernel_set"] = cuda_kernel_set_name(options.cuda_kernels);
  } else {
    results["provenance"]["cpu_kernels"] = kernels;
  }
  results["study"] = study.normalized;
  results["cells"] = std::move(cells);
  return results;
}

nlohmann::json reproducible_part(const nlohmann::json& results) {
  nlohmann::json copy = results;
  copy.erase("provenance");
  return copy;
}

}  // namespace softflow
