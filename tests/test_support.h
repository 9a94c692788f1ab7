// Purpose: helpers shared by the tests: small studies from JSON overrides, random states and loss data for one
// model configuration, plain integration of one run to a time, and the comparison of two kernels' stops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cell_data.h"
#include "softflow/initial_state.h"
#include "softflow/integrators.h"
#include "study.h"

namespace softflow::testing {

// The built-in default study with `changes` merged over it, parsed.
inline Study study_with(const nlohmann::json& changes) {
  nlohmann::json raw = default_study_json();
  if (changes.contains("checkpoints")) raw.erase("checkpoints");  // a schedule is replaced whole, not merged
  raw.merge_patch(changes);
  return parse_study(raw, "test study");
}

// The InputError message `call` throws, or "" if it returns.
template <class Call>
std::string error_of_call(const Call& call) {
  try {
    call();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// The InputError message of parsing `raw` as the study file "s.json", or "" if it parsed.
inline std::string error_of(const nlohmann::json& raw) {
  return error_of_call([&] { parse_study(raw, "s.json"); });
}

// One run's initial state and loss data for cell 0 of `study`.
template <class Real>
struct RunSetup {
  ModelShape shape;
  std::vector<Real> theta, data;
};
template <class Real>
RunSetup<Real> run_setup(const Study& study, std::uint32_t run, std::uint32_t cell = 0) {
  const CellParams& params = study.cells[cell];
  RunSetup<Real> setup;
  setup.shape = params.shape;
  setup.theta.resize(size_t(params.shape.state_size()));
  setup.data.resize(size_t(params.shape.data_size()));
  draw_initial_state(params.shape, init_params(params), study.seed, cell, run, setup.theta.data());
  draw_loss_data(params, study.seed, cell, params.data_shared() ? kSharedRunId : run, setup.data.data());
  return setup;
}

// Integrates theta from t = 0 to t_end with a fixed-step method (t_end a whole number of steps) or dopri5.
template <class Real>
RunRecord integrate(const ModelShape& shape, Method method, double step, double t_end, std::vector<Real>& theta,
                    const std::vector<Real>& data, AdaptiveRule rule = {}) {
  std::vector<Real> work(size_t(integrator_workspace_size(shape, method)));
  RunRecord rec;
  if (method == Method::dopri5)
    advance_adaptive(shape, rule, t_end, StopRule{}, theta.data(), data.data(), rec, work.data());
  else
    advance_fixed_step(shape, method, step, 0, (long long)(t_end / step + 0.5), StopRule{}, theta.data(),
                       data.data(), rec, work.data());
  return rec;
}

// dopri5 tolerances tight enough that the integration error is far below what a test checks.
inline AdaptiveRule tight_rule(double rtol = 1e-10) {
  AdaptiveRule rule;
  rule.rtol = rtol;
  rule.atol = rtol * 1e-2;
  return rule;
}

// max over entries of |x - y| / max(1, |y|).
template <class Real, class Reference>
double max_relative_difference(const std::vector<Real>& x, const std::vector<Reference>& y) {
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, std::abs(double(x[i]) - double(y[i])) / std::max(1.0, std::abs(double(y[i]))));
  return worst;
}

// Max-norm of a - b.
template <class Real>
double max_difference(const std::vector<Real>& a, const std::vector<Real>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
  return worst;
}

// Final states and records of every run of cell 0 under one kernel or backend, after all checkpoints.
template <class Real>
struct KernelRun {
  std::vector<Real> states;  // runs x state_size
  std::vector<RunRecord> records;
  int state_size = 0;
  std::vector<double> state(size_t run) const {
    return std::vector<double>(states.begin() + run * state_size, states.begin() + (run + 1) * state_size);
  }
};

// How far the scalar kernel's final state of `run` (cell 0, integrated from t = 0 to the last checkpoint) moves
// when every entry of its initial state is perturbed by a relative 1e-15: the amplification of rounding the run's
// own dynamics imposes, whatever kernel computes them.
inline double rounding_sensitivity(const Study& study, std::uint32_t run) {
  const CellParams& cell = study.cells[0];
  auto exact = run_setup<double>(study, run), perturbed = exact;
  for (size_t i = 0; i < perturbed.theta.size(); ++i) perturbed.theta[i] *= 1 + (i % 2 ? 1e-15 : -1e-15);
  const double t_end = study.checkpoint_times.back();
  integrate(cell.shape, cell.method, cell.step, t_end, exact.theta, exact.data);
  integrate(cell.shape, cell.method, cell.step, t_end, perturbed.theta, perturbed.data);
  return max_relative_difference(perturbed.theta, exact.theta);
}

// Every run's record and, unless it diverged, its state agree between a kernel's (or backend's) run and the
// reference's (float64); returns how many stopped. A diverged run's overflow step is not compared: an exploding
// iteration is chaotic long before it overflows, so rounding decides the step (seen here: one gd run of 96
// overflowed at step 375 under one kernel and 476 under the other, along trajectories that had parted by 1e48 in
// scale). Both must call it diverged, at a step consistent with its stop time. A running run's state agrees to
// 1e-10 relative, or, where its own dynamics amplify rounding, to 100 times that amplification (rk4 at a step near
// its stability limit: a 1e-15 perturbation of the initial state grows to as much as 8e-5 in the SIMD tests' study,
// and the CPU kernels differed by at most 3.3 times a run's amplification).
inline int expect_same_stops(const Study& study, const KernelRun<double>& run, const KernelRun<double>& reference) {
  const double step = study.cells[0].step;
  int stopped = 0;
  for (size_t r = 0; r < run.records.size(); ++r) {
    const RunRecord &a = run.records[r], &b = reference.records[r];
    EXPECT_EQ(a.status, b.status) << r;
    stopped += a.status != RunStatus::running;
    if (b.status == RunStatus::diverged) {
      EXPECT_EQ(a.stop_time, double(a.steps) * step) << r;
      continue;
    }
    EXPECT_EQ(a.steps, b.steps) << r;
    EXPECT_EQ(a.stop_time, b.stop_time) << r;
    EXPECT_EQ(a.t, b.t) << r;
    for (int k = 0; k < kPassageCount; ++k) EXPECT_EQ(a.first_time[k], b.first_time[k]) << r << " " << k;
    const double difference = max_relative_difference(run.state(r), reference.state(r));
    if (difference >= 1e-10 && b.status == RunStatus::running) {
      const double sensitivity = rounding_sensitivity(study, std::uint32_t(r));
      EXPECT_LT(difference, 100 * sensitivity) << r << ": rounding sensitivity " << sensitivity;
    } else {
      EXPECT_LT(difference, 1e-10) << r;
    }
  }
  return stopped;
}

}  // namespace softflow::testing
