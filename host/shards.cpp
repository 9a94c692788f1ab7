// Purpose: shards of a study's cells and the merge of their results (see shards.h).
#include "shards.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>
#include <string>

#include "engine.h"
#include "study.h"

namespace softflow {
namespace {

// A non-negative decimal integer that fits an int, or -1.
int parse_count(const std::string& text) {
  if (text.empty() || text.size() > 9) return -1;
  for (char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
  return std::stoi(text);
}

// A whole number >= 0 (an index, a count); a statistic: a number, or null where nothing was finite.
bool is_whole(const nlohmann::json& x) { return x.is_number_integer() && x.get<long long>() >= 0; }
bool is_number_or_null(const nlohmann::json& x) { return x.is_number() || x.is_null(); }

// The first key (in sorted order) whose values differ between two study objects; "" if they are equal.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b) {
  std::set<std::string> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
  for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
  for (const std::string& key : keys)
    if (!a.contains(key) || !b.contains(key) || a[key] != b[key]) return key;
  return "";
}

// Checks that `part` has the shape of a results file (schema, provenance, study with cell_count, cells with
// indices); throws InputError naming `name`.
void check_results_shape(const nlohmann::json& part, const std::string& name) {
  auto refuse = [&](const std::string& why) { throw InputError(name + ": not a softflow results file (" + why + ")"); };
  if (!part.is_object()) refuse("not a JSON object");
  if (!part.contains("schema_version") || part["schema_version"] != kResultsSchemaVersion)
    refuse("schema_version is not " + std::to_string(kResultsSchemaVersion));
  if (!part.contains("provenance") || !part["provenance"].is_object()) refuse("no provenance object");
  const nlohmann::json& provenance = part["provenance"];
  for (const char* key : {"softflow_version", "git_commit", "backend", "device", "started_at"})
    if (!provenance.contains(key) || !provenance[key].is_string()) refuse(std::string("provenance.") + key + " is not text");
  if (!provenance.contains("wall_seconds") || !provenance["wall_seconds"].is_number() ||
      !(provenance["wall_seconds"].get<double>() >= 0 && provenance["wall_seconds"].get<double>() < 1e15))
    refuse("provenance.wall_seconds is not a number of seconds");
  if (!provenance.contains("trajectory_steps") || !provenance["trajectory_steps"].is_number_integer() ||
      provenance["trajectory_steps"].get<long long>() < 0 ||
      provenance["trajectory_steps"].get<long long>() > (1LL << 60))
    refuse("provenance.trajectory_steps is not a count of steps");
  if (!part.contains("study") || !part["study"].is_object() || !part["study"].contains("cell_count") ||
      !is_whole(part["study"]["cell_count"]))
    refuse("no study with a cell_count");
  if (!part.contains("cells") || !part["cells"].is_array()) refuse("no cells array");
  for (const auto& cell : part["cells"])
    if (!cell.is_object() || !cell.contains("index") || !is_whole(cell["index"])) refuse("a cell without an index");
}

// Checks that `cell` has the form run_study gives a cell (docs/results.md "cells[]"): its header, and per checkpoint
// t, step, counts, fractions, winner_counts and each observable's statistics with the right types, so that the
// merged file is one every reader of results files takes. Throws InputError naming `name` and the cell.
void check_cell_shape(const nlohmann::json& cell, const std::string& name) {
  const std::string where = name + ": cell " + cell["index"].dump();
  auto refuse = [&](const std::string& what) { throw InputError(where + ": " + what + " is not as softflow writes it"); };
  if (!cell.contains("parameters") || !cell["parameters"].is_object()) refuse("parameters");
  if (!cell.contains("state_size") || !is_whole(cell["state_size"])) refuse("state_size");
  if (!cell.contains("checkpoints") || !cell["checkpoints"].is_array() || cell["checkpoints"].empty())
    refuse("checkpoints");
  for (const auto& checkpoint : cell["checkpoints"]) {
    if (!checkpoint.is_object() || !checkpoint.contains("t") || !checkpoint["t"].is_number()) refuse("a checkpoint's t");
    if (!checkpoint.contains("step") || !(is_whole(checkpoint["step"]) || checkpoint["step"].is_null()))
      refuse("a checkpoint's step");
    for (const char* key : {"counts", "fractions", "observables"})
      if (!checkpoint.contains(key) || !checkpoint[key].is_object()) refuse(std::string("a checkpoint's ") + key);
    for (const auto& count : checkpoint["counts"])
      if (!is_whole(count)) refuse("a checkpoint's counts");
    for (const char* key : {"runs", "running", "polarized", "converged", "diverged", "failed"})
      if (!checkpoint["counts"].contains(key)) refuse("a checkpoint's counts");
    for (const auto& fraction : checkpoint["fractions"])
      if (!is_number_or_null(fraction)) refuse("a checkpoint's fractions");
    if (!checkpoint.contains("winner_counts") || !checkpoint["winner_counts"].is_array()) refuse("winner_counts");
    for (const auto& count : checkpoint["winner_counts"])
      if (!is_whole(count)) refuse("winner_counts");
    for (const auto& summary : checkpoint["observables"]) {
      if (summary.is_null()) continue;
      if (!summary.is_object() || !summary.contains("count") || !is_whole(summary["count"])) refuse("an observable");
      for (const char* key : {"mean", "std", "min", "max"})
        if (summary.contains(key) && !is_number_or_null(summary[key])) refuse("an observable");
      if (summary.contains("quantiles")) {
        if (!summary["quantiles"].is_object()) refuse("an observable's quantiles");
        for (const auto& q : summary["quantiles"])
          if (!is_number_or_null(q)) refuse("an observable's quantiles");
      }
      if (summary.contains("histogram")) {
        const nlohmann::json& histogram = summary["histogram"];
        if (!histogram.is_object() || !histogram.contains("counts") || !histogram["counts"].is_array() ||
            !histogram.contains("lo") || !histogram["lo"].is_number() || !histogram.contains("hi") ||
            !histogram["hi"].is_number())
          refuse("an observable's histogram");
        for (const auto& count : histogram["counts"])
          if (!is_whole(count)) refuse("an observable's histogram");
      }
    }
  }
}

}  // namespace

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  const int index = slash == std::string::npos ? -1 : parse_count(text.substr(0, slash));
  const int count = slash == std::string::npos ? -1 : parse_count(text.substr(slash + 1));
  if (index < 0 || count < 1 || index >= count)
    throw InputError("--shard " + text + ": expected K/N with 0 <= K < N (shard K of N, e.g. 0/4)");
  return {index, count};
}

