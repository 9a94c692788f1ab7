// Purpose: helpers shared by the tests: small studies from JSON overrides, random states and loss data for one
// model configuration, and plain integration of one run to a time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

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
  std::vector<Real> work(size_t(integrator_workspace_size(shape)));
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

}  // namespace softflow::testing
