// Purpose: the cells of runs that the CPU emulation tests of the CUDA kernels (tests/block_kernel_emulation_test.cpp,
// tests/fused_kernel_emulation_test.cpp) advance on both sides, and their comparisons: initial states and data
// drawn as the backends draw them, the CPU reference of a fixed-step segment (advance_fixed_step), the kernels'
// arguments for the same cell, the agreement of states and records, and a dopri5 kernel's run against
// advance_adaptive.
// Shapes: states runs x state_size (run-major), data runs x data_size, records runs.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "adaptive_records.h"
#include "block_dopri5.cuh"
#include "fixed_step_segment.cuh"
#include "softflow/initial_state.h"
#include "softflow/integrators.h"

namespace softflow::emulated {

inline constexpr std::uint64_t kSeed = 20251123;
inline constexpr std::uint32_t kCell = 2;

// One cell's runs: initial states from draw_initial_state (so the observation can redraw V(0)), per-run data
// (targets from draw_target_vector; regression X and y drawn here), records from initial_record.
template <class Real>
struct Cell {
  ModelShape shape;
  InitParams init;
  int runs = 0, p = 0, q = 0;
  std::vector<Real> states, data;
  std::vector<RunRecord> records;
  Real* state(int r) { return states.data() + size_t(r) * p; }
  const Real* data_of(int r) const { return data.data() + size_t(r) * q; }
};

inline ModelShape value_softmax(int d, int n, LossKind loss) {
  ModelShape shape;
  shape.loss = loss;
  shape.d = d;
  shape.n = n;
  shape.m = loss == LossKind::regression ? 7 : 0;
  return shape;
}

inline ModelShape tied(int dim) {
  ModelShape shape;
  shape.model = ModelKind::tied;
  shape.d = shape.n = dim;
  return shape;
}

inline const char* loss_name(LossKind loss) {
  switch (loss) {
    case LossKind::logistic: return "logistic";
    case LossKind::square: return "square";
    case LossKind::cross_entropy: return "cross_entropy";
    case LossKind::regression: return "regression";
    default: return "?";
  }
}

inline std::string label_of(const ModelShape& shape) {
  return std::string(shape.model == ModelKind::tied ? "tied " : "") + std::to_string(shape.d) + "x" +
         std::to_string(shape.n) + " " + loss_name(shape.loss);
}

// Run r's loss data (data_size() entries): regression X and y drawn here, other losses' targets by
// draw_target_vector.
template <class Real>
void draw_run_data(const ModelShape& shape, const InitParams& init, int r, Real* data) {
  if (shape.loss == LossKind::regression) {
    std::mt19937_64 generator(kSeed + std::uint64_t(r));
    std::normal_distribution<double> normal;
    for (int i = 0; i < shape.m * shape.d; ++i) data[i] = Real(normal(generator) / std::sqrt(double(shape.d)));
    for (int k = 0; k < shape.m; ++k) data[shape.m * shape.d + k] = Real(normal(generator));
  } else {
    draw_target_vector(shape, init, kSeed, kCell, std::uint32_t(r), data);
  }
}

// The cell's runs; with `shared` (data_size() entries) they share that one data set (q = 0, so that data_of(r) is
// it for every run), else each run's data is drawn here.
template <class Real>
Cell<Real> make_cell(const ModelShape& shape, const InitParams& init, int runs,
                     const std::vector<double>& shared = {}) {
  Cell<Real> cell;
  cell.shape = shape;
  cell.init = init;
  cell.runs = runs;
  cell.p = shape.state_size();
  cell.q = shared.empty() ? shape.data_size() : 0;
  cell.states.resize(size_t(runs) * cell.p);
  if (shared.empty())
    cell.data.resize(size_t(runs) * cell.q);
  else
    cell.data.assign(shared.begin(), shared.end());
  cell.records.resize(size_t(runs));
  std::vector<Real> scratch(size_t(shape.scratch_size()));
  for (int r = 0; r < runs; ++r) {
    draw_initial_state(shape, init, kSeed, kCell, std::uint32_t(r), cell.state(r));
    Real* data = cell.data.data() + size_t(r) * cell.q;
    if (shared.empty()) draw_run_data(shape, init, r, data);
    cell.records[size_t(r)] = initial_record(shape, cell.state(r), data, scratch.data());
  }
  return cell;
}

// |x - y| / max(1, |y|) at worst (as test_support.h's max_relative_difference), infinite where exactly one is NaN.
template <class Real>
double max_relative_difference(const std::vector<Real>& x, const std::vector<Real>& y) {
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = double(x[i]), b = double(y[i]);
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) != std::isnan(b)) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(a - b) / std::max(1.0, std::abs(b)));
  }
  return worst;
}