std::vector<std::uint32_t> shard_cells(std::size_t cell_count, const Shard& shard) {
  std::vector<std::uint32_t> cells;
  for (std::size_t i = std::size_t(shard.index); i < cell_count; i += std::size_t(shard.count))
    cells.push_back(std::uint32_t(i));
  if (cells.empty())
    throw InputError("--shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ": the study has " +
                     std::to_string(cell_count) + " cells, so this shard would run none");
  return cells;
}

nlohmann::json merge_results(const std::vector<nlohmann::json>& parts, const std::vector<std::string>& names,
                             const std::string& command_line) {
  if (parts.empty()) throw InputError("merge: no results files given");
  for (size_t p = 0; p < parts.size(); ++p) {
    check_results_shape(parts[p], names[p]);
    for (const auto& cell : parts[p]["cells"]) check_cell_shape(cell, names[p]);
  }
  const nlohmann::json& study = parts[0]["study"];
  const std::string commit = parts[0]["provenance"]["git_commit"].get<std::string>();
  const std::string version = parts[0]["provenance"]["softflow_version"].get<std::string>();
  for (size_t p = 1; p < parts.size(); ++p) {
    if (std::find(names.begin(), names.begin() + long(p), names[p]) != names.begin() + long(p))
      throw InputError(names[p] + ": given twice");
    if (const std::string key = first_difference(study, parts[p]["study"]); !key.empty())
      throw InputError(names[p] + ": the results of another study than " + names[0] + "'s (study." + key +
                       " differs)");
    const std::string other = parts[p]["provenance"]["git_commit"].get<std::string>();
    const std::string other_version = parts[p]["provenance"]["softflow_version"].get<std::string>();
    if (other != commit || other_version != version)
      throw InputError(names[p] + ": made by softflow " + other_version + " (" + other + "), " + names[0] + " by " +
                       version + " (" + commit + "); merge the shards of one build only");
  }
  // Cells by index (a map: nothing is sized by cell_count, which a damaged file may make huge).
  const std::size_t cell_count = study["cell_count"].get<std::size_t>();
  std::map<std::size_t, std::pair<size_t, const nlohmann::json*>> cells;  // index -> (part, cell)
  for (size_t p = 0; p < parts.size(); ++p)
    for (const auto& cell : parts[p]["cells"]) {
      const std::size_t index = cell["index"].get<std::size_t>();
      if (index >= cell_count)
        throw InputError(names[p] + ": cell " + std::to_string(index) + " is outside the study's " +
                         std::to_string(cell_count) + " cells");
      if (const auto seen = cells.find(index); seen != cells.end())
        throw InputError(names[p] + ": cell " + std::to_string(index) + " is also in " + names[seen->second.first]);
      cells[index] = {p, &cell};
    }
  if (cells.size() < cell_count) {
    std::string missing;
    int listed = 0;
    for (std::size_t i = 0; listed < 10 && i < cell_count; ++i)
      if (!cells.count(i)) missing += (listed++ ? ", " : "") + std::to_string(i);
    throw InputError("merge: " + std::to_string(cell_count - cells.size()) + " of the study's " +
                     std::to_string(cell_count) + " cells are in none of the files (cells " + missing +
                     (cell_count - cells.size() > 10 ? ", ..." : "") + "); run their shards first");
  }

  double wall = 0;
  long long steps = 0;
  std::string started_at, backend, devices;
  nlohmann::json merged_from = nlohmann::json::array();
  for (size_t p = 0; p < parts.size(); ++p) {  // wall seconds under 1e15 a part: their sum stays finite
    const nlohmann::json& provenance = parts[p]["provenance"];
    wall += provenance["wall_seconds"].get<double>();
    if (__builtin_add_overflow(steps, provenance["trajectory_steps"].get<long long>(), &steps))
      throw InputError("merge: the parts' trajectory_steps add up past 2^63");
    const std::string start = provenance["started_at"].get<std::string>();
    if (!start.empty() && (started_at.empty() || start < started_at)) started_at = start;
    const std::string part_backend = provenance["backend"].get<std::string>();
    backend = backend.empty() || backend == part_backend ? part_backend : "mixed";
    const std::string device = provenance["device"].get<std::string>();
    if (("; " + devices + "; ").find("; " + device + "; ") == std::string::npos)
      devices += (devices.empty() ? "" : "; ") + device;
    nlohmann::json entry = provenance;
    entry["file"] = names[p];
    merged_from.push_back(std::move(entry));
  }
  nlohmann::json results;
  results["schema_version"] = kResultsSchemaVersion;
  results["provenance"] = {{"softflow_version", parts[0]["provenance"]["softflow_version"]},
                           {"git_commit", commit},
                           {"backend", backend},
                           {"device", devices},
                           {"started_at", started_at},
                           {"command_line", command_line},
                           {"wall_seconds", wall},
                           {"trajectory_steps", steps},
                           {"trajectory_steps_per_second", wall > 0 ? double(steps) / wall : 0.0},
                           {"merged_from", std::move(merged_from)}};
  results["study"] = study;
  results["cells"] = nlohmann::json::array();
  for (const auto& entry : cells) results["cells"].push_back(*entry.second.second);
  return results;
}

}  // namespace softflow
