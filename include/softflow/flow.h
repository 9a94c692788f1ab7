// Purpose: the one dispatch from a shape's model family to its vector field (model.h: value_softmax, tied;
// attention.h: attention), and to the softmax a state's observables read. Written once for both backends.
#pragma once

#include "softflow/attention.h"
#include "softflow/hostdevice.h"
#include "softflow/model.h"

namespace softflow {

// The vector field of whichever model the shape names. theta, dtheta: state_size(); data: data_size();
// scratch: scratch_size(). Value-softmax and tied flows leave their softmax at the start of scratch.
template <class Real>
SOFTFLOW_HD inline FlowEval<Real> evaluate_flow(const ModelShape& shape, const Real* theta, const Real* data,
                                                Real* dtheta, Real* scratch) {
  switch (shape.model) {
    case ModelKind::tied: return tied_flow(shape, theta, data, dtheta, scratch);
    case ModelKind::attention: return attention_flow(shape, theta, data, dtheta, scratch);
    default: return value_softmax_flow(shape, theta, data, dtheta, scratch);
  }
}

// The softmax of a value-softmax or tied state (s, or alpha for tied) without the gradient. theta: state_size();
// s: n. (The attention family has one softmax per input: attention_selection.)
template <class Real>
SOFTFLOW_HD inline void state_softmax(const ModelShape& shape, const Real* theta, Real* s) {
  const int n = shape.n;
  const Real* a = theta + shape.matrix_size();
  if (shape.model == ModelKind::tied) {
    for (int i = 0; i < n; ++i) s[i] = dot(theta + i * n, a, n);
    softmax(s, n, s);
  } else {
    softmax(a, n, s);
  }
}

}  // namespace softflow
