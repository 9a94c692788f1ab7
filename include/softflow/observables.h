// Purpose: the per-run observables of science.md sections 1 and 2 at a checkpoint, written once for both backends.
// observe_run evaluates the state once, applies the run's checks at that time, and fills one value per observable.
#pragma once

#include "softflow/att_svm.h"
#include "softflow/attention.h"
#include "softflow/flow.h"
#include "softflow/hostdevice.h"
#include "softflow/run_record.h"

namespace softflow {

// Per-run scalar observables, in this order. A value that does not apply (invariant_drift and u_winner outside the
// logistic value-softmax model, sum_a_drift for the tied model, rejected_steps for fixed-step integrators, the
// attention ones for the value-softmax family and V's for attention) is NaN and reported by no statistic.
// Attention: s is each input's softmax, and the entropies and s_max are means over inputs (attention.h
// attention_selection).
enum ObservableIndex : int {
  kEntropy = 0,         // H(s) in nats
  kEntropyRatio,        // H(s) / log n
  kSMax,                // max_i s_i
  kLoss,                // l(beta) (attention: L)
  kGradNorm,            // ||grad L|| over the whole state
  kVNorm,               // ||V||_F (tied: ||U||_F; attention: ||v||)
  kWinnerColNorm,       // ||V e_winner|| (tied: ||U e_winner||)
  kSumADrift,           // sum_i a_i(t) - sum_i a_i(0) (invariant of the value-softmax flow, not the tied one)
  kInvariantDrift,      // logistic: ||(I - beta* beta*^T)(V(t) - V(0))||_F (an invariant of the flow)
  kUWinner,             // logistic: u_winner = <beta*, V e_winner>, the winner's fitness (u = V^T beta*)
  kSteps,               // accepted steps so far
  kRejectedSteps,       // rejected steps so far (dopri5)
  kOptimalTokenProb,    // attention: mean over inputs of s_{i opt_i}, opt_i = argmax_t Y_i <x_it, v>
  kParamNorm,           // attention: ||p|| (trainable p, vp) or ||W||_F (trainable W)
  kTokenMargin,         // attention: min_i (logit of the selected token - the next largest logit) / kParamNorm
  kCosOptimal,          // attention: cos(theta, theta_mm(opt)), theta = p or W (att_svm.h)
  kCosFinal,            // attention: cos(theta, theta_mm(alpha)), alpha = the selection now
  kDirectionGlobal,     // attention: 1 if the direction class is global, else 0 (the mean is the class's share)
  kDirectionLocal,      // ... local
  kDirectionNeither,    // ... neither
  kDirectionNotConverged,  // ... not converged
  kStateObservableCount
};

SOFTFLOW_HD inline const char* observable_name(int index) {
  switch (index) {
    case kEntropy: return "entropy";
    case kEntropyRatio: return "entropy_ratio";
    case kSMax: return "s_max";
    case kLoss: return "loss";
    case kGradNorm: return "grad_norm";
    case kVNorm: return "v_norm";
    case kWinnerColNorm: return "winner_col_norm";
    case kSumADrift: return "sum_a_drift";
    case kUWinner: return "u_winner";
    case kInvariantDrift: return "invariant_drift";
    case kSteps: return "steps";
    case kRejectedSteps: return "rejected_steps";
    case kOptimalTokenProb: return "optimal_token_prob";
    case kParamNorm: return "param_norm";
    case kTokenMargin: return "token_margin";
    case kCosOptimal: return "cos_optimal";
    case kCosFinal: return "cos_final";
    case kDirectionGlobal: return "direction_global";
    case kDirectionLocal: return "direction_local";
    case kDirectionNeither: return "direction_neither";
    case kDirectionNotConverged: return "direction_not_converged";
  }
  return "?";
}

// Whether observe_run reports u_winner and invariant_drift (value_softmax with the logistic loss); invariant_drift
// reads the run's initial state, so the backends supply theta0 exactly where this holds.
SOFTFLOW_HD inline bool observes_logistic_values(const ModelShape& shape) {
  return shape.model == ModelKind::value_softmax && shape.loss == LossKind::logistic;
}

// The value-softmax and tied part of observe_run: the softmax left in scratch by evaluate_flow, V (or U), a, and
// for the logistic loss the winner's fitness and the invariant. theta, theta0 (may be null): state_size(); data:
// data_size(); scratch: as evaluated.
template <class Real>
SOFTFLOW_HD inline void observe_softmax_state(const ModelShape& shape, const FlowEval<Real>& eval, const Real* theta,
                                              const Real* theta0, const Real* data, const RunRecord& rec,
                                              const Real* scratch, double* out) {
  const int n = shape.n;
  const int rows = shape.model == ModelKind::tied ? n : shape.d;
  const Real* s = scratch;  // evaluate_flow leaves the softmax (tied: alpha) at the start of scratch
  const double h = double(entropy(s, n));
  out[kEntropy] = h;
  out[kEntropyRatio] = h / log(double(n));
  const bool logistic_values = observes_logistic_values(shape);
  double v_sq = 0, col_sq = 0, u_winner = 0;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < n; ++j) {
      const double x = double(theta[i * n + j]);
      v_sq += x * x;
      if (j == eval.winner) {
        col_sq += x * x;
        if (logistic_values) u_winner += double(data[i]) * x;  // data = beta*
      }
    }
  out[kVNorm] = sqrt(v_sq);
  out[kWinnerColNorm] = sqrt(col_sq);
  if (logistic_values) out[kUWinner] = u_winner;
  // Tied: d(sum a)/dt = 1^T U^T g = (U 1)^T g with 1^T g = 0, nonzero unless U 1 is parallel to 1: no invariant.
  if (shape.model == ModelKind::value_softmax) {
    double sum_a = 0;
    for (int j = 0; j < n; ++j) sum_a += double(theta[shape.matrix_size() + j]);
    out[kSumADrift] = sum_a - rec.sum_a0;
  }
  if (logistic_values && theta0 != nullptr) {
    // (I - b b^T) D with D = V - V0, b = beta*: column j is D e_j - b <b, D e_j>.
    double drift_sq = 0;
    for (int j = 0; j < n; ++j) {
      double projection = 0;
      for (int i = 0; i < rows; ++i) projection += double(data[i]) * (double(theta[i * n + j]) - double(theta0[i * n + j]));
      for (int i = 0; i < rows; ++i) {
        const double x = (double(theta[i * n + j]) - double(theta0[i * n + j])) - double(data[i]) * projection;
        drift_sq += x * x;
      }
    }
    out[kInvariantDrift] = sqrt(drift_sq);
  }
}

