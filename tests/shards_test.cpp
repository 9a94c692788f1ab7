// Purpose: shards of a study's cells (softflow run --shard K/N) and the merge of their results (host/shards.h): the
// shards' cells carry the whole study's random streams, so the merged results equal one run of the whole study bit
// for bit (provenance aside); and every malformed shard or merge is refused with the file and the rule.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine.h"
#include "shards.h"
#include "study.h"
#include "test_support.h"

namespace softflow {
namespace {

// Five cells of different losses and scales, small enough to run in a moment on any backend.
Study five_cell_study() {
  return testing::study_with({{"runs", 300}, {"integrator", "gd"}, {"step", 0.2}, {"sigma_a", 0.1},
                              {"loss", {"logistic", "square", "cross_entropy", "regression", "logistic"}},
                              {"checkpoints", {{"schedule", "list"}, {"times", {0, 1, 20}}}}});
}

nlohmann::json run_shard(const Study& study, Shard shard) {
  EngineOptions options{BackendChoice::cpu, 0, false, ""};
  options.shard = shard;
  return run_study(study, options);
}

TEST(Shards, ParseAcceptsKOfNAndRefusesTheRest) {
  const Shard shard = parse_shard("2/5");
  EXPECT_EQ(shard.index, 2);
  EXPECT_EQ(shard.count, 5);
  EXPECT_EQ(parse_shard("0/1").count, 1);
  for (const char* bad : {"5/5", "6/5", "-1/5", "1/0", "a/2", "1", "1/2/3", "", "/2", "1/", " 1/2", "1/2 ",
                          "99999999999/2"})
    EXPECT_THROW(parse_shard(bad), InputError) << bad;
}

TEST(Shards, CellsAreTakenRoundRobinAndAShardWithNoneIsRefused) {
  EXPECT_EQ(shard_cells(7, {0, 3}), (std::vector<std::uint32_t>{0, 3, 6}));
  EXPECT_EQ(shard_cells(7, {2, 3}), (std::vector<std::uint32_t>{2, 5}));
  EXPECT_EQ(shard_cells(7, {0, 1}).size(), 7u);
  try {
    shard_cells(3, {3, 4});
    ADD_FAILURE() << "shard 3 of 4 of 3 cells accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the study has 3 cells, so this shard would run none"), std::string::npos)
        << e.what();
  }
}

TEST(Shards, MergedShardsAreTheWholeStudyBitForBit) {
  const Study study = five_cell_study();
  const nlohmann::json whole = run_shard(study, {0, 1});
  EXPECT_FALSE(whole["provenance"].contains("shard"));
  // Shards given to the merge out of order; each holds only its own cells, with their indices in the whole study.
  std::vector<nlohmann::json> parts = {run_shard(study, {2, 3}), run_shard(study, {0, 3}), run_shard(study, {1, 3})};
  EXPECT_EQ(parts[0]["cells"].size(), 1u);
  EXPECT_EQ(parts[0]["cells"][0]["index"], 2);
  EXPECT_EQ(parts[1]["cells"].size(), 2u);
  EXPECT_EQ(parts[1]["cells"][1]["index"], 3);
  EXPECT_EQ(parts[0]["provenance"]["shard"], (nlohmann::json{{"index", 2}, {"count", 3}}));
  const nlohmann::json merged = merge_results(parts, {"c.json", "a.json", "b.json"}, "softflow merge ...");
  EXPECT_EQ(reproducible_part(merged), reproducible_part(whole));
  const nlohmann::json& provenance = merged["provenance"];
  ASSERT_EQ(provenance["merged_from"].size(), 3u);
  EXPECT_EQ(provenance["merged_from"][1]["file"], "a.json");
  EXPECT_EQ(provenance["merged_from"][1]["shard"]["index"], 0);
  EXPECT_EQ(provenance["backend"], "cpu");
  EXPECT_EQ(provenance["merged_from"][0]["file"], "c.json");
  EXPECT_EQ(provenance["merged_from"][2]["shard"]["index"], 1);
  long long steps = 0;
  for (const auto& part : parts) steps += part["provenance"]["trajectory_steps"].get<long long>();
  EXPECT_EQ(provenance["trajectory_steps"], steps);
  EXPECT_EQ(provenance["trajectory_steps"], whole["provenance"]["trajectory_steps"]);
}

