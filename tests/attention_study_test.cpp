// Purpose: the attention family as users run it: study validation (one-line errors naming the field), the data
// sets (random, toy, file), normalized gd's per-block step, and the behaviours science.md section 2 and issue 6 list
// (multi-input normalized gd saturates on the optimal tokens with ||p|| growing linearly; the single-input example
// converges to the global direction in the global setting and can reach the local one in the local setting;
// W training on random n = 6, T = 8, d = 10 data aligns with W_mm).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "basin_map.h"
#include "engine.h"
#include "softflow/integrators.h"
#include "test_support.h"

namespace softflow {
namespace {

using nlohmann::json;

json attention_study(const json& changes) {
  json raw = {{"model", "attention"}, {"integrator", "normalized_gd"}, {"step", 0.1}, {"runs", 64}, {"sigma_v", 1.0},
              {"checkpoints", {{"schedule", "list"}, {"times", {10.0}}}}};
  raw.merge_patch(changes);
  return raw;
}

TEST(AttentionStudy, RejectsWhatDoesNotApplyWithOneLineNamingTheField) {
  EXPECT_EQ(testing::error_of(attention_study({{"loss", "square"}})),
            "s.json: cells[0].loss: the attention model's losses are logistic, linear, exponential (got \"square\")");
  EXPECT_EQ(testing::error_of({{"loss", "linear"}}).rfind("s.json: cells[0].loss: the linear and exponential losses", 0), 0u);
  EXPECT_EQ(testing::error_of(attention_study({{"n", 5}})),
            "s.json: n: does not apply to the attention model (its softmax has `tokens` entries)");
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "single_global"}, {"tokens", 5}})),
            "s.json: cells[0].tokens: the data set \"single_global\" has tokens = 3 (got 5)");
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "multi_input"}, {"trainable", "W"}})).rfind(
                "s.json: cells[0].trainable: the toy data sets fix W", 0),
            0u);
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "joint_tight"}})).rfind("s.json: cells[0].trainable: the joint", 0),
            0u);
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "file"}})),
            "s.json: cells[0].dataset_file: dataset \"file\" needs a dataset_file");
  EXPECT_EQ(testing::error_of(attention_study({{"dataset_file", "x.json"}})).rfind("s.json: cells[0].dataset_file: is read", 0),
            0u);
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "file"}, {"dataset_file", "/nonexistent/x.json"}})),
            "/nonexistent/x.json: cannot open data set file (No such file or directory)");
  EXPECT_EQ(testing::error_of(attention_study({{"tokens", 1}})), "s.json: tokens: must be in [2, 4096] (got 1)");
}

// A data set file in a fresh temporary directory; removed with it.
struct DatasetFile {
  std::string path;
  explicit DatasetFile(const json& content) {
    char pattern[] = "/tmp/softflow-dataset-XXXXXX";
    path = std::string(mkdtemp(pattern)) + "/data.json";
    std::ofstream(path) << content.dump();
  }
  ~DatasetFile() {
    std::remove(path.c_str());
    std::remove(path.substr(0, path.rfind('/')).c_str());
  }
};

