// Purpose: a study's cells split across separate jobs (cluster array jobs, several GPUs or machines): `softflow run
// --shard K/N` runs the cells whose index is K modulo N, each with the random streams it has in the whole study, and
// `softflow merge` joins the shards' results files into the whole study's (docs/results.md, "Shards and merged
// results"): everything but the provenance bit-identical to one run of the whole study.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace softflow {

// Shard `index` of `count`: the cells whose index is index modulo count.
struct Shard {
  int index = 0;
  int count = 1;
};

// "K/N" with 0 <= K < N; throws InputError naming --shard otherwise.
Shard parse_shard(const std::string& text);

// The cell indices of a study of `cell_count` cells in `shard`, ascending; throws InputError when there are none
// (N larger than the cell count).
std::vector<std::uint32_t> shard_cells(std::size_t cell_count, const Shard& shard);

// The results of the whole study from the results of its shards (parts, read from the files `names`, any order):
// the same study and the same softflow build in every part, each cell in exactly one part, all cells present.
// Cells in index order; the provenance sums the parts' wall seconds and steps and lists each part's own provenance
// under merged_from. Throws InputError naming the file and the rule.
nlohmann::json merge_results(const std::vector<nlohmann::json>& parts, const std::vector<std::string>& names,
                             const std::string& command_line);

}  // namespace softflow
