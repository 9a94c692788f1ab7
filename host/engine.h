// Purpose: runs a whole study on a backend and assembles the results JSON (docs/results.md): provenance, the
// normalized study, and per cell its parameters and per-checkpoint statistics.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "study.h"

namespace softflow {

constexpr int kResultsSchemaVersion = 1;

enum class BackendChoice { automatic, cpu, cuda };

struct EngineOptions {
  BackendChoice backend = BackendChoice::automatic;
  int threads = 0;          // 0 = OpenMP's default
  bool progress = true;     // progress lines on stderr
  std::string command_line; // echoed in the provenance
};

// Runs every cell. Throws InputError for requests that cannot be met (unknown backend, too little memory).
nlohmann::json run_study(const Study& study, const EngineOptions& options);

// Checks that every cell fits in memory on the CPU backend; throws InputError naming the first cell that does not.
void check_memory(const Study& study);

// The results without run-dependent fields (provenance): what must be identical across thread counts and reruns.
nlohmann::json reproducible_part(const nlohmann::json& results);

}  // namespace softflow