TEST(AttentionStudy, LoadsADataSetFileAndRejectsMalformedOnes) {
  const json good = {{"X", {{{1, 0}, {0, 1}, {0.5, 0.5}}, {{0, 1}, {1, 1}, {2, 0}}}}, {"Y", {1, -1}}, {"v", {0.5, -1}}};
  const DatasetFile file(good);
  const Study study = parse_study(attention_study({{"dataset", "file"}, {"dataset_file", file.path}}), "s.json");
  const CellParams& cell = study.cells[0];
  EXPECT_EQ(cell.shape.inputs, 2);
  EXPECT_EQ(cell.shape.n, 3);
  EXPECT_EQ(cell.shape.d, 2);
  EXPECT_TRUE(cell.data_shared());
  const testing::RunSetup<double> setup = testing::run_setup<double>(study, 5);
  const std::vector<double> expected = {1, 0, 0, 1, 0.5, 0.5, 0, 1, 1, 1, 2, 0, /*Y*/ 1, -1,
                                        /*W = I*/ 1, 0, 0, 1, /*v*/ 0.5, -1};
  EXPECT_EQ(setup.data, expected);
  const std::pair<json, std::string> broken[] = {
      {{{"X", good["X"]}, {"Y", {1, 2}}, {"v", good["v"]}}, "Y: labels must be +1 or -1"},
      {{{"X", {{{1, 0}, {0}}}}, {"Y", {1}}, {"v", good["v"]}}, "X: is not a rectangular array"},
      {{{"X", good["X"]}, {"Y", {1, -1}}}, "v: missing (the fixed value vector, d entries)"},
      {{{"X", good["X"]}, {"Y", {1, -1}}, {"v", good["v"]}, {"bias", 1}}, "bias: unknown key (allowed: X, Y, W, v, z)"},
      {{{"X", good["X"]}, {"Y", {1, -1}}, {"v", {1, 2, 3}}}, "v: must be d entries (2)"},
  };
  for (const auto& [content, message] : broken) {
    const DatasetFile bad(content);
    EXPECT_EQ(testing::error_of(attention_study({{"dataset", "file"}, {"dataset_file", bad.path}})), bad.path + ": " + message);
  }
}

// A file's sizes meet the study's own ranges: d = 4097 tokens of one input (inside N T d <= 2^26) would make
// trainable W's d^2 and the state sizes overflow an int at d = 46341, and is refused at 4097 already.
TEST(AttentionStudy, DataSetFileSizesMustBeInTheStudysRanges) {
  const json wide_token = json(std::vector<double>(4097, 0.5));
  const json wide = {{"X", {{wide_token, wide_token}}}, {"Y", {1}}, {"v", wide_token}};
  const DatasetFile file(wide);
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "file"}, {"dataset_file", file.path}})),
            "s.json: cells[0].dataset_file: the data set " + file.path + " has d = 4097; must be in [1, 4096]");
  const json one_token = {{"X", {{{1.0, 0.0}}}}, {"Y", {1}}, {"v", {1.0, 0.0}}};
  const DatasetFile single(one_token);
  EXPECT_EQ(testing::error_of(attention_study({{"dataset", "file"}, {"dataset_file", single.path}})),
            "s.json: cells[0].dataset_file: the data set " + single.path + " has tokens = 1; must be in [2, 4096]");
}

TEST(AttentionStudy, RandomDataSetsAreUnitTokensWithSignLabelsPerRunOrShared) {
  const Study sphere = parse_study(attention_study({{"dataset", "sphere"}, {"trainable", "W"}, {"inputs", 5},
                                                    {"tokens", 4}, {"d", 3}}), "s.json");
  const testing::RunSetup<double> a = testing::run_setup<double>(sphere, 0), b = testing::run_setup<double>(sphere, 1);
  EXPECT_NE(a.data, b.data);
  for (int token = 0; token < 5 * 4; ++token)
    EXPECT_NEAR(std::hypot(a.data[token * 3], a.data[token * 3 + 1], a.data[token * 3 + 2]), 1.0, 1e-12);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(std::abs(a.data[60 + i]), 1.0);
  for (int i = 0; i < 5; ++i)  // the query tokens z_i are unit vectors too
    EXPECT_NEAR(std::hypot(a.data[65 + i * 3], a.data[66 + i * 3], a.data[67 + i * 3]), 1.0, 1e-12);
  const Study shared = parse_study(attention_study({{"target", "shared"}}), "s.json");
  EXPECT_EQ(testing::run_setup<double>(shared, 0).data, testing::run_setup<double>(shared, 3).data);
}

