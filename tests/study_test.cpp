// Purpose: study parsing: defaults made explicit, grid expansion, checkpoint schedules, and one test per class of
// bad input (each error names the field path and the rule).
#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"

namespace softflow {
namespace {

using nlohmann::json;

using testing::error_of;

TEST(OneLine, EscapesControlCharactersAndKeepsText) {
  using namespace std::string_literals;
  EXPECT_EQ(one_line("a\nb\tc"), "a\\nb\\tc");
  EXPECT_EQ(one_line("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(one_line("d\0x"s), "d\\x00x");
  EXPECT_EQ(one_line("\xc2\x9b" "31m"), "\\u009b31m");  // U+009B, the 8-bit CSI
  EXPECT_EQ(one_line("\x9b" "31m"), "\\x9b31m");         // a stray byte, not UTF-8
  EXPECT_EQ(one_line("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x99\x82 \\n"), "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x99\x82 \\n");
  const std::string messy = "k\ney\x1b\xc2\x85\x80"s + '\0';
  EXPECT_EQ(one_line(one_line(messy)), one_line(messy));  // idempotent: re-wrapped messages are not escaped twice
  EXPECT_EQ(std::string(InputError("x\ny").what()), "x\\ny");
}

TEST(Study, DefaultsAreMadeExplicit) {
  const Study study = parse_study(json::object(), "s.json");
  const json& normalized = study.normalized;
  for (const char* key : {"model", "loss", "d", "n", "precision", "integrator", "step", "rtol", "atol", "sigma_v",
                          "mu_a", "sigma_a", "target", "kappa", "runs", "seed", "checkpoints", "stop"})
    EXPECT_TRUE(normalized.contains(key)) << key;
  EXPECT_EQ(normalized["checkpoints"]["schedule"], "log");
  EXPECT_EQ(study.cells.size(), 1u);
  EXPECT_EQ(study.checkpoint_times.front(), 0.0);
  EXPECT_EQ(study.checkpoint_times.back(), 1e4);
  EXPECT_EQ(study.checkpoint_times.size(), 18u);  // t = 0 plus 17 log-spaced times
}

TEST(Study, ListsBecomeGridAxesFirstAxisSlowest) {
  const Study study = parse_study({{"loss", {"logistic", "square"}}, {"sigma_v", {0.1, 1.0, 10.0}}}, "s.json");
  ASSERT_EQ(study.cells.size(), 6u);
  EXPECT_EQ(study.grid_axes, (std::vector<std::string>{"loss", "sigma_v"}));
  EXPECT_EQ(study.cells[0].shape.loss, LossKind::logistic);
  EXPECT_EQ(study.cells[2].sigma_v, 10.0);
  EXPECT_EQ(study.cells[3].shape.loss, LossKind::square);
  EXPECT_EQ(study.cells[3].sigma_v, 0.1);
  EXPECT_EQ(study.cells[5].parameters["sigma_v"], 10.0);
}

TEST(Study, CheckpointSchedules) {
  const Study linear = parse_study({{"checkpoints", {{"schedule", "linear"}, {"start", 0}, {"stop", 10}, {"count", 6}}}},
                                   "s.json");
  EXPECT_EQ(linear.checkpoint_times, (std::vector<double>{0, 2, 4, 6, 8, 10}));
  const Study log = parse_study(
      {{"checkpoints", {{"schedule", "log"}, {"start", 1}, {"stop", 100}, {"count", 3}, {"include_zero", false}}}},
      "s.json");
  ASSERT_EQ(log.checkpoint_times.size(), 3u);
  EXPECT_DOUBLE_EQ(log.checkpoint_times[1], 10.0);
  const Study list = parse_study({{"checkpoints", {{"schedule", "list"}, {"times", {0.5, 2}}}}}, "s.json");
  EXPECT_EQ(list.checkpoint_times, (std::vector<double>{0.5, 2}));
}

TEST(Study, TiedModelTakesItsSizeFromN) {
  const Study study = parse_study({{"model", "tied"}, {"n", {10, 20}}}, "s.json");
  ASSERT_EQ(study.cells.size(), 2u);
  EXPECT_EQ(study.cells[1].shape.d, 20);
  EXPECT_EQ(study.cells[1].parameters["d"], 20);
  EXPECT_EQ(study.cells[1].shape.state_size(), 20 * 20 + 20);
}

TEST(Study, LogSpacedDecadesAreExact) {
  const Study study = parse_study({{"checkpoints", {{"schedule", "log"}, {"start", 1}, {"stop", 1e6}, {"count", 13}}}},
                                  "s.json");
  EXPECT_EQ(study.checkpoint_times[3], 10.0);  // after t = 0, 1, 10^0.5
  EXPECT_EQ(study.checkpoint_times[5], 100.0);
  EXPECT_EQ(study.checkpoint_times.back(), 1e6);
}

TEST(Study, OverridesReplaceRunsAndSeed) {
  const Study study = parse_study({{"runs", 10}}, "s.json", StudyOverrides{77, 5});
  EXPECT_EQ(study.runs, 77);
  EXPECT_EQ(study.seed, 5u);
}

struct BadInput {
  const char* name;
  json study;
  const char* expected;  // substring of the one-line message: field path and rule
};

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, IsRejectedWithFieldPathAndRule) {
  const std::string message = error_of(GetParam().study);
  EXPECT_NE(message.find(GetParam().expected), std::string::npos) << "message: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "must be one line: " << message;
  EXPECT_EQ(message.rfind("s.json: ", 0), 0u) << message;
}

INSTANTIATE_TEST_SUITE_P(
    EveryClass, BadInputTest,
    ::testing::Values(
        BadInput{"unknown_key", {{"sigma_w", 1}}, "sigma_w: unknown key"},
        BadInput{"unknown_nested_key", {{"stop", {{"polarised_eps", 0.1}}}}, "stop.polarised_eps: unknown key"},
        BadInput{"wrong_type", {{"d", "eight"}}, "d: must be an integer"},
        BadInput{"wrong_type_choice", {{"loss", 3}}, "loss: must be one of"},
        BadInput{"unknown_choice", {{"integrator", "euler"}}, "integrator: must be one of gd, rk4, dopri5"},
        BadInput{"n_below_two", {{"n", 1}}, "n: must be in [2, 4096]"},
        BadInput{"runs_below_one", {{"runs", 0}}, "runs: must be in [1,"},
        BadInput{"step_not_positive", {{"step", 0}}, "step: must be > 0"},
        BadInput{"step_negative_in_grid", {{"step", {0.1, -1}}}, "step[1]: must be > 0"},
        BadInput{"rtol_not_positive", {{"rtol", 0}}, "rtol: must be in (0, 1)"},
        BadInput{"nan_as_string", {{"sigma_v", "NaN"}}, "sigma_v: must be a number"},
        BadInput{"infinite", {{"mu_a", std::numeric_limits<double>::infinity()}}, "mu_a: must be finite"},
        BadInput{"fractional_integer", {{"d", 2.5}}, "d: must be an integer"},
        BadInput{"empty_grid", {{"d", json::array()}}, "d: a grid list must not be empty"},
        BadInput{"tied_needs_logistic", {{"model", "tied"}, {"loss", "square"}}, "cells[0].loss: the tied model"},
        BadInput{"attention_key_without_attention", {{"trainable", "W"}},
                 "trainable: applies to the attention model only (this study has no attention cell)"},
        BadInput{"toy_set_size_given_at_its_default", {{"model", "attention"}, {"dataset", "single_global"}, {"d", 8}},
                 "cells[0].d: the data set \"single_global\" has d = 3 (got 8)"},
        BadInput{"n_in_attention_at_its_default", {{"model", "attention"}, {"n", 8}},
                 "n: does not apply to the attention"},
        BadInput{"attention_data_past_2_26", {{"model", "attention"}, {"inputs", 1 << 20}, {"tokens", 16}, {"d", 8}},
                 "cells[0].inputs: inputs * tokens * d must be at most 2^26"},
        BadInput{"attention_svm_workspace_past_16_gib",
                 {{"model", "attention"}, {"trainable", "W"}, {"inputs", 1 << 17}, {"tokens", 3}, {"d", 128}},
                 "cells[0].inputs: the att-SVM of a run with inputs * (tokens - 1) = 262144 constraints in 16384 "
                 "dimensions needs 36.1 GiB of workspace; at most 16 GiB"},
        BadInput{"cell_count_not_the_grids", {{"d", {4, 8}}, {"cell_count", 3}},
                 "cell_count: is the grid's number of cells, 2 here (got 3)"},
        BadInput{"runs_bound_in_full", {{"runs", 4294967295LL}}, "runs: must be in [1, 4294967294] (got 4294967295)"},
        BadInput{"bad_schedule", {{"checkpoints", {{"schedule", "cubic"}}}}, "checkpoints.schedule: must be one of"},
        BadInput{"log_start_zero", {{"checkpoints", {{"schedule", "log"}, {"start", 0}}}}, "checkpoints.start: must be > 0"},
        BadInput{"times_not_increasing", {{"checkpoints", {{"schedule", "list"}, {"times", {1, 1}}}}},
                 "checkpoints.times[1]: times must be strictly increasing"},
        BadInput{"negative_time", {{"checkpoints", {{"schedule", "list"}, {"times", {-1}}}}},
                 "checkpoints.times[0]: must be >= 0"},
        BadInput{"polarized_eps_out_of_range", {{"stop", {{"polarized_eps", 1.5}}}}, "stop.polarized_eps: must be in (0, 1)"},
        BadInput{"not_an_object", json::array({1, 2}), "(top level): a study must be a JSON object"},
        BadInput{"too_many_fixed_steps", {{"integrator", "gd"}, {"step", 1e-300}}, "cells[0].step: too small"},
        BadInput{"log_range_too_narrow",
                 {{"checkpoints", {{"schedule", "log"}, {"start", 1}, {"stop", 1.0000000000000002}, {"count", 50}}}},
                 "checkpoints: start and stop are too close"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace softflow
