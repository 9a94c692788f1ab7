// Purpose: reproducibility guarantees: identical statistics for 1 and 2 threads, same seed same results, a run's
// initial state independent of the number of runs and of the precision's rounding beyond one cast.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu_backend.h"
#include "engine.h"
#include "test_support.h"

namespace softflow {
namespace {

nlohmann::json mixed_study() {
  return {{"runs", 333},  // not a multiple of the tile or block size
          {"integrator", {"gd", "dopri5"}},
          {"precision", {"float32", "float64"}},
          {"step", 0.5},
          {"sigma_a", 0.1},
          {"checkpoints", {{"schedule", "log"}, {"start", 1}, {"stop", 500}, {"count", 5}}}};
}

std::string run_with_threads(const Study& study, int threads) {
  EngineOptions options{BackendChoice::cpu, threads, false, ""};
  return reproducible_part(run_study(study, options)).dump();
}

TEST(Reproducibility, StatisticsAreBitIdenticalForOneAndTwoThreads) {
  const Study study = testing::study_with(mixed_study());
  ASSERT_EQ(study.cells.size(), 4u);
  EXPECT_EQ(run_with_threads(study, 1), run_with_threads(study, 2));
}

TEST(Reproducibility, SameSeedSameResultsOtherSeedOtherResults) {
  nlohmann::json changes = mixed_study();
  const Study study = testing::study_with(changes);
  const std::string first = run_with_threads(study, 2);
  EXPECT_EQ(first, run_with_threads(study, 2));
  changes["seed"] = 7;
  EXPECT_NE(first, run_with_threads(testing::study_with(changes), 2));
}

TEST(Reproducibility, InitialStateDoesNotDependOnRunCount) {
  nlohmann::json changes = mixed_study();
  changes["runs"] = 40;
  const Study small = testing::study_with(changes);
  changes["runs"] = 400;
  const Study large = testing::study_with(changes);
  CpuCellSimulation<double> a(small, small.cells[1], 1), b(large, large.cells[1], 1);
  for (long long run : {0LL, 17LL, 39LL}) {
    const int p = small.cells[1].shape.state_size();
    EXPECT_EQ(std::vector<double>(a.state(run), a.state(run) + p), std::vector<double>(b.state(run), b.state(run) + p));
    EXPECT_EQ(a.data(run)[0], b.data(run)[0]);
  }
}

TEST(Reproducibility, Float32StartsFromTheRoundedFloat64State) {
  const Study study = testing::study_with(mixed_study());
  // Cells: (gd, float32), (gd, float64), ... : cell 0 and cell 1 differ only in precision, but cells draw from
  // their own streams, so compare the same cell index through draw_initial_state directly.
  const auto as_double = testing::run_setup<double>(study, 5, 0);
  const auto as_float = testing::run_setup<float>(study, 5, 0);
  for (size_t i = 0; i < as_double.theta.size(); ++i) EXPECT_EQ(as_float.theta[i], float(as_double.theta[i]));
}

// The CPU backend keeps the logistic runs' initial states where memory allows and draws them again otherwise; the
// observables (invariant_drift reads them) are the same bits either way, at every checkpoint, for gd (SIMD) and
// dopri5 (scalar) in both precisions.
TEST(Reproducibility, KeptAndRedrawnInitialStatesGiveTheSameObservables) {
  const Study study = testing::study_with(mixed_study());
  for (std::uint32_t c = 0; c < study.cells.size(); ++c) {
    const CellParams& cell = study.cells[c];
    auto observe_all = [&](bool keep) {
      std::vector<CheckpointObservations> all;
      auto run = [&](auto real) {
        CpuCellSimulation<decltype(real)> simulation(study, cell, c, CpuKernel::simd, keep);
        for (size_t k = 0; k < simulation.checkpoint_count(); ++k) {
          all.emplace_back();
          simulation.advance_and_observe(k, all.back(), nullptr);
        }
      };
      if (cell.precision == Precision::float32) run(float()); else run(double());
      return all;
    };
    const std::vector<CheckpointObservations> kept = observe_all(true), redrawn = observe_all(false);
    ASSERT_EQ(kept.size(), redrawn.size());
    for (size_t k = 0; k < kept.size(); ++k)
      for (int o = 0; o < kStateObservableCount; ++o)
        for (size_t r = 0; r < kept[k].values[o].size(); ++r) {
          const double a = kept[k].values[o][r], b = redrawn[k].values[o][r];
          EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << "cell " << c << " checkpoint " << k << " observable "
                                                                  << o << " run " << r << ": " << a << " vs " << b;
        }
    EXPECT_GT(kept.back().values[kInvariantDrift].size(), 0u);
  }
}

TEST(Reproducibility, DifferentRunsAndCellsGetDifferentDraws) {
  const Study study = testing::study_with(mixed_study());
  const auto run0 = testing::run_setup<double>(study, 0, 0);
  const auto run1 = testing::run_setup<double>(study, 1, 0);
  const auto other_cell = testing::run_setup<double>(study, 0, 1);
  EXPECT_NE(run0.theta, run1.theta);
  EXPECT_NE(run0.theta, other_cell.theta);
  EXPECT_NE(run0.data, run1.data);
}

}  // namespace
}  // namespace softflow