// merge_results must throw InputError whose message contains `expected`.
void expect_refused(const std::vector<nlohmann::json>& parts, const std::string& expected) {
  std::vector<std::string> names;
  for (size_t p = 0; p < parts.size(); ++p) names.push_back("part" + std::to_string(p) + ".json");
  try {
    merge_results(parts, names, "");
    ADD_FAILURE() << "merged; expected: " << expected;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(Shards, EveryBadMergeIsRefusedNamingTheFileAndTheRule) {
  const Study study = five_cell_study();
  const nlohmann::json even = run_shard(study, {0, 2}), odd = run_shard(study, {1, 2});
  expect_refused({}, "no results files given");
  expect_refused({even}, "2 of the study's 5 cells are in none of the files (cells 1, 3)");
  expect_refused({even, odd, odd}, "part2.json: cell 1 is also in part1.json");
  try {
    merge_results({even, odd, even}, {"a.json", "b.json", "a.json"}, "");
    ADD_FAILURE() << "a file given twice merged";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "a.json: given twice");
  }
  nlohmann::json other_seed = odd;
  other_seed["study"]["seed"] = 7;
  expect_refused({even, other_seed}, "part1.json: the results of another study than part0.json's (study.seed differs)");
  nlohmann::json other_build = odd;
  other_build["provenance"]["git_commit"] = "0123456789ab";
  expect_refused({even, other_build}, "part1.json: made by softflow ");
  expect_refused({even, other_build}, " (0123456789ab), part0.json by ");
  nlohmann::json other_version = odd;
  other_version["provenance"]["softflow_version"] = "9.9.9";
  expect_refused({even, other_version}, "part1.json: made by softflow 9.9.9 (");
  nlohmann::json endless = odd;
  endless["provenance"]["wall_seconds"] = 1.5e308;
  expect_refused({even, endless}, "part1.json: not a softflow results file (provenance.wall_seconds is not a number");
  nlohmann::json countless = odd;
  countless["provenance"]["trajectory_steps"] = -3;
  expect_refused({even, countless}, "(provenance.trajectory_steps is not a count of steps)");
  nlohmann::json outside = odd;
  outside["cells"][0]["index"] = 5;
  expect_refused({even, outside}, "part1.json: cell 5 is outside the study's 5 cells");
  nlohmann::json huge = odd;  // a damaged cell_count sizes nothing: the cells are simply missing
  huge["study"]["cell_count"] = 4294967296LL;
  nlohmann::json huge_even = even;
  huge_even["study"]["cell_count"] = 4294967296LL;
  expect_refused({huge_even, huge}, "4294967291 of the study's 4294967296 cells are in none of the files (cells 5, 6, 7");
  nlohmann::json no_schema = odd;
  no_schema.erase("schema_version");
  expect_refused({even, no_schema}, "part1.json: not a softflow results file (schema_version is not 1)");
  nlohmann::json no_index = odd;
  no_index["cells"][0].erase("index");
  expect_refused({even, no_index}, "part1.json: not a softflow results file (a cell without an index)");
  expect_refused({even, nlohmann::json::array()}, "part1.json: not a softflow results file (not a JSON object)");
  nlohmann::json bad_quantile = odd;
  bad_quantile["cells"][0]["checkpoints"][1]["observables"]["s_max"]["quantiles"]["q50"] = "x";
  expect_refused({even, bad_quantile}, "part1.json: cell 1: an observable's quantiles is not as softflow writes it");
  nlohmann::json bad_counts = odd;
  bad_counts["cells"][0]["checkpoints"][0]["counts"].erase("diverged");
  expect_refused({even, bad_counts}, "part1.json: cell 1: a checkpoint's counts is not as softflow writes it");
  nlohmann::json no_checkpoints = odd;
  no_checkpoints["cells"][0]["checkpoints"] = nlohmann::json::array();
  expect_refused({even, no_checkpoints}, "part1.json: cell 1: checkpoints is not as softflow writes it");
}

}  // namespace
}  // namespace softflow