inline bool near(double a, double b, double tolerance) {
  return (std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= tolerance * std::max(1.0, std::abs(b));
}

// Fixed-step records: every field equal, but last_s_max (a rounded s_max: the block sums in another order) to
// `tolerance` (1e-12 for float64).
inline void expect_same_fixed_records(const std::vector<RunRecord>& kernel, const std::vector<RunRecord>& cpu,
                               const std::string& label, double tolerance = 1e-12) {
  ASSERT_EQ(kernel.size(), cpu.size());
  for (size_t r = 0; r < cpu.size(); ++r) {
    const RunRecord &a = kernel[r], &b = cpu[r];
    const std::string where = label + " run " + std::to_string(r);
    EXPECT_EQ(a.status, b.status) << where;
    EXPECT_EQ(a.t, b.t) << where;
    EXPECT_EQ(a.h, b.h) << where;
    EXPECT_EQ(a.stop_time, b.stop_time) << where;
    EXPECT_EQ(a.steps, b.steps) << where;
    EXPECT_EQ(a.rejected, b.rejected) << where;
    EXPECT_EQ(a.last_check_t, b.last_check_t) << where;
    EXPECT_TRUE(near(a.last_s_max, b.last_s_max, tolerance)) << where << ": " << a.last_s_max << " vs " << b.last_s_max;
    for (int k = 0; k < kPassageCount; ++k) EXPECT_EQ(a.first_time[k], b.first_time[k]) << where << " passage " << k;
    EXPECT_EQ(a.sum_a0, b.sum_a0) << where;
    EXPECT_EQ(a.argmax_a0, b.argmax_a0) << where;
    EXPECT_EQ(a.argmax_u0, b.argmax_u0) << where;
  }
}

using testing::expect_same_adaptive_records;  // dopri5 records (tests/adaptive_records.h)

inline int count_status(const std::vector<RunRecord>& records, RunStatus status) {
  return int(std::count_if(records.begin(), records.end(), [&](const RunRecord& r) { return r.status == status; }));
}

// The CPU reference of one fixed-step segment: advance_fixed_step on every running run (as the CPU backend).
template <class Real>
void cpu_fixed_segment(Cell<Real>& cell, Method method, double step, long long from, long long to,
                       const StopRule& stop) {
  std::vector<Real> work(size_t(integrator_workspace_size(cell.shape, method)));
  for (int r = 0; r < cell.runs; ++r) {
    RunRecord& rec = cell.records[size_t(r)];
    if (rec.status == RunStatus::running)
      advance_fixed_step(cell.shape, method, step, from, to, stop, cell.state(r), cell.data_of(r), rec, work.data());
  }
}

template <class Real>
FixedStepSegmentArgs<Real> segment_args(Cell<Real>& cell, double step, long long from, long long to,
                                        const StopRule& stop) {
  return FixedStepSegmentArgs<Real>{
      cell.shape, step, from, to, stop, cell.runs, cell.states.data(), cell.records.data(), cell.data.data(), cell.q};
}

inline const LossKind kValueLosses[] = {LossKind::logistic, LossKind::square, LossKind::cross_entropy,
                                        LossKind::regression};

inline InitParams spread(double sigma_v, double sigma_a = 0.3) {
  InitParams init;
  init.sigma_v = sigma_v;
  init.sigma_a = sigma_a;
  return init;
}

// V of scale 1 / sqrt(d), so that beta = V s is of order one whatever d and the steps below stay well inside gd's
// and rk4's stability regions: the trajectories do not amplify rounding (with V of scale one, 300x3 square runs
// amplify a 1e-15 perturbation of the initial state to 7e-11 in 40 gd steps and to 5e-6 in 25 rk4 steps, on the
// CPU alone).
inline InitParams spread_for(const ModelShape& shape) { return spread(1.0 / std::sqrt(double(shape.d))); }

// dopri5 by `advance(AdaptiveSegmentArgs<Real>)` (a kernel's entry point) and by advance_adaptive over checkpoints
// `times` (the first 0: the starting step is chosen there); states to `tolerance`, records as
// expect_same_adaptive_records. Returns the CPU's cell.
template <class Real, class Advance>
Cell<Real> compare_dopri5(const Advance& advance, const ModelShape& shape, const InitParams& init, int runs,
                          const AdaptiveRule& rule, const StopRule& stop, const std::vector<double>& times,
                          double tolerance, const std::string& label) {
  Cell<Real> cpu = make_cell<Real>(shape, init, runs), emulated = cpu;
  std::vector<Real> work(size_t(integrator_workspace_size(shape, Method::dopri5)));
  for (double t_end : times) {
    for (int r = 0; r < runs; ++r)
      if (cpu.records[size_t(r)].status == RunStatus::running)
        advance_adaptive(shape, rule, t_end, stop, cpu.state(r), cpu.data_of(r), cpu.records[size_t(r)], work.data());
    advance(AdaptiveSegmentArgs<Real>{shape, rule, t_end, stop, runs, emulated.states.data(), emulated.records.data(),
                                      emulated.data.data(), emulated.q});
    const std::string where = label + " t " + std::to_string(t_end);
    EXPECT_LE(max_relative_difference(emulated.states, cpu.states), tolerance) << where;
    expect_same_adaptive_records(emulated.records, cpu.records, where);
  }
  return cpu;
}

// Tolerances at which dopri5 follows the exact flow to ~1e-9, so that two summation orders agree to about that.
inline AdaptiveRule tight_rule() {
  AdaptiveRule rule;
  rule.rtol = 1e-9;
  rule.atol = 1e-12;
  return rule;
}

}  // namespace softflow::emulated