// The attention family's part of observe_run: the selection facts (attention_selection) into out.
template <class Real>
SOFTFLOW_HD inline void observe_attention(const ModelShape& shape, const Real* theta, const Real* data, Real* scratch,
                                          double* out) {
  const AttentionSelection selection = attention_selection(shape, theta, data, scratch);
  out[kEntropy] = selection.entropy;
  out[kEntropyRatio] = selection.entropy / log(double(shape.n));
  out[kVNorm] = selection.v_norm;
  out[kOptimalTokenProb] = selection.optimal_prob;
  out[kParamNorm] = selection.param_norm;
  out[kTokenMargin] = selection.token_margin;
}

// The attention family's direction observables (att_svm.h): the two cosines and the class indicators, for a run
// that has not diverged (observe_run leaves them NaN otherwise). work: svm_workspace_size() doubles.
template <class Real>
SOFTFLOW_HD inline void observe_attention_direction(const ModelShape& shape, const RunRecord& rec, const Real* theta,
                                                    const Real* data, double* work, double* out) {
  if (rec.status == RunStatus::diverged) return;
  const DirectionReport report = attention_direction(shape, theta, data, work);
  out[kCosOptimal] = report.cos_optimal;
  out[kCosFinal] = report.cos_final;
  out[kDirectionGlobal] = report.direction == DirectionClass::global ? 1.0 : 0.0;
  out[kDirectionLocal] = report.direction == DirectionClass::local ? 1.0 : 0.0;
  out[kDirectionNeither] = report.direction == DirectionClass::neither ? 1.0 : 0.0;
  out[kDirectionNotConverged] = report.direction == DirectionClass::not_converged ? 1.0 : 0.0;
}

// Evaluates the run at its checkpoint time t, applies its checks, and writes kStateObservableCount values to out.
// theta0: the run's initial state (used for invariant_drift; may be null otherwise). Returns argmax s (winner;
// attention: the token input 0 selects).
// theta, theta0: state_size(); data: data_size(); dtheta: state_size() scratch; scratch: scratch_size().
template <class Real>
SOFTFLOW_HD inline int observe_run(const ModelShape& shape, bool adaptive, double t, const StopRule& stop,
                                   const Real* theta, const Real* theta0, const Real* data, RunRecord& rec,
                                   Real* dtheta, Real* scratch, double* out) {
  const FlowEval<Real> eval = evaluate_flow(shape, theta, data, dtheta, scratch);
  apply_checks(eval, t, stop, adaptive, rec);
  for (int o = 0; o < kStateObservableCount; ++o) out[o] = NAN;
  out[kSMax] = double(eval.s_max);
  out[kLoss] = double(eval.loss);
  out[kGradNorm] = sqrt(double(eval.grad_norm_sq));
  out[kSteps] = double(rec.steps);
  out[kRejectedSteps] = adaptive ? double(rec.rejected) : NAN;
  if (shape.model == ModelKind::attention) observe_attention(shape, theta, data, scratch, out);
  else observe_softmax_state(shape, eval, theta, theta0, data, rec, scratch, out);
  if (rec.status == RunStatus::diverged)  // a diverged run is counted, never averaged
    for (int o = 0; o < kStateObservableCount; ++o) out[o] = NAN;
  return eval.winner;
}

}  // namespace softflow