TEST(AttentionStudy, MultiInputSetHasTheNotebooksScores) {
  const Study study = parse_study(attention_study({{"dataset", "multi_input"}}), "s.json");
  const std::vector<double> data = testing::run_setup<double>(study, 0).data;
  for (int i = 0; i < 3; ++i)
    for (int t = 0; t < 7; ++t) EXPECT_EQ(data[(i * 7 + t) * 3 + 2], t == 0 ? 1.0 : 0.5);  // the score coordinate
  EXPECT_NEAR(data[0], 1.0, 1.0);  // token 0 of input 0 is shifted by (1, 0, 0)
}

TEST(NormalizedGd, EachParameterBlockMovesByExactlyTheStep) {
  const Study study = parse_study(attention_study({{"trainable", "vp"}, {"d", 5}}), "s.json");
  testing::RunSetup<double> setup = testing::run_setup<double>(study, 2);
  const std::vector<double> before = setup.theta;
  RunRecord rec;
  std::vector<double> work(size_t(integrator_workspace_size(setup.shape, Method::normalized_gd)));
  advance_fixed_step(setup.shape, Method::normalized_gd, 0.1, 0, 1, StopRule{}, setup.theta.data(), setup.data.data(),
                     rec, work.data());
  for (int block = 0; block < 2; ++block) {  // v, then p
    double moved_sq = 0;
    for (int k = block * 5; k < block * 5 + 5; ++k) moved_sq += (setup.theta[k] - before[k]) * (setup.theta[k] - before[k]);
    EXPECT_NEAR(std::sqrt(moved_sq), 0.1, 1e-12) << "block " << block;
  }
}

// The statistics of one observable at checkpoint c of cell 0.
json observable(const json& results, size_t c, const char* name) {
  return results["cells"][0]["checkpoints"][c]["observables"][name];
}

json run(const json& raw) { return run_study(parse_study(raw, "s.json"), EngineOptions{BackendChoice::cpu, 0, false, ""}); }

TEST(AttentionBehaviour, MultiInputNormalizedGdSaturatesOnTheOptimalTokensWithLinearlyGrowingNorm) {
  const json results = run(attention_study({{"dataset", "multi_input"}, {"runs", 256}, {"sigma_v", 0.5},
                                            {"checkpoints", {{"schedule", "list"}, {"times", {5.0, 10.0}}}}}));
  // 100 iterations of lr 0.1: every run puts probability > 0.99 on the optimal tokens.
  EXPECT_GT(observable(results, 1, "optimal_token_prob")["min"].get<double>(), 0.99);
  const double norm_50 = observable(results, 0, "param_norm")["mean"], norm_100 = observable(results, 1, "param_norm")["mean"];
  EXPECT_NEAR(norm_100 / norm_50, 2.0, 0.1);  // ||p|| about linear in the iterations
  EXPECT_NEAR(norm_100, 10.0, 1.0);           // ... at the step's rate (0.1 per iteration)
}

TEST(AttentionBehaviour, SingleInputGoesGlobalInTheGlobalSettingAndCanGoLocalInTheLocalOne) {
  const json times = {{"schedule", "list"}, {"times", {200.0}}};
  const json global = run(attention_study({{"dataset", "single_global"}, {"runs", 200}, {"checkpoints", times}}));
  EXPECT_EQ(observable(global, 0, "direction_global")["mean"].get<double>(), 1.0);
  const json local = run(attention_study({{"dataset", "single_local"}, {"runs", 200}, {"checkpoints", times}}));
  EXPECT_GT(observable(local, 0, "direction_local")["mean"].get<double>(), 0.05);
  EXPECT_GT(observable(local, 0, "direction_global")["mean"].get<double>(), 0.5);
  EXPECT_EQ(local["cells"][0]["checkpoints"][0]["winner_counts"][2].get<long long>(), 0);  // token 2 scores 0
}

