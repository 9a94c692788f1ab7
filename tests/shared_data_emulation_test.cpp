// Purpose: the shared-data step paths' unchanged source (shared_regression.cu: regression gd; shared_attention.cu:
// the attention family's gd and normalized gd), #included here and run on the host under the emulation of CUDA's
// block model (tests/emulation) with a stand-in for cuBLAS's GEMM written from its documented contract (column-major
// operands, leading dimensions checked as cuBLAS checks them, every operand inside the emulated device's memory),
// against the CPU reference (advance_fixed_step on each run with the one data set), so CI checks the kernels'
// indexing, the GEMMs' shapes, transposes and leading dimensions, the stopped-run handling and waves without a GPU.
// Float64 states agree to 1e-12 relative (attention: M = X W is formed once, so the association differs from the
// CPU's X (W p) by rounding, which some trajectories amplify; there within 10x of how far the CPU's own run moves
// when its start moves by rounding) and records exactly (last_s_max likewise); float32 states within 4x the CPU
// float32 run's own error from the float64 reference.
// Limits as block_kernel_emulation_test.cpp's; in addition the stand-in sums in one order (cuBLAS's is
// unspecified) and cannot say whether these paths are faster than the per-run kernels: that is for a GPU.
// Shapes: states runs x state_size (run-major), data one data_size() array for every run, records runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "emulated_cells.h"
#include "shared_attention.cu"
#include "shared_regression.cu"

namespace softflow {
namespace {

using namespace emulated;

// Declares a test's host arrays device memory for the cuBLAS stand-in's operand checks, for its lifetime.
class DeclaredDeviceMemory {
 public:
  template <class T>
  void add(std::vector<T>& values) {
    emulation::device_memory().add(values.data(), values.size() * sizeof(T));
    bases_.push_back(values.data());
  }
  ~DeclaredDeviceMemory() {
    for (const void* base : bases_) emulation::device_memory().remove(base);
  }

