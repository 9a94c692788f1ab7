// Purpose: known answers of the value-softmax flow (science.md section 1) run through the CPU backend: logistic
// from a(0) = 0 never reorders the logits, selects argmax u(0) and grows its u (u_winner); square loss to one
// target reaches zero loss while the softmax stays high-entropy; stopping rules freeze runs; diverging runs are
// counted, never crash; sum a is kept (and reported) by the V, a flow, not by the tied one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cpu_backend.h"
#include "softflow/flow.h"
#include "engine.h"
#include "test_support.h"

namespace softflow {
namespace {

// Indices of x sorted by value.
std::vector<int> order_of(const double* x, int n) {
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int i, int j) { return x[i] < x[j]; });
  return order;
}

TEST(LogisticFromZeroLogits, KeepsTheOrderOfInitialFitnessAndSelectsItsArgmax) {
  const Study study = testing::study_with({{"runs", 96}, {"rtol", 1e-9}, {"atol", 1e-12},
                                           {"checkpoints", {{"schedule", "list"}, {"times", {0, 10, 300, 3000}}}}});
  const CellParams& cell = study.cells[0];
  const ModelShape& shape = cell.shape;
  CpuCellSimulation<double> simulation(study, cell, 0);
  std::vector<std::vector<int>> fitness_order(size_t(study.runs));
  std::vector<int> fitness_winner(size_t(study.runs));
  for (long long run = 0; run < study.runs; ++run) {
    // u(0) = V(0)^T beta*.
    const double* v = simulation.state(run);
    const double* target = simulation.data(run);
    std::vector<double> u(size_t(shape.n), 0.0);
    for (int i = 0; i < shape.d; ++i)
      for (int j = 0; j < shape.n; ++j) u[size_t(j)] += v[i * shape.n + j] * target[i];
    fitness_order[size_t(run)] = order_of(u.data(), shape.n);
    fitness_winner[size_t(run)] = fitness_order[size_t(run)].back();
  }
  CheckpointObservations observations;
  std::vector<double> previous_u_winner(size_t(study.runs), -1e300);
  for (size_t c = 0; c < simulation.checkpoint_count(); ++c) {
    simulation.advance_and_observe(c, observations, nullptr);
    if (c == 0) continue;  // a(0) = 0: all tied
    for (long long run = 0; run < study.runs; ++run) {
      const double* a = simulation.state(run) + shape.matrix_size();
      EXPECT_EQ(order_of(a, shape.n), fitness_order[size_t(run)]) << "run " << run << " t " << observations.t;
      EXPECT_EQ(observations.winner[size_t(run)], fitness_winner[size_t(run)]);
      EXPECT_EQ(simulation.record(run).argmax_u0, fitness_winner[size_t(run)]);
      EXPECT_EQ(simulation.record(run).argmax_a0, -1);  // tied maximum at a(0) = 0
      // u_winner = u(t)_w: the largest fitness (the flow keeps u's order), growing (du_w/dt = g s_w > 0).
      const double* v = simulation.state(run);
      const double* target = simulation.data(run);
      std::vector<double> u(size_t(shape.n), 0.0);
      for (int i = 0; i < shape.d; ++i)
        for (int j = 0; j < shape.n; ++j) u[size_t(j)] += v[i * shape.n + j] * target[i];
      const double u_winner = observations.values[kUWinner][size_t(run)];
      EXPECT_NEAR(u_winner, u[size_t(fitness_winner[size_t(run)])], 1e-14 * std::abs(u_winner));
      EXPECT_EQ(u_winner, *std::max_element(u.begin(), u.end()));
      EXPECT_GT(u_winner, previous_u_winner[size_t(run)]);
      previous_u_winner[size_t(run)] = u_winner;
    }
  }
  // The winner keeps growing: the last checkpoint's s_max is larger than at t = 300 for every run (monotone flow).
  EXPECT_GT(observations.values[kSMax][0], 0.5);
}

TEST(SquareLossToOneTarget, ReachesZeroLossWhileEntropyStaysHigh) {
  const Study study = testing::study_with(
      {{"loss", "square"}, {"d", 10}, {"n", 10}, {"mu_a", 1.0}, {"sigma_a", 0.1}, {"target", "shared"},
       {"runs", 256}, {"checkpoints", {{"schedule", "list"}, {"times", {0, 1000}}}}});
  const nlohmann::json results = run_study(study, EngineOptions{BackendChoice::cpu, 0, false, ""});
  const nlohmann::json& last = results["cells"][0]["checkpoints"][1]["observables"];
  EXPECT_LT(last["loss"]["quantiles"]["q99"].get<double>(), 1e-6);
  EXPECT_GT(last["entropy_ratio"]["mean"].get<double>(), 0.9);
  const nlohmann::json& first = results["cells"][0]["checkpoints"][0]["observables"];
  EXPECT_GT(first["loss"]["mean"].get<double>(), 0.1);  // it did start away from the target
}

