// Purpose: the integrators of the gradient flow (gd = explicit Euler, normalized gd, classical rk4, Dormand-Prince
// 5(4) with a per-run adaptive step), written once for both backends. Each advances one run's flat state from one checkpoint
// to the next, checking every evaluated state for divergence, first passages and stopping (apply_checks).
// Workspace: integrator_workspace_size(shape, method) Reals per run.
#pragma once

#include "softflow/flow.h"
#include "softflow/hostdevice.h"
#include "softflow/run_record.h"

namespace softflow {

// normalized_gd: each parameter block steps by h g / (||g|| + kNormalizedGdEps), g = -grad L on that block.
enum class Method : int { gd = 0, rk4 = 1, dopri5 = 2, normalized_gd = 3 };

constexpr double kNormalizedGdEps = 1e-12;

// The parameter blocks normalized gd normalizes separately, as [0, ends[0]), [ends[0], ends[1]), ...: value_softmax
// and tied: the matrix, then a; attention: p, or W, or v then p. Returns the number of blocks (1 or 2).
SOFTFLOW_HD inline int parameter_blocks(const ModelShape& shape, int ends[2]) {
  if (shape.model == ModelKind::attention && shape.trainable != AttentionTrainable::vp) {
    ends[0] = shape.state_size();
    return 1;
  }
  ends[0] = shape.model == ModelKind::attention ? shape.d : shape.matrix_size();
  ends[1] = shape.state_size();
  return 2;
}

// theta += h g / (||g|| + kNormalizedGdEps) block by block. theta, g: state_size().
template <class Real>
SOFTFLOW_HD inline void normalized_step(const ModelShape& shape, Real h, const Real* g, Real* theta) {
  int ends[2];
  const int blocks = parameter_blocks(shape, ends);
  for (int b = 0, begin = 0; b < blocks; begin = ends[b], ++b) {
    double norm_sq = 0;
    for (int i = begin; i < ends[b]; ++i) norm_sq += double(g[i]) * double(g[i]);
    const Real scale = h / Real(sqrt(norm_sq) + kNormalizedGdEps);
    for (int i = begin; i < ends[b]; ++i) theta[i] += scale * g[i];
  }
}

struct AdaptiveRule {
  double rtol = 1e-6;
  double atol = 1e-9;
  double initial_step = 0;     // 0 = choose per run (Hairer-Norsett-Wanner's starting-step heuristic)
  long long max_steps = 0;     // accepted + rejected steps per run over the whole study; 0 = no limit
};

// State-sized vectors a method keeps in its workspace: gd and normalized gd the gradient; rk4 four stage derivatives
// and a trial state; dopri5 seven stage derivatives, a trial state and the error estimate.
SOFTFLOW_HD inline int integrator_stage_vectors(Method method) {
  return method == Method::dopri5 ? 9 : method == Method::rk4 ? 5 : 1;
}

// Reals of workspace one run needs: the method's stage vectors, then the model's scratch. Every layout starts with
// a state-sized vector and has the scratch after it, so observe_run(..., work, work + state_size(), ...) fits in any.
SOFTFLOW_HD inline int integrator_workspace_size(const ModelShape& shape, Method method) {
  return integrator_stage_vectors(method) * shape.state_size() + shape.scratch_size();
}

// out = x + sum_j c_j k_j over `count` stages. x, out, k_j: p. (out may alias x.)
template <class Real>
SOFTFLOW_HD inline void axpy_stages(int p, const Real* x, Real h, const double* c, Real* const* k, int count,
                                    Real* out) {
  for (int i = 0; i < p; ++i) {
    Real increment = 0;
    for (int j = 0; j < count; ++j) increment += Real(c[j]) * k[j][i];
    out[i] = x[i] + h * increment;
  }
}

// Fixed-step integration (gd, normalized_gd, rk4) from step k_from to step k_to (t = k h). Stops early if the run stops.
// theta: state_size() in/out; data: data_size(); work: integrator_workspace_size(shape, method).
template <class Real>
SOFTFLOW_HD inline void advance_fixed_step(const ModelShape& shape, Method method, double step, long long k_from,
                                           long long k_to, const StopRule& stop, Real* theta, const Real* data,
                                           RunRecord& rec, Real* work) {
  const int p = shape.state_size();
  Real* k1 = work;
  Real* k2 = k1 + p;
  Real* k3 = k2 + p;
  Real* k4 = k3 + p;
  Real* trial = k4 + p;
  Real* scratch = method == Method::rk4 ? trial + p : k2;  // gd and normalized gd keep k1 only
  const Real h = Real(step);
  for (long long k = k_from; k < k_to; ++k) {
    const double t = double(k) * step;
    rec.t = t;
    const FlowEval<Real> eval = evaluate_flow(shape, theta, data, k1, scratch);
    if (!apply_checks(eval, t, stop, false, rec)) return;
    if (method == Method::gd) {
      for (int i = 0; i < p; ++i) theta[i] += h * k1[i];
    } else if (method == Method::normalized_gd) {
      normalized_step(shape, h, k1, theta);
    } else {
      const Real half = h / Real(2);
      for (int i = 0; i < p; ++i) trial[i] = theta[i] + half * k1[i];
      evaluate_flow(shape, trial, data, k2, scratch);
      for (int i = 0; i < p; ++i) trial[i] = theta[i] + half * k2[i];
      evaluate_flow(shape, trial, data, k3, scratch);
      for (int i = 0; i < p; ++i) trial[i] = theta[i] + h * k3[i];
      evaluate_flow(shape, trial, data, k4, scratch);
      for (int i = 0; i < p; ++i) theta[i] += h / Real(6) * (k1[i] + Real(2) * (k2[i] + k3[i]) + k4[i]);
    }
    ++rec.steps;
  }
  rec.t = double(k_to) * step;
}

// Dormand-Prince 5(4) tableau (Hairer, Norsett, Wanner, Solving ODEs I, table 5.2). Row j of `a` gives the
// weights of stages 1..j for stage j+1 (row 6: the 5th-order solution, whose derivative is the next k1: FSAL);
// `e` gives the 5th-order minus embedded 4th-order weights of stages 1..7. The system is autonomous, so no c_i.
struct Dopri5Tableau {
  double a[7][6] = {{0, 0, 0, 0, 0, 0},
                    {1.0 / 5, 0, 0, 0, 0, 0},
                    {3.0 / 40, 9.0 / 40, 0, 0, 0, 0},
                    {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0},
                    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0},
                    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0},
                    {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
  double e[7] = {71.0 / 57600, 0.0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};
};

// One term of scaled_rms: (x / (atol + rtol max(|y|, |z|)))^2, in double.
template <class Real>
SOFTFLOW_HD inline double scaled_square(Real x, Real y, Real z, const AdaptiveRule& rule) {
  const double scale = rule.atol + rule.rtol * max_of(abs_of(double(y)), abs_of(double(z)));
  const double ratio = double(x) / scale;
  return ratio * ratio;
}

// Root-mean-square of x_i / (atol + rtol max(|y_i|, |z_i|)). x, y, z: p.
template <class Real>
SOFTFLOW_HD inline double scaled_rms(int p, const Real* x, const Real* y, const Real* z, const AdaptiveRule& rule) {
  double total = 0;
  for (int i = 0; i < p; ++i) total += scaled_square(x[i], y[i], z[i], rule);
  return sqrt(total / p);
}

// Hairer-Norsett-Wanner's starting step (Solving ODEs I, II.4) for an order-5 method, in two halves shared by the
// backends. The probe step h0 from d0 = ||theta|| and d1 = ||f(theta)|| (scaled_rms norms)...
SOFTFLOW_HD inline double dopri5_probe_step(double d0, double d1) {
  return (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
}
// ... and the starting step from h0, d1 and d2 = ||f(theta + h0 f(theta)) - f(theta)|| / h0.
SOFTFLOW_HD inline double dopri5_starting_step(double h0, double d1, double d2) {
  const double dmax = max_of(d1, d2);
  const double h1 = dmax <= 1e-15 ? max_of(1e-6, h0 * 1e-3) : pow(0.01 / dmax, 0.2);
  return min_of(100 * h0, h1);
}

// The starting step of one run. k1 = f(theta) on entry.
template <class Real>
SOFTFLOW_HD inline double dopri5_initial_step(const ModelShape& shape, const AdaptiveRule& rule, const Real* theta,
                                              const Real* data, const Real* k1, Real* k2, Real* trial,
                                              Real* scratch) {
  const int p = shape.state_size();
  const double d1 = scaled_rms(p, k1, theta, theta, rule);
  const double h0 = dopri5_probe_step(scaled_rms(p, theta, theta, theta, rule), d1);
  for (int i = 0; i < p; ++i) trial[i] = theta[i] + Real(h0) * k1[i];
  evaluate_flow(shape, trial, data, k2, scratch);
  for (int i = 0; i < p; ++i) trial[i] = k2[i] - k1[i];
  return dopri5_starting_step(h0, d1, scaled_rms(p, trial, theta, theta, rule) / h0);
}

// The step control of advance_adaptive, shared by the backends' dopri5 loops. What the next step does: take a step
// of h (clipped: it lands on t_end), stop at t_end (already there), or nothing (the run failed: its step collapsed
// or it exceeded max_steps; rec says so).
enum class StepAction : int { take, at_end, failed };
struct Dopri5Plan {
  StepAction action;
  double h;
  bool clipped;
};

// Plans the step from rec.t toward t_end with the proposed rec.h; marks the run failed (or, at_end, sets rec.t =
// t_end) where the plan says so.
SOFTFLOW_HD inline Dopri5Plan dopri5_plan_step(const AdaptiveRule& rule, double t_end, RunRecord& rec) {
  if (rule.max_steps > 0 && rec.steps + rec.rejected >= rule.max_steps) {
    rec.status = RunStatus::failed;
    rec.stop_time = rec.t;
    return {StepAction::failed, 0.0, false};
  }
  // Clip to land on t_end; a step that would leave less than 1 % of itself before t_end is stretched to it, so
  // no sliver of a step (which the minimum-step guard below would call a failure) is ever left.
  const bool clipped = rec.t + 1.01 * rec.h >= t_end;
  const double h = clipped ? t_end - rec.t : rec.h;
  const double min_step = 1e-12 * max_of(1.0, abs_of(rec.t));
  if (clipped && h <= min_step) {  // two checkpoints closer than the time resolution: the state is already there
    rec.t = t_end;
    return {StepAction::at_end, h, true};
  }
  if (!(h > min_step)) {
    rec.status = RunStatus::failed;
    rec.stop_time = rec.t;
    return {StepAction::failed, h, clipped};
  }
  return {StepAction::take, h, clipped};
}

// The verdict on a step whose scaled error norm is err (a non-finite trial is a rejected step, not a diverged run):
// accepted or not, and the factor on h that the error suggests.
struct Dopri5Verdict {
  bool accepted;
  double factor;
};
SOFTFLOW_HD inline Dopri5Verdict dopri5_verdict(double err) {
  if (!is_finite(err)) err = 1e10;
  return {err <= 1.0, err == 0 ? 10.0 : 0.9 * pow(err, -0.2)};
}

// Books a step planned by `plan` with verdict `verdict` into rec: an accepted step advances rec.t (to t_end when
// clipped) and counts, a rejected one counts as rejected; either proposes the next rec.h.
SOFTFLOW_HD inline void dopri5_book_step(const Dopri5Plan& plan, const Dopri5Verdict& verdict, double t_end,
                                         RunRecord& rec) {
  if (verdict.accepted) {
    rec.t = plan.clipped ? t_end : rec.t + plan.h;
    ++rec.steps;
    const double proposal = plan.h * min_of(10.0, max_of(0.2, verdict.factor));
    rec.h = plan.clipped ? max_of(rec.h, proposal) : proposal;
  } else {
    ++rec.rejected;
    rec.h = plan.h * min_of(1.0, max_of(0.2, verdict.factor));
  }
}

// First passages of s_max inside one accepted step of the value-softmax flow, located on the cubic Hermite
// interpolant of the logits (third order, from a and da/dt at both ends; s depends on a alone) by bisection. Sets
// rec.first_time[k] for each threshold crossed between the step's start (s_max = rec.last_s_max at t0) and its end
// (s_max_end); apply_checks then leaves them alone. The tied model keeps apply_checks' linear interpolation.
// a0, f0, a1, f1: n; work: 2 n scratch.
template <class Real>
SOFTFLOW_HD inline void locate_passages_in_step(const ModelShape& shape, const Real* a0, const Real* f0,
                                                const Real* a1, const Real* f1, double t0, double h,
                                                double s_max_end, RunRecord& rec, Real* work) {
  if (shape.model != ModelKind::value_softmax || rec.last_s_max < 0 || rec.last_check_t != t0) return;
  const int n = shape.n;
  Real* a = work;
  Real* s = work + n;
  for (int k = 0; k < kPassageCount; ++k) {
    const double threshold = passage_threshold(k);
    if (rec.first_time[k] >= 0 || rec.last_s_max >= threshold || s_max_end < threshold) continue;
    double below = 0, above = 1;  // fractions of the step
    for (int iteration = 0; iteration < 40; ++iteration) {
      const double tau = 0.5 * (below + above);
      // Hermite basis on [0, 1]: h00 = 2t^3 - 3t^2 + 1, h10 = t^3 - 2t^2 + t, h01 = -2t^3 + 3t^2, h11 = t^3 - t^2.
      const double t2 = tau * tau, t3 = t2 * tau;
      const Real h00 = Real(2 * t3 - 3 * t2 + 1), h10 = Real((t3 - 2 * t2 + tau) * h);
      const Real h01 = Real(-2 * t3 + 3 * t2), h11 = Real((t3 - t2) * h);
      for (int j = 0; j < n; ++j) a[j] = h00 * a0[j] + h10 * f0[j] + h01 * a1[j] + h11 * f1[j];
      softmax(a, n, s);
      if (double(s[argmax(s, n)]) >= threshold)
        above = tau;
      else
        below = tau;
    }
    rec.first_time[k] = t0 + above * h;
  }
}

// Adaptive Dormand-Prince integration of one run from rec.t to exactly t_end; the last step is clipped to land on
// t_end. Runs whose step collapses or that exceed max_steps are marked failed.
// theta: state_size() in/out; data: data_size(); work: integrator_workspace_size(shape, Method::dopri5).
template <class Real>
SOFTFLOW_HD inline void advance_adaptive(const ModelShape& shape, const AdaptiveRule& rule, double t_end,
                                         const StopRule& stop, Real* theta, const Real* data, RunRecord& rec,
                                         Real* work) {
  const int p = shape.state_size();
  Real* k[7];
  for (int j = 0; j < 7; ++j) k[j] = work + j * p;
  Real* trial = work + 7 * p;
  Real* error = work + 8 * p;
  Real* scratch = work + 9 * p;
  const Dopri5Tableau tableau;
  FlowEval<Real> eval = evaluate_flow(shape, theta, data, k[0], scratch);
  if (!apply_checks(eval, rec.t, stop, true, rec)) return;
  if (rec.h <= 0)
    rec.h = rule.initial_step > 0 ? rule.initial_step
                                  : dopri5_initial_step(shape, rule, theta, data, k[0], k[1], trial, scratch);
  while (rec.t < t_end) {
    const Dopri5Plan plan = dopri5_plan_step(rule, t_end, rec);
    if (plan.action != StepAction::take) return;
    const double h = plan.h;
    for (int stage = 1; stage < 7; ++stage) {
      axpy_stages(p, theta, Real(h), tableau.a[stage], k, stage, trial);
      if (stage < 6) evaluate_flow(shape, trial, data, k[stage], scratch);
    }
    // trial = 5th-order solution; k7 = f(trial) doubles as the next step's k1 (first same as last).
    eval = evaluate_flow(shape, trial, data, k[6], scratch);
    for (int i = 0; i < p; ++i) error[i] = 0;
    axpy_stages(p, error, Real(h), tableau.e, k, 7, error);
    const Dopri5Verdict verdict = dopri5_verdict(scaled_rms(p, error, theta, trial, rule));
    if (verdict.accepted) {
      if (eval.s_max == eval.s_max)  // first passages inside the step, placed on the dense output (value-softmax)
        locate_passages_in_step(shape, theta + shape.matrix_size(), k[0] + shape.matrix_size(),
                                trial + shape.matrix_size(), k[6] + shape.matrix_size(), rec.t, h, double(eval.s_max),
                                rec, error);
      for (int i = 0; i < p; ++i) {
        theta[i] = trial[i];
        k[0][i] = k[6][i];
      }
    }
    dopri5_book_step(plan, verdict, t_end, rec);
    if (verdict.accepted && !apply_checks(eval, rec.t, stop, true, rec)) return;
  }
}

}  // namespace softflow