 private:
  std::vector<const void*> bases_;
};

// `count` draws of N(0, scale^2) from `generator`.
std::vector<double> normals(std::mt19937_64& generator, int count, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> values(static_cast<size_t>(count));
  for (double& value : values) value = normal(generator);
  return values;
}

void append(std::vector<double>& to, const std::vector<double>& values) {
  to.insert(to.end(), values.begin(), values.end());
}

// A regression data set (model.h's layout: X, m x d row-major, then y, m).
std::vector<double> regression_data(const ModelShape& shape) {
  std::mt19937_64 generator(kSeed);
  std::vector<double> data = normals(generator, shape.m * shape.d, 1.0 / std::sqrt(double(shape.d)));
  append(data, normals(generator, shape.m, 1.0));
  return data;
}

// An attention data set (attention.h's layout: X, N T x d row-major; labels Y = +-1; then the fixed parameters: W
// (d x d) and v for trainable p, z (N x d) and v for W, W for (v, p)), tokens and parameters N(0, 1 / d).
std::vector<double> attention_data(const ModelShape& shape) {
  std::mt19937_64 generator(kSeed + std::uint64_t(shape.trainable));
  const int d = shape.d, inputs = shape.inputs;
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> data = normals(generator, inputs * shape.n * d, scale);
  for (int i = 0; i < inputs; ++i) data.push_back(i % 3 == 1 ? -1.0 : 1.0);
  if (shape.trainable == AttentionTrainable::w)
    append(data, normals(generator, inputs * d + d, scale));  // z, then v
  else if (shape.trainable == AttentionTrainable::p)
    append(data, normals(generator, d * d + d, scale));  // W, then v
  else
    append(data, normals(generator, d * d, scale));  // W
  EXPECT_EQ(int(data.size()), shape.data_size());
  return data;
}

ModelShape attention(AttentionTrainable trainable, int inputs, int tokens, int d, LossKind loss) {
  ModelShape shape;
  shape.model = ModelKind::attention;
  shape.trainable = trainable;
  shape.inputs = inputs;
  shape.n = tokens;
  shape.d = d;
  shape.loss = loss;
  return shape;
}

// The CPU's fixed-step segments and a shared-data path's on the same cell, over the segments between consecutive
// `steps`; the path advances the runs in waves of `wave` runs (its buffers hold `wave`). Returns {CPU, emulated}.
template <class Real, class Steps, class MakeSteps>
std::pair<Cell<Real>, Cell<Real>> run_both(const MakeSteps& make_steps, Method method, const Cell<Real>& start,
                                           double step, const std::vector<long long>& steps, const StopRule& stop,
                                           int wave) {
  Cell<Real> cpu = start, emulated = start;
  DeclaredDeviceMemory declared;
  declared.add(emulated.states);
  declared.add(emulated.data);
  declared.add(emulated.records);
  Steps paths = make_steps(emulated.data.data(), wave);
  for (size_t c = 1; c < steps.size(); ++c) {
    cpu_fixed_segment(cpu, method, step, steps[c - 1], steps[c], stop);
    for (int first = 0; first < start.runs; first += wave) {
      FixedStepSegmentArgs<Real> args = segment_args(emulated, step, steps[c - 1], steps[c], stop);
      args.runs = std::min(wave, start.runs - first);
      args.states += size_t(first) * start.p;
      args.records += first;
      args.data_stride = 0;
      paths.advance(args);
    }
  }
  return {cpu, emulated};
}

template <class Real>
std::pair<Cell<Real>, Cell<Real>> regression_both(const Cell<Real>& start, const std::vector<long long>& steps,
                                                  const StopRule& stop, int wave) {
  const ModelShape shape = start.shape;
  return run_both<Real, SharedRegressionSteps<Real>>(
      [&](const Real*, int max_runs) { return SharedRegressionSteps<Real>(shape, max_runs); }, Method::gd, start,
      0.1, steps, stop, wave);
}

template <class Real>
std::pair<Cell<Real>, Cell<Real>> attention_both(Method method, const Cell<Real>& start,
                                                 const std::vector<long long>& steps, const StopRule& stop, int wave) {
  const ModelShape shape = start.shape;
  return run_both<Real, SharedAttentionSteps<Real>>(
      [&](const Real* data, int max_runs) { return SharedAttentionSteps<Real>(shape, method, data, max_runs); },
      method, start, 0.1, steps, stop, wave);
}

// A float32 cell's states' largest relative difference from the float64 reference's.
double float32_error(const Cell<float>& cell, const Cell<double>& reference) {
  return max_relative_difference(std::vector<double>(cell.states.begin(), cell.states.end()), reference.states);
}

// {CPU, emulated} cells that ran with a loss bound: states within 1e-12, records exact, and some runs but not all
// stopped on the bound (else the case tests nothing).
void expect_stops_like_the_cpu(const std::pair<Cell<double>, Cell<double>>& both, const std::string& label) {
  const auto& [cpu, emulated] = both;
  EXPECT_LE(max_relative_difference(emulated.states, cpu.states), 1e-12) << label;
  expect_same_fixed_records(emulated.records, cpu.records, label);
  const int stopped = count_status(cpu.records, RunStatus::converged);
  EXPECT_GT(stopped, 0) << label;
  EXPECT_LT(stopped, cpu.runs) << label;
}

TEST(SharedDataEmulation, RegressionGdMatchesTheCpu) {
  // Shapes whose d, n and m differ (a GEMM with two sizes swapped reads the wrong entries or fails the stand-in's
  // checks) on one warp and on a block of 64; 21 runs on a grid of 8, so the block kernels' grid-stride loops wrap.
  for (const auto& [d, n, m] : std::vector<std::tuple<int, int, int>>{{5, 6, 7}, {40, 33, 9}, {3, 50, 70}}) {
    ModelShape shape = value_softmax(d, n, LossKind::regression);
    shape.m = m;
    const std::string label = label_of(shape) + " m " + std::to_string(m);
    const Cell<double> start = make_cell<double>(shape, spread_for(shape), 21, regression_data(shape));
    const auto [cpu, emulated] = regression_both(start, {0, 10, 40}, StopRule{}, 21);
    EXPECT_LE(max_relative_difference(emulated.states, cpu.states), 1e-12) << label;
    expect_same_fixed_records(emulated.records, cpu.records, label);
  }
}

TEST(SharedDataEmulation, RegressionGdStopsAndRunsInWavesLikeTheCpu) {
  // A loss bound that about half the runs reach, inside the second segment, in waves of 8 runs (the last of 5).
  ModelShape shape = value_softmax(6, 9, LossKind::regression);
  shape.m = 4;  // m < d: the loss can reach 0
  StopRule stop;
  stop.loss_below = 0.05;
  const Cell<double> start = make_cell<double>(shape, spread(1.0), 21, regression_data(shape));
  expect_stops_like_the_cpu(regression_both(start, {0, 50, 100}, stop, 8), "regression stops");
}

TEST(SharedDataEmulation, RegressionGdFloat32FollowsTheCpu) {
  ModelShape shape = value_softmax(40, 33, LossKind::regression);
  shape.m = 9;
  const std::vector<double> data = regression_data(shape);
  const auto [reference, unused] = regression_both(make_cell<double>(shape, spread_for(shape), 21, data),
                                                   {0, 40}, StopRule{}, 21);
  const auto [cpu, emulated] = regression_both(make_cell<float>(shape, spread_for(shape), 21, data), {0, 40},
                                               StopRule{}, 21);
  EXPECT_LE(float32_error(emulated, reference), 4 * float32_error(cpu, reference) + 1e-6);
}

// How far the CPU's own run moves when the start moves by rounding: the largest relative difference of the end
// states after `steps` from the start and from the start with every entry times 1 - 2^-52, 1 or 1 + 2^-52 in turn.
// Normalized gd divides by a block's gradient norm, so where one passes near zero its direction amplifies rounding
// for a while: (v, p) with the exponential loss below moves 3.5e-10 after 100 steps (3e-14 after 300 and 1000).
template <class Real>
double cpu_rounding_response(const Cell<Real>& start, Method method, long long steps) {
  Cell<Real> cpu = start, moved = start;
  for (size_t i = 0; i < moved.states.size(); ++i) moved.states[i] *= Real(1) + Real(int(i % 3) - 1) * Real(0x1p-52);
  cpu_fixed_segment(cpu, method, 0.1, 0, steps, StopRule{});
  cpu_fixed_segment(moved, method, 0.1, 0, steps, StopRule{});
  return max_relative_difference(moved.states, cpu.states);
}

TEST(SharedDataEmulation, AttentionStepsMatchTheCpu) {
  // Each trainable set with N, T and d all different (and W's d^2 columns), gd and normalized gd, 300 runs on the
  // kernels' blocks of 128 threads (the last block partly idle). The states agree as closely as the CPU agrees with
  // itself from a start moved by rounding (10x that, at least 1e-12; measured: the path differs from the CPU by
  // 0.35x to 2x what that move does), and the records likewise.
  const std::vector<ModelShape> shapes = {attention(AttentionTrainable::p, 4, 3, 7, LossKind::logistic),
                                          attention(AttentionTrainable::w, 5, 4, 6, LossKind::logistic),
                                          attention(AttentionTrainable::vp, 3, 5, 6, LossKind::exponential),
                                          attention(AttentionTrainable::p, 2, 6, 5, LossKind::linear)};
  for (Method method : {Method::gd, Method::normalized_gd})
    for (const ModelShape& shape : shapes) {
      const std::string label = std::string(method == Method::gd ? "gd " : "normalized gd ") + "trainable " +
                                std::to_string(int(shape.trainable)) + " loss " + std::to_string(int(shape.loss));
      const Cell<double> start = make_cell<double>(shape, spread(1.0), 300, attention_data(shape));
      const auto [cpu, emulated] = attention_both(method, start, {0, 10, 100}, StopRule{}, 300);
      const double bound = std::max(1e-12, 10 * cpu_rounding_response(start, method, 100));
      EXPECT_LE(max_relative_difference(emulated.states, cpu.states), bound) << label;
      expect_same_fixed_records(emulated.records, cpu.records, label, bound);
    }
}

TEST(SharedDataEmulation, AttentionStopsAndRunsInWavesLikeTheCpu) {
  // A loss bound that runs reach at different steps of both segments (4 runs by step 10, 170 by 30), in waves of
  // 110 runs (the last of 80).
  const ModelShape shape = attention(AttentionTrainable::vp, 3, 5, 6, LossKind::logistic);
  StopRule stop;
  stop.loss_below = 0.3;
  const Cell<double> start = make_cell<double>(shape, spread(1.0), 300, attention_data(shape));
  expect_stops_like_the_cpu(attention_both(Method::normalized_gd, start, {0, 10, 30}, stop, 110), "attention stops");
}

TEST(SharedDataEmulation, AttentionFloat32FollowsTheCpu) {
  for (const ModelShape& shape : {attention(AttentionTrainable::w, 5, 4, 6, LossKind::logistic),
                                  attention(AttentionTrainable::vp, 3, 5, 6, LossKind::exponential)}) {
    const std::vector<double> data = attention_data(shape);
    const auto [reference, unused] = attention_both(Method::normalized_gd, make_cell<double>(shape, spread(1.0), 300,
                                                                                                data),
                                                    {0, 100}, StopRule{}, 300);
    const auto [cpu, emulated] = attention_both(Method::normalized_gd, make_cell<float>(shape, spread(1.0), 300,
                                                                                          data),
                                                {0, 100}, StopRule{}, 300);
    EXPECT_LE(float32_error(emulated, reference), 4 * float32_error(cpu, reference) + 1e-6)
        << "trainable " << int(shape.trainable);
  }
}

TEST(SharedDataEmulation, AWaveLargerThanTheBuffersIsRefused) {
  const ModelShape shape = attention(AttentionTrainable::p, 4, 3, 7, LossKind::logistic);
  Cell<double> cell = make_cell<double>(shape, spread(1.0), 20, attention_data(shape));
  DeclaredDeviceMemory declared;
  declared.add(cell.data);
  SharedAttentionSteps<double> attention_steps(shape, Method::gd, cell.data.data(), 10);
  FixedStepSegmentArgs<double> args = segment_args(cell, 0.1, 0, 1, StopRule{});
  args.data_stride = 0;
  EXPECT_THROW(attention_steps.advance(args), std::logic_error);
  ModelShape regression = value_softmax(5, 6, LossKind::regression);
  SharedRegressionSteps<double> regression_steps(regression, 10);
  Cell<double> value_cell = make_cell<double>(regression, spread(1.0), 20, regression_data(regression));
  EXPECT_THROW(regression_steps.advance(segment_args(value_cell, 0.1, 0, 1, StopRule{})), std::logic_error);
}

}  // namespace
}  // namespace softflow
