// Purpose: the basin map table (see basin_map.h).
#include "basin_map.h"

#include <cmath>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "study.h"

namespace softflow {
namespace {

using nlohmann::json;

// The classes in column order: observable key and column title.
constexpr const char* kClasses[][2] = {{"direction_global", "global"},
                                       {"direction_local", "local"},
                                       {"direction_neither", "neither"},
                                       {"direction_not_converged", "not converged"}};

// The study's grid axes: the cell parameters it gave as lists, in the results' (alphabetical) order.
std::vector<std::string> grid_axes(const json& results) {
  std::vector<std::string> axes;
  const json& parameters = results.at("cells").at(0).at("parameters");
  for (const auto& item : results.at("study").items())
    if (item.value().is_array() && parameters.contains(item.key())) axes.push_back(item.key());
  return axes;
}

std::string text_of(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// A class's share and its binomial standard error; a share outside [0, 1] or a count below 1 (a results file
// edited or damaged, not one softflow wrote) is an error naming `where`, not a row of nonsense.
std::string share_text(const json& statistics, const std::string& where) {
  if (!statistics.is_object() || !statistics.contains("mean") || !statistics.contains("count")) return "-";
  const double p = statistics["mean"].get<double>(), count = statistics["count"].get<double>();
  if (!(p >= 0 && p <= 1))
    throw InputError(where + ".mean: a share must be in [0, 1] (got " + text_of(statistics["mean"]) + ")");
  if (!(count >= 1 && count < 1e300))
    throw InputError(where + ".count: must be a number of runs >= 1 (got " + text_of(statistics["count"]) + ")");
  char text[48];
  std::snprintf(text, sizeof text, "%.4f ± %.4f", p, std::sqrt(std::fmax(p * (1 - p), 0.0) / count));
  return text;
}

}  // namespace

bool has_direction_classes(const json& results) {
  if (!results.is_object() || !results.contains("cells") || !results["cells"].is_array()) return false;
  for (const json& cell : results["cells"]) {
    if (!cell.contains("checkpoints") || cell["checkpoints"].empty()) continue;
    const json& last = cell["checkpoints"].back();
    if (last.contains("observables") && last["observables"].contains("direction_global")) return true;
  }
  return false;
}

std::string basin_map_table(const json& results, int checkpoint) {
  if (!results.is_object() || !results.contains("cells") || !results.contains("study"))
    throw InputError("not a softflow results file (no \"study\" and \"cells\")");
  if (!has_direction_classes(results))
    throw InputError("the results have no direction classes: a basin map needs an attention study");
  try {
    const std::vector<std::string> axes = grid_axes(results);
    std::string out = "| cell |";
    for (const std::string& axis : axes) out += " " + axis + " |";
    out += " t | runs |";
    for (const auto& column : kClasses) out += std::string(" ") + column[1] + " |";
    out += "\n|---|";
    for (size_t i = 0; i < axes.size() + 2 + std::size(kClasses); ++i) out += "---|";
    out += "\n";
    const json& cells = results["cells"];
    for (size_t index = 0; index < cells.size(); ++index) {
      const json& cell = cells[index];
      const json& checkpoints = cell.at("checkpoints");
      const long long count = (long long)checkpoints.size(), at = checkpoint < 0 ? count + checkpoint : checkpoint;
      if (at < 0 || at >= count)
        throw InputError("cell " + text_of(cell.at("index")) + " has " + std::to_string(count) +
                         " checkpoints: no checkpoint " + std::to_string(checkpoint));
      const json& report = checkpoints[size_t(at)];
      const json& observables = report.at("observables");
      const json global = observables.value("direction_global", json());
      out += "| " + text_of(cell.at("index")) + " |";
      for (const std::string& axis : axes) out += " " + text_of(cell.at("parameters").value(axis, json())) + " |";
      char t[32];
      std::snprintf(t, sizeof t, "%.6g", report.at("t").get<double>());
      out += std::string(" ") + t + " | " + (global.is_object() ? text_of(global.at("count")) : "0") + " |";
      const std::string where =
          "cells[" + std::to_string(index) + "].checkpoints[" + std::to_string(at) + "].observables.";
      for (const auto& column : kClasses)
        out += " " + share_text(observables.value(column[0], json()), where + column[0]) + " |";
      out += "\n";
    }
    return out;
  } catch (const json::exception& e) {
    throw InputError(std::string("not a softflow results file (") + e.what() + ")");
  }
}

}  // namespace softflow
