// Purpose: shards of a study's cells and the merge of their results (see shards.h).
#include "shards.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>

#include "engine.h"
#include "study.h"
#include "version.h"

namespace softflow {
namespace {

// A non-negative decimal integer that fits an int, or -1.
int parse_count(const std::string& text) {
  if (text.empty() || text.size() > 9) return -1;
  for (char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
  return std::stoi(text);
}

// The first key (in sorted order) whose values differ between two study objects; "" if they are equal.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b) {
  std::map<std::string, bool> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys[it.key()] = true;
  for (auto it = b.begin(); it != b.end(); ++it) keys[it.key()] = true;
  for (const auto& entry : keys) {
    const std::string& key = entry.first;
    if (!a.contains(key) || !b.contains(key) || a[key] != b[key]) return key;
  }
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
  auto whole = [](const nlohmann::json& x) { return x.is_number_integer() && x.get<long long>() >= 0; };
  if (!part.contains("study") || !part["study"].is_object() || !part["study"].contains("cell_count") ||
      !whole(part["study"]["cell_count"]))
    refuse("no study with a cell_count");
  if (!part.contains("cells") || !part["cells"].is_array()) refuse("no cells array");
  for (const auto& cell : part["cells"])
    if (!cell.is_object() || !cell.contains("index") || !whole(cell["index"])) refuse("a cell without an index");
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
  for (size_t p = 0; p < parts.size(); ++p) check_results_shape(parts[p], names[p]);
  const nlohmann::json& study = parts[0]["study"];
  const std::string commit = parts[0]["provenance"].value("git_commit", std::string("unknown"));
  for (size_t p = 1; p < parts.size(); ++p) {
    if (const std::string key = first_difference(study, parts[p]["study"]); !key.empty())
      throw InputError(names[p] + ": the results of another study than " + names[0] + "'s (study." + key +
                       " differs)");
    const std::string other = parts[p]["provenance"].value("git_commit", std::string("unknown"));
    if (other != commit)
      throw InputError(names[p] + ": made by softflow " + other + ", " + names[0] + " by " + commit +
                       "; merge the shards of one build only");
  }
  const std::size_t cell_count = study["cell_count"].get<std::size_t>();
  std::vector<int> owner(cell_count, -1);
  std::vector<const nlohmann::json*> cells(cell_count, nullptr);
  for (size_t p = 0; p < parts.size(); ++p)
    for (const auto& cell : parts[p]["cells"]) {
      const std::size_t index = cell["index"].get<std::size_t>();
      if (index >= cell_count)
        throw InputError(names[p] + ": cell " + std::to_string(index) + " is outside the study's " +
                         std::to_string(cell_count) + " cells");
      if (owner[index] >= 0)
        throw InputError(names[p] + ": cell " + std::to_string(index) + " is also in " + names[size_t(owner[index])]);
      owner[index] = int(p);
      cells[index] = &cell;
    }
  std::string missing;
  int missing_count = 0;
  for (std::size_t i = 0; i < cell_count; ++i)
    if (owner[i] < 0 && ++missing_count <= 10) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
  if (missing_count > 0)
    throw InputError("merge: " + std::to_string(missing_count) + " of the study's " + std::to_string(cell_count) +
                     " cells are in none of the files (cells " + missing + (missing_count > 10 ? ", ..." : "") +
                     "); run their shards first");

  double wall = 0;
  long long steps = 0;
  std::string started_at, backend, devices;
  nlohmann::json merged_from = nlohmann::json::array();
  for (size_t p = 0; p < parts.size(); ++p) {
    const nlohmann::json& provenance = parts[p]["provenance"];
    wall += provenance.value("wall_seconds", 0.0);
    steps += provenance.value("trajectory_steps", 0LL);
    const std::string start = provenance.value("started_at", std::string());
    if (!start.empty() && (started_at.empty() || start < started_at)) started_at = start;
    const std::string part_backend = provenance.value("backend", std::string("unknown"));
    backend = backend.empty() || backend == part_backend ? part_backend : "mixed";
    const std::string device = provenance.value("device", std::string("unknown"));
    if (("; " + devices + "; ").find("; " + device + "; ") == std::string::npos)
      devices += (devices.empty() ? "" : "; ") + device;
    nlohmann::json entry = provenance;
    entry["file"] = names[p];
    merged_from.push_back(std::move(entry));
  }
  nlohmann::json results;
  results["schema_version"] = kResultsSchemaVersion;
  results["provenance"] = {{"softflow_version", parts[0]["provenance"].value("softflow_version", std::string(kSoftflowVersion))},
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
  for (const nlohmann::json* cell : cells) results["cells"].push_back(*cell);
  return results;
}

}  // namespace softflow
