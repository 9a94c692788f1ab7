// Purpose: the attention family's data sets (see attention_data.h).
#include "attention_data.h"

#include <cmath>
#include <vector>

#include "softflow/random.h"

namespace softflow {

bool toy_dataset_dims(AttentionDataset dataset, AttentionDims& dims) {
  switch (dataset) {
    case AttentionDataset::single_global:
    case AttentionDataset::single_local: dims = {1, 3, 3}; return true;
    case AttentionDataset::multi_input: dims = {3, 7, 3}; return true;
    case AttentionDataset::joint_tight:
    case AttentionDataset::joint_relaxed: dims = {3, 2, 2}; return true;
    case AttentionDataset::loss_pair: dims = {2, 2, 3}; return true;
    default: return false;
  }
}

bool dataset_is_random(AttentionDataset dataset) {
  return dataset == AttentionDataset::gaussian || dataset == AttentionDataset::sphere ||
         dataset == AttentionDataset::multi_input;
}

std::string dataset_trainable_rule(AttentionDataset dataset, AttentionTrainable trainable) {
  switch (dataset) {
    case AttentionDataset::gaussian:
    case AttentionDataset::sphere:
    case AttentionDataset::file: return "";
    case AttentionDataset::joint_tight:
    case AttentionDataset::joint_relaxed:
      return trainable == AttentionTrainable::vp ? "" : "the joint data sets train (v, p): trainable must be vp";
    default:
      return trainable == AttentionTrainable::w ? "the toy data sets fix W = diag(1, 1, 0): trainable must be p or vp"
                                                : "";
  }
}

bool CellParams::data_shared() const {
  if (shape.model == ModelKind::attention && !dataset_is_random(dataset)) return true;
  return shared_target;
}

namespace {

// Writes the fixed parameters after X and Y: W (p, vp), z (w) and v (p, w), as attention.h lays them out.
struct FixedWriter {
  const ModelShape& shape;
  double* fixed;  // data + N T d + N
  double* w() const { return shape.trainable == AttentionTrainable::w ? nullptr : fixed; }
  double* z() const { return shape.trainable == AttentionTrainable::w ? fixed : nullptr; }
  double* v() const {
    switch (shape.trainable) {
      case AttentionTrainable::p: return fixed + shape.d * shape.d;
      case AttentionTrainable::w: return fixed + shape.inputs * shape.d;
      case AttentionTrainable::vp: return nullptr;
    }
    return nullptr;
  }
};

// W = diag(diagonal) for the toy sets and the identity of the random ones. w: d x d or null.
void set_diagonal(double* w, int d, const double* diagonal) {
  if (!w) return;
  for (int i = 0; i < d * d; ++i) w[i] = 0;
  for (int i = 0; i < d; ++i) w[i * d + i] = diagonal ? diagonal[i] : 1.0;
}

// A unit vector from `count` normals of a stream starting at normal `first`. out: count.
void unit_vector(const RandomStream& stream, int first, int count, double* out) {
  double norm_sq = 0;
  for (int i = 0; i < count; ++i) {
    out[i] = stream.normal_at(first + i);
    norm_sq += out[i] * out[i];
  }
  const double inverse = 1.0 / std::sqrt(norm_sq);
  for (int i = 0; i < count; ++i) out[i] *= inverse;
}

void draw_random_set(const CellParams& cell, const RandomStream& tokens, const RandomStream& labels,
                     const RandomStream& fixed_stream, double* data) {
  const ModelShape& shape = cell.shape;
  const int n_inputs = shape.inputs, T = shape.n, d = shape.d;
  double* x = data;
  double* y = x + n_inputs * T * d;
  if (cell.dataset == AttentionDataset::sphere) {
    for (int token = 0; token < n_inputs * T; ++token) unit_vector(tokens, token * d, d, x + token * d);
  } else {
    const double scale = 1.0 / std::sqrt(double(d));
    tokens.for_each_normal(n_inputs * T * d, [&](int i, double z) { x[i] = z * scale; });
  }
  for (int i = 0; i < n_inputs; ++i) y[i] = labels.uniform_at(i) < 0.5 ? -1.0 : 1.0;
  const FixedWriter fixed{shape, y + n_inputs};
  set_diagonal(fixed.w(), d, nullptr);
  if (fixed.v()) unit_vector(fixed_stream, 0, d, fixed.v());
  if (fixed.z())
    for (int i = 0; i < n_inputs; ++i) unit_vector(fixed_stream, d + i * d, d, fixed.z() + i * d);
}

// The toy sets of ucr-optml/max_margin_attention (MaxMarginTokenSelection/*.ipynb), with the multi-input set's
// 0.2 N(0, I) noise from our own token stream (the notebooks' torch draws cannot be reproduced).
void draw_toy_set(const CellParams& cell, const RandomStream& tokens, double* data) {
  const ModelShape& shape = cell.shape;
  const int n_inputs = shape.inputs, T = shape.n, d = shape.d;
  double* x = data;
  double* y = x + n_inputs * T * d;
  const double score_diagonal[3] = {1, 1, 0};  // W = diag(1, 1, 0): the third coordinate is the token's score
  const FixedWriter fixed{shape, y + n_inputs};
  switch (cell.dataset) {
    case AttentionDataset::single_global:
    case AttentionDataset::single_local: {
      const double third = cell.dataset == AttentionDataset::single_global ? 0.9 : 0.0;
      const double tokens3[9] = {-0.1, 1, 1, 1, 0, 0.9, 0, 0, third};
      for (int i = 0; i < 9; ++i) x[i] = tokens3[i];
      y[0] = 1;
      break;
    }
    case AttentionDataset::multi_input: {
      const double shift[3][3] = {{1, 0, 0}, {-1, 1, 0}, {-0.5, -0.5, 0}};
      tokens.for_each_normal(n_inputs * T * d, [&](int i, double z) { x[i] = 0.2 * z; });
      for (int i = 0; i < n_inputs; ++i) {
        for (int t = 0; t < T; ++t) {
          const int group = t == 0 ? 0 : (t <= (T - 1) / 2 ? 1 : 2);
          double* token = x + (i * T + t) * d;
          for (int k = 0; k < d; ++k) token[k] += shift[group][k];
          token[2] = t == 0 ? 1.0 : 0.5;
        }
        y[i] = 1;
      }
      break;
    }
    case AttentionDataset::joint_tight:
    case AttentionDataset::joint_relaxed: {
      const double third = cell.dataset == AttentionDataset::joint_tight ? 1.0 : 1.5;
      const double values[12] = {0, 0, 1, 1, 0, 0, 1, -1, 0, 0, 0.5, third};
      for (int i = 0; i < 12; ++i) x[i] = values[i];
      y[0] = 1;
      y[1] = -1;
      y[2] = 1;
      set_diagonal(fixed.w(), d, nullptr);  // W = I
      return;
    }
    case AttentionDataset::loss_pair: {
      const double values[12] = {0, 0, 0, 1, 1, cell.loss_pair_score, 0, 0, 0, 1, -1, 1};
      for (int i = 0; i < 12; ++i) x[i] = values[i];
      y[0] = y[1] = 1;
      break;
    }
    default: return;
  }
  set_diagonal(fixed.w(), d, score_diagonal);
  if (fixed.v()) {
    fixed.v()[0] = fixed.v()[1] = 0;
    fixed.v()[2] = 1;
  }
}

}  // namespace

void draw_attention_data(const CellParams& cell, std::uint64_t seed, std::uint32_t cell_index, std::uint32_t run,
                         double* data) {
  const RandomStream tokens{seed, cell_index, run, RandomVariable::attention_tokens};
  if (cell.dataset == AttentionDataset::file) {
    const std::vector<double>& values = cell.file_data->values;
    for (size_t i = 0; i < values.size(); ++i) data[i] = values[i];
  } else if (cell.dataset == AttentionDataset::gaussian || cell.dataset == AttentionDataset::sphere) {
    draw_random_set(cell, tokens, {seed, cell_index, run, RandomVariable::attention_labels},
                    {seed, cell_index, run, RandomVariable::attention_fixed}, data);
  } else {
    draw_toy_set(cell, tokens, data);
  }
}

}  // namespace softflow
