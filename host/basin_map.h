// Purpose: the basin map of an attention study (science.md section 2, issue 6): per cell at one checkpoint, the
// share of non-diverged runs in each converged-direction class (global, local, neither, not converged) with its
// binomial standard error, beside the cell's grid parameters (typically init scale sigma_v x data set). It reads a
// results JSON, so any finished attention study can be mapped again (`softflow basin-map`), and `softflow run`
// prints it after the summary of an attention study.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace softflow {

// Whether the results hold direction classes (an attention study): some cell's last checkpoint has the
// direction_* observables.
bool has_direction_classes(const nlohmann::json& results);

// The basin map as a markdown table: one row per cell, columns cell, the grid axes (the study's list-valued
// parameters), t, runs (non-diverged runs with a class), then each class's share "p ± se", se = sqrt(p (1 - p) /
// runs). checkpoint indexes each cell's checkpoints, negative from the end (-1 = the last). Throws InputError
// when the results have no direction classes, a cell has no such checkpoint, or the JSON is not a results file.
std::string basin_map_table(const nlohmann::json& results, int checkpoint);

}  // namespace softflow
