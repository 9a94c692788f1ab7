// Purpose: runs a whole study on a backend and assembles the results JSON (docs/results.md): provenance, the
// normalized study, and per cell its parameters and per-checkpoint statistics.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpu_backend.h"
#include "cuda_kernel_set.h"
#include "shards.h"
#include "study.h"

namespace softflow {

constexpr int kResultsSchemaVersion = 1;

enum class BackendChoice { automatic, cpu, cuda };

struct EngineOptions {
  BackendChoice backend = BackendChoice::automatic;
  int threads = 0;          // 0 = OpenMP's default
  bool progress = true;     // progress lines on stderr
  std::string command_line; // echoed in the provenance
  CpuKernel cpu_kernel = CpuKernel::simd;
  CudaKernelSet cuda_kernels = CudaKernelSet::validated;  // which kernels the CUDA backend may choose
  Shard shard;              // the cells to run (shards.h; default: all)
};

// The backend a choice resolves to: auto takes CUDA when this build has it and a device is usable, else the CPU
// (with a one-line notice on stderr when announce); cuda without a usable device is an InputError.
struct Backend {
  bool cuda = false;
  std::string device;  // the GPU's or the CPU's name
};
Backend resolve_backend(BackendChoice choice, bool announce);

// The CPU's name for the provenance, from /proc/cpuinfo's text: the first processor's "model name", with its x86
// "cpu family" and "model" where listed ("AMD EPYC (family 25, model 17)"). Under a hypervisor the name can be as
// bare as "AMD EPYC"; the family and model tell apart cores of different FMA widths (family 25 model 17, Zen 4,
// runs AVX-512 on 256-bit units; Zen 5, family 26, on 512-bit ones), so that benchmark peaks from different hosts
// can be told apart. "unknown CPU" where no name is listed.
std::string describe_cpu(std::istream& cpuinfo);

// Runs every cell of options.shard (all by default; the results then hold only those cells, and the provenance
// names the shard). Throws InputError for requests that cannot be met (no CUDA device for --backend cuda, too
// little memory, a shard with no cells) and CudaError on CUDA failures.
nlohmann::json run_study(const Study& study, const EngineOptions& options);

// Host memory available to this process now (MemAvailable), in bytes.
double available_memory_bytes();
// Host bytes the results of the study's cells `cells` (all when empty) take while they are built and written.
double results_bytes(const Study& study, const std::vector<std::uint32_t>& cells = {});

// Checks that the results and each of the cells `cells` (all when empty) fit in host memory (the CPU backend's
// states and workspaces; the CUDA backend's host-side data); throws InputError naming the first that does not.
void check_memory(const Study& study, bool cuda, int threads, const std::vector<std::uint32_t>& cells = {});

// The study's cell indices `cells`, or all of them when it is empty.
std::vector<std::uint32_t> cells_or_all(const Study& study, const std::vector<std::uint32_t>& cells);

// The results without run-dependent fields (provenance): what must be identical across thread counts and reruns.
nlohmann::json reproducible_part(const nlohmann::json& results);

}  // namespace softflow