TEST(AttentionBehaviour, WTrainingOnRandomDataAlignsWithWmmInMostSeeds) {
  // "Transformers as SVMs": N = 6, T = 8, d = 10 unit tokens, cross-attention queries z_i, float64, 2000 iterations.
  const json results = run(attention_study({{"dataset", "sphere"}, {"trainable", "W"}, {"inputs", 6}, {"tokens", 8},
                                            {"d", 10}, {"runs", 40}, {"sigma_v", 0.3},
                                            {"checkpoints", {{"schedule", "list"}, {"times", {200.0}}}}}));
  const json cos_final = observable(results, 0, "cos_final");
  EXPECT_GT(cos_final["quantiles"]["q25"].get<double>(), 0.98);  // at least 75 % of the runs above 0.98
}

// The basin map lists every cell with its grid axes and each class's share as the results' indicator means; a
// damaged share or count is refused with its path.
TEST(BasinMap, ListsEachCellsClassSharesBesideItsGridAxes) {
  const json results = run(attention_study({{"dataset", {"single_global", "single_local"}}, {"sigma_v", {0.1, 1.0}},
                                            {"runs", 100}, {"checkpoints", {{"schedule", "list"}, {"times", {1.0, 20.0}}}}}));
  ASSERT_TRUE(has_direction_classes(results));
  const std::string table = basin_map_table(results, -1);
  std::vector<std::string> lines;
  for (size_t at = 0, end; (end = table.find('\n', at)) != std::string::npos; at = end + 1)
    lines.push_back(table.substr(at, end - at));
  ASSERT_EQ(lines.size(), 2u + 4u);  // header, rule, one row per cell
  EXPECT_EQ(lines[0], "| cell | dataset | sigma_v | t | runs | global | local | neither | not converged |");
  for (int cell = 0; cell < 4; ++cell) {
    const json& parameters = results["cells"][cell]["parameters"];
    const json& last = results["cells"][cell]["checkpoints"].back()["observables"];
    char expected[160];
    const double p = last["direction_global"]["mean"], q = last["direction_local"]["mean"];
    std::snprintf(expected, sizeof expected, "| %d | %s | %s | 20 | %lld | %.4f ± %.4f | %.4f ± %.4f |", cell,
                  parameters["dataset"].get<std::string>().c_str(), parameters["sigma_v"].dump().c_str(),
                  last["direction_global"]["count"].get<long long>(), p, std::sqrt(p * (1 - p) / 100), q,
                  std::sqrt(q * (1 - q) / 100));
    EXPECT_EQ(lines[2 + cell].rfind(expected, 0), 0u) << lines[2 + cell] << "\nexpected " << expected;
  }
  EXPECT_NE(basin_map_table(results, 0).find("| 0 | single_global | 0.1 | 1 |"), std::string::npos);

  EXPECT_EQ(testing::error_of_call([&] { basin_map_table(results, 2); }),
            "cell 0 has 2 checkpoints: no checkpoint 2");
  json damaged = results;
  damaged["cells"][1]["checkpoints"][1]["observables"]["direction_local"]["mean"] = 5;
  EXPECT_EQ(testing::error_of_call([&] { basin_map_table(damaged, -1); }),
            "cells[1].checkpoints[1].observables.direction_local.mean: a share must be in [0, 1] (got 5)");
  damaged = results;
  damaged["cells"][0]["checkpoints"][1]["observables"]["direction_global"]["count"] = 0;
  EXPECT_EQ(testing::error_of_call([&] { basin_map_table(damaged, -1); }),
            "cells[0].checkpoints[1].observables.direction_global.count: must be a number of runs >= 1 (got 0)");
  const json value_softmax = run({{"runs", 8}, {"checkpoints", {{"schedule", "list"}, {"times", {1.0}}}}});
  EXPECT_FALSE(has_direction_classes(value_softmax));
  EXPECT_EQ(testing::error_of_call([&] { basin_map_table(value_softmax, -1); }),
            "the results have no direction classes: a basin map needs an attention study");
}

}  // namespace
}  // namespace softflow