TEST(Stopping, PolarizedRunsFreezeAndKeepReportingTheirState) {
  const Study study = testing::study_with({{"runs", 64}, {"stop", {{"polarized_eps", 0.1}}},
                                           {"checkpoints", {{"schedule", "list"}, {"times", {0, 3000, 10000}}}}});
  CpuCellSimulation<double> simulation(study, study.cells[0], 0);
  CheckpointObservations at_3000, at_10000;
  simulation.advance_and_observe(0, at_3000, nullptr);
  simulation.advance_and_observe(1, at_3000, nullptr);
  simulation.advance_and_observe(2, at_10000, nullptr);
  int stopped = 0;
  for (long long run = 0; run < study.runs; ++run) {
    const RunRecord& rec = simulation.record(run);
    if (rec.status != RunStatus::polarized) continue;
    ++stopped;
    EXPECT_GE(at_10000.values[kSMax][size_t(run)], 0.9);
    EXPECT_LT(rec.stop_time, 10000.0);
    if (at_3000.records[size_t(run)].status == RunStatus::polarized)
      EXPECT_EQ(at_3000.values[kSMax][size_t(run)], at_10000.values[kSMax][size_t(run)]);  // frozen
  }
  EXPECT_GT(stopped, 32);
}

TEST(Divergence, DivergingRunsAreCountedAndExcludedFromStatistics) {
  // gd with a step far beyond stability on the square loss overflows within a few steps.
  const Study study = testing::study_with(
      {{"loss", "square"}, {"integrator", "gd"}, {"step", 50.0}, {"sigma_v", 1.0}, {"runs", 100},
       {"checkpoints", {{"schedule", "list"}, {"times", {0, 50000}}}}});
  const nlohmann::json results = run_study(study, EngineOptions{BackendChoice::cpu, 0, false, ""});
  const nlohmann::json& last = results["cells"][0]["checkpoints"][1];
  EXPECT_EQ(last["counts"]["diverged"].get<long long>(), 100);
  EXPECT_FALSE(last["observables"].contains("loss"));  // no finite value left to summarize
  EXPECT_TRUE(last["fractions"]["s_max_ge_0_9"].is_null());
}

TEST(Invariants, SumAIsReportedOnlyWhereTheFlowKeepsIt) {
  // V, a: d(sum a)/dt = 1^T C(s) V^T r = 0, so rk4 keeps sum a to rounding.
  const Study value_softmax = testing::study_with(
      {{"loss", "square"}, {"integrator", "rk4"}, {"step", 0.05}, {"sigma_v", 1.0}, {"sigma_a", 1.0}, {"runs", 64},
       {"checkpoints", {{"schedule", "list"}, {"times", {0, 20}}}}});
  const nlohmann::json kept = run_study(value_softmax, EngineOptions{BackendChoice::cpu, 0, false, ""});
  const nlohmann::json& drift = kept["cells"][0]["checkpoints"][1]["observables"]["sum_a_drift"];
  EXPECT_EQ(drift["count"].get<long long>(), 64);
  EXPECT_LT(std::max(-drift["min"].get<double>(), drift["max"].get<double>()), 1e-12);
  EXPECT_FALSE(kept["cells"][0]["checkpoints"][1]["observables"].contains("u_winner"));  // logistic loss only
  // Tied: d(sum a)/dt = (U 1)^T g, not zero, so there is no invariant to report.
  ModelShape tied;
  tied.model = ModelKind::tied;
  tied.d = tied.n = 3;
  const std::vector<double> theta = {1.0, 2.0, 0.0, 0.0, 1.0, 0.5, -1.0, 0.0, 1.0, 0.3, -0.2, 0.4};  // U, a
  const std::vector<double> beta_star = {0.6, 0.0, 0.8};
  std::vector<double> dtheta(theta.size()), scratch(size_t(tied.scratch_size()));
  evaluate_flow(tied, theta.data(), beta_star.data(), dtheta.data(), scratch.data());
  EXPECT_GT(std::abs(dtheta[9] + dtheta[10] + dtheta[11]), 1e-3);
  const nlohmann::json tied_results = run_study(testing::study_with({{"model", "tied"}, {"n", 6}, {"runs", 16}}),
                                                EngineOptions{BackendChoice::cpu, 0, false, ""});
  for (const auto& checkpoint : tied_results["cells"][0]["checkpoints"]) {
    EXPECT_FALSE(checkpoint["observables"].contains("sum_a_drift"));
    EXPECT_FALSE(checkpoint["observables"].contains("u_winner"));  // u = V^T beta* is the V, a model's
    EXPECT_TRUE(checkpoint["observables"].contains("winner_col_norm"));
  }
}

}  // namespace
}  // namespace softflow

namespace softflow {
namespace {

// s_max of a state. theta: state_size().
double s_max_of(const ModelShape& shape, const std::vector<double>& theta) {
  std::vector<double> s(size_t(shape.n));
  state_softmax(shape, theta.data(), s.data());
  return *std::max_element(s.begin(), s.end());
}

// First time s_max >= 0.9 of each run of cell 0 over its checkpoints (-1: never).
std::vector<double> first_passages_to_0_9(const Study& study) {
  CpuCellSimulation<double> simulation(study, study.cells[0], 0);
  CheckpointObservations observations;
  for (size_t c = 0; c < simulation.checkpoint_count(); ++c) simulation.advance_and_observe(c, observations, nullptr);
  std::vector<double> times;
  for (long long run = 0; run < study.runs; ++run) times.push_back(simulation.record(run).first_time[0]);
  return times;
}

TEST(FirstPassage, GradientDescentReportsTheFirstStepAtOrAboveTheThreshold) {
  const Study study = testing::study_with({{"runs", 16}, {"integrator", "gd"}, {"step", 0.5},
                                           {"checkpoints", {{"schedule", "list"}, {"times", {0, 3000}}}}});
  const std::vector<double> passages = first_passages_to_0_9(study);
  int crossed = 0;
  for (long long run = 0; run < study.runs; ++run) {
    const double first = passages[size_t(run)];
    if (first < 0) continue;
    ++crossed;
    const long long k = std::llround(first / 0.5);
    auto setup = testing::run_setup<double>(study, std::uint32_t(run));
    testing::integrate(setup.shape, Method::gd, 0.5, double(k - 1) * 0.5, setup.theta, setup.data);
    EXPECT_LT(s_max_of(setup.shape, setup.theta), 0.9) << "run " << run;
    testing::integrate(setup.shape, Method::gd, 0.5, 0.5, setup.theta, setup.data);
    EXPECT_GE(s_max_of(setup.shape, setup.theta), 0.9) << "run " << run;
  }
  EXPECT_GT(crossed, 8);
}

TEST(FirstPassage, Dopri5LocatesTheCrossingOnItsDenseOutput) {
  const Study study = testing::study_with({{"runs", 16}, {"checkpoints", {{"schedule", "list"}, {"times", {0, 3000}}}}});
  const std::vector<double> passages = first_passages_to_0_9(study);
  int crossed = 0;
  for (long long run = 0; run < study.runs; ++run) {
    const double first = passages[size_t(run)];
    if (first < 0) continue;
    ++crossed;
    auto setup = testing::run_setup<double>(study, std::uint32_t(run));
    const AdaptiveRule tight = testing::tight_rule();
    testing::integrate(setup.shape, Method::dopri5, 0, first, setup.theta, setup.data, tight);
    // The dense output puts s_max within ~1e-5 of the threshold here; linear interpolation between steps (the tied
    // model's fallback) misses by up to ~1e-3 on the same runs.
    EXPECT_NEAR(s_max_of(setup.shape, setup.theta), 0.9, 5e-5) << "run " << run << " t " << first;
  }
  EXPECT_GT(crossed, 8);
}

}  // namespace
}  // namespace softflow

namespace softflow {
namespace {

// The checkpoints of cell 0 as JSON, for a study with the given checkpoint times.
nlohmann::json checkpoints_at(nlohmann::json changes, std::vector<double> times) {
  changes["checkpoints"] = {{"schedule", "list"}, {"times", times}};
  changes["runs"] = 50;
  const nlohmann::json results = run_study(testing::study_with(changes), EngineOptions{BackendChoice::cpu, 0, false, ""});
  return results["cells"][0]["checkpoints"];
}

TEST(Checkpoints, AFirstCheckpointAfterZeroIsIntegratedTo) {
  for (const char* method : {"gd", "rk4", "dopri5"}) {
    const nlohmann::json changes = {{"integrator", method}, {"step", 0.1}, {"sigma_a", 0.2}};
    const nlohmann::json with_zero = checkpoints_at(changes, {0, 1, 2});
    const nlohmann::json without = checkpoints_at(changes, {1, 2});
    ASSERT_EQ(without.size(), 2u);
    EXPECT_EQ(without[0], with_zero[1]) << method;
    EXPECT_EQ(without[1], with_zero[2]) << method;
    EXPECT_GT(without[0]["observables"]["steps"]["min"].get<double>(), 0) << method;
  }
}

TEST(Checkpoints, Dopri5HandlesCheckpointsCloserThanItsTimeResolution) {
  const nlohmann::json checkpoints = checkpoints_at({}, {0, 1000, 1000.000000001, 2000});
  EXPECT_EQ(checkpoints[3]["counts"]["failed"], 0);
  EXPECT_EQ(checkpoints[3]["counts"]["running"], 50);
}

}  // namespace
}  // namespace softflow
