// Purpose: the fused register kernels' unchanged source (fused_gd.cu: loop variants 0 and 1; fused_gd_logistic.cu:
// variant 2; fused_rk4.cu; fused_dopri5.cu), #included here and run on the host under the emulation of CUDA's block
// model (tests/emulation: a block's threads as fibers in a random order between warp operations; __shfl_xor_sync
// with any mask and width and the votes __any_sync / __all_sync as exchanges among the lanes of their mask,
// aborting where a lane of the mask has exited or the lanes disagree on the operation), against the CPU reference
// (advance_fixed_step, advance_adaptive), so CI checks the kernels that no GPU has validated yet (variant 2, fused
// rk4, fused dopri5) and the others' logic without a GPU. Every size and lanes-per-run choice each kernel is
// instantiated for goes through the real entry points (fused_gd_advance, fused_rk4_advance, fused_dopri5_advance;
// launch_lane_groups' grid of 128-thread blocks), with 21 runs, so the last warp with runs is partly filled, its
// idle lanes stepping on a copy of the warp's first run (variants 1, 2, rk4, dopri5) and the warps without runs
// leaving at once.
// Float64 states agree to 1e-12 relative after 40 steps (the group sums add in butterfly order, the CPU in index
// order: rounding only) and the records exactly, but last_s_max to 1e-12; float32 to 1e-5. Runs that polarize,
// converge (loss and gradient rules: variant 2's pre-filtered checks) or diverge inside a segment, sharing warps
// with running ones, keep the CPU's statuses, stop times, step counts and first passages. dopri5: states to 1e-9 at
// rtol 1e-9 and records as emulated_cells.h's expect_same_adaptive_records (starting steps, step counts, first
// passages on the dense output, polarization and max_steps stops).
// Limits (as the block kernels' emulation test): the kernels' logic, indexing, lane layout and warp operations, not
// CUDA's code generation, fused multiply-adds (none here: -ffp-contract=off), its fast exponentials, register
// spills or speed. tests/cuda_backend_test.cpp's GPU tests stay the authority.
// Shapes: states runs x (d n + n) (run-major), data runs x data_size, records runs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "emulated_cells.h"
#include "fused_dopri5.cu"
#include "fused_gd.cu"
#include "fused_gd_logistic.cu"
#include "fused_rk4.cu"

namespace softflow {
namespace {

using namespace emulated;

// The fused kernels: fused gd's loop variants (fused_gd.cuh) and fused rk4.
enum class Fused { gd_variant0, gd_variant1, gd_logistic, rk4 };

const char* name_of(Fused kernel) {
  switch (kernel) {
    case Fused::gd_variant0: return "fused gd variant 0";
    case Fused::gd_variant1: return "fused gd variant 1";
    case Fused::gd_logistic: return "fused gd variant 2";
    default: return "fused rk4";
  }
}

const std::vector<int>& lane_choices(Fused kernel, int size) {
  return kernel == Fused::rk4 ? fused_rk4_lane_choices(size, size) : fused_gd_lane_choices(size, size);
}

template <class Real>
void fused_advance(Fused kernel, int lanes, FixedStepSegmentArgs<Real> args) {
  if (kernel == Fused::rk4) return fused_rk4_advance(args, lanes);
  args.variant = kernel == Fused::gd_variant0 ? 0 : kernel == Fused::gd_variant1 ? 1 : 2;
  fused_gd_advance(args, lanes);
}

// The kernel and the CPU over the segments between consecutive `steps` from the same cell; states compared to
// `tolerance`, records exactly (last_s_max to the tolerance). Returns the CPU's cell.
template <class Real>
Cell<Real> compare_fused(Fused kernel, int lanes, const ModelShape& shape, const InitParams& init, int runs,
                         double step, const std::vector<long long>& steps, const StopRule& stop, double tolerance,
                         const std::string& label) {
  Cell<Real> cpu = make_cell<Real>(shape, init, runs), emulated = cpu;
  const Method method = kernel == Fused::rk4 ? Method::rk4 : Method::gd;
  for (size_t c = 1; c < steps.size(); ++c) {
    cpu_fixed_segment(cpu, method, step, steps[c - 1], steps[c], stop);
    fused_advance(kernel, lanes, segment_args(emulated, step, steps[c - 1], steps[c], stop));
    const std::string where = label + " segment " + std::to_string(c);
    EXPECT_LE(max_relative_difference(emulated.states, cpu.states), tolerance) << where;
    expect_same_fixed_records(emulated.records, cpu.records, where, std::max(tolerance, 1e-12));
  }
  return cpu;
}

std::string label_of(Fused kernel, int lanes, const ModelShape& shape) {
  return std::string(name_of(kernel)) + " " + std::to_string(lanes) + " lanes " + emulated::label_of(shape);
}

const LossKind kFusedLosses[] = {LossKind::logistic, LossKind::square, LossKind::cross_entropy};

TEST(FusedKernelEmulation, GdMatchesTheCpu) {
  // Variants 0 and 1, every size, lane choice and loss they serve; 21 runs, three segments.
  for (Fused kernel : {Fused::gd_variant0, Fused::gd_variant1})
    for (int size : {8, 16, 32})
      for (int lanes : lane_choices(kernel, size))
        for (LossKind loss : kFusedLosses) {
          const ModelShape shape = value_softmax(size, size, loss);
          compare_fused<double>(kernel, lanes, shape, spread_for(shape), 21, 0.1, {0, 5, 20, 40}, StopRule{}, 1e-12,
                                label_of(kernel, lanes, shape));
        }
}

TEST(FusedKernelEmulation, LogisticVariantMatchesTheCpu) {
  // Variant 2 (logistic only), every size and lane choice.
  for (int size : {8, 16, 32})
    for (int lanes : lane_choices(Fused::gd_logistic, size)) {
      const ModelShape shape = value_softmax(size, size, LossKind::logistic);
      compare_fused<double>(Fused::gd_logistic, lanes, shape, spread_for(shape), 21, 0.1, {0, 5, 20, 40}, StopRule{},
                            1e-12, label_of(Fused::gd_logistic, lanes, shape));
    }
}

TEST(FusedKernelEmulation, Rk4MatchesTheCpu) {
  for (int size : {8, 16})
    for (int lanes : lane_choices(Fused::rk4, size))
      for (LossKind loss : kFusedLosses) {
        const ModelShape shape = value_softmax(size, size, loss);
        compare_fused<double>(Fused::rk4, lanes, shape, spread_for(shape), 21, 0.2, {0, 3, 10, 25}, StopRule{}, 1e-12,
                              label_of(Fused::rk4, lanes, shape));
      }
}

TEST(FusedKernelEmulation, Float32MatchesTheCpu) {
  for (Fused kernel : {Fused::gd_variant0, Fused::gd_variant1, Fused::gd_logistic, Fused::rk4})
    for (int lanes : lane_choices(kernel, 16))
      for (LossKind loss : kFusedLosses) {
        if (kernel == Fused::gd_logistic && loss != LossKind::logistic) continue;
        const ModelShape shape = value_softmax(16, 16, loss);
        compare_fused<float>(kernel, lanes, shape, spread_for(shape), 21, 0.1, {0, 5, 20}, StopRule{}, 1e-5,
                             "float32 " + label_of(kernel, lanes, shape));
      }
}

// Logistic runs at 8 x 8 from a wide initialization, so that their s_max passes 0.9 and polarization, loss and
// gradient rules stop them at different steps inside the segments.
InitParams stopping_init() { return spread(3.0, 1.5); }

StopRule rule_named(const char* which) {
  StopRule stop;
  if (std::string(which) == "polarized") stop.polarized_eps = 0.07;
  if (std::string(which) == "loss") stop.loss_below = 0.008;
  if (std::string(which) == "gradient") stop.grad_norm_below = 0.007;
  return stop;
}

TEST(FusedKernelEmulation, RunsStopInsideSegmentsLikeTheCpu) {
  // Every fused kernel and lane choice at 8 x 8 under each stop rule: the CPU checks every step, variant 2 only the
  // steps its pre-filter flags; runs that stop keep stepping with their warp (variants 1, 2, rk4) or leave it
  // (variant 0) without touching what they stored. Records exact, float64 states to 1e-12.
  const ModelShape shape = value_softmax(8, 8, LossKind::logistic);
  for (Fused kernel : {Fused::gd_variant0, Fused::gd_variant1, Fused::gd_logistic, Fused::rk4})
    for (int lanes : lane_choices(kernel, 8))
      for (const char* which : {"polarized", "loss", "gradient"}) {
        const Cell<double> cpu = compare_fused<double>(kernel, lanes, shape, stopping_init(), 21, 0.5,
                                                       {0, 40, 120, 300}, rule_named(which), 1e-12,
                                                       std::string(which) + " " + label_of(kernel, lanes, shape));
        const int stopped = 21 - count_status(cpu.records, RunStatus::running);
        const int passed = int(std::count_if(cpu.records.begin(), cpu.records.end(),
                                             [](const RunRecord& r) { return r.first_time[0] >= 0; }));
        EXPECT_GE(stopped, 4) << which;
        EXPECT_LE(stopped, 20) << which;
        EXPECT_GE(passed, 3) << which;
      }
}

// How far the CPU's state of each run moves after `steps` steps when every entry of its initial state is perturbed
// by a relative 1e-15: the amplification of rounding that the run's own dynamics impose, whatever computes them (as
// tests/test_support.h's rounding_sensitivity).
std::vector<double> rounding_sensitivity(const Cell<double>& initial, Method method, double step, long long steps) {
  Cell<double> exact = initial, perturbed = initial;
  for (size_t i = 0; i < perturbed.states.size(); ++i) perturbed.states[i] *= 1 + (i % 2 ? 1e-15 : -1e-15);
  cpu_fixed_segment(exact, method, step, 0, steps, StopRule{});
  cpu_fixed_segment(perturbed, method, step, 0, steps, StopRule{});
  std::vector<double> out;
  for (int r = 0; r < initial.runs; ++r)
    out.push_back(max_relative_difference(std::vector<double>(perturbed.state(r), perturbed.state(r) + initial.p),
                                          std::vector<double>(exact.state(r), exact.state(r) + initial.p)));
  return out;
}

TEST(FusedKernelEmulation, DivergedRunsStopLikeTheCpu) {
  // Square loss with a step beyond gd's and rk4's stable range: some runs overflow, at different steps, in warps
  // whose other runs keep stepping. As tests/test_support.h's expect_same_stops: an exploding run's overflow step is
  // decided by rounding (the kernel sums in another order), so a diverged run needs only the same status and a stop
  // time at its own step count; every other run keeps the CPU's record exactly and its state within 1e-10, or within
  // 100 times its own rounding amplification where its dynamics amplify rounding (near the stability limit).
  const ModelShape shape = value_softmax(8, 8, LossKind::square);
  const long long steps = 300;
  for (Fused kernel : {Fused::gd_variant0, Fused::gd_variant1, Fused::rk4}) {
    const Method method = kernel == Fused::rk4 ? Method::rk4 : Method::gd;
    const double step = kernel == Fused::rk4 ? 12.0 : 8.0;
    const Cell<double> initial = make_cell<double>(shape, spread(0.1, 1.5), 21);
    Cell<double> cpu = initial;
    cpu_fixed_segment(cpu, method, step, 0, steps, StopRule{});
    const std::vector<double> sensitivity = rounding_sensitivity(initial, method, step, steps);
    for (int lanes : lane_choices(kernel, 8)) {
      const std::string label = "diverging " + label_of(kernel, lanes, shape);
      Cell<double> emulated = initial;
      fused_advance(kernel, lanes, segment_args(emulated, step, 0, steps, StopRule{}));
      int diverged = 0;
      for (int r = 0; r < cpu.runs; ++r) {
        const RunRecord &a = emulated.records[size_t(r)], &b = cpu.records[size_t(r)];
        const std::string where = label + " run " + std::to_string(r);
        EXPECT_EQ(a.status, b.status) << where;
        if (b.status == RunStatus::diverged) {
          ++diverged;
          EXPECT_EQ(a.stop_time, double(a.steps) * step) << where;
          continue;
        }
        EXPECT_EQ(a.steps, b.steps) << where;
        EXPECT_EQ(a.t, b.t) << where;
        const double difference = max_relative_difference(
            std::vector<double>(emulated.state(r), emulated.state(r) + cpu.p),
            std::vector<double>(cpu.state(r), cpu.state(r) + cpu.p));
        EXPECT_LT(difference, std::max(1e-10, 100 * sensitivity[size_t(r)])) << where;
      }
      EXPECT_GE(diverged, 3) << label;
      EXPECT_LE(diverged, 18) << label;
    }
  }
}

// dopri5 on the fused kernel with `lanes` lanes per run and the CPU (emulated_cells.h's compare_dopri5).
template <class Real>
Cell<Real> compare_fused_dopri5(int lanes, const ModelShape& shape, const InitParams& init, int runs,
                                const AdaptiveRule& rule, const StopRule& stop, const std::vector<double>& times,
                                double tolerance, const std::string& label) {
  return compare_dopri5<Real>([&](const AdaptiveSegmentArgs<Real>& args) { fused_dopri5_advance(args, lanes); },
                              shape, init, runs, rule, stop, times, tolerance, label);
}

TEST(FusedKernelEmulation, Dopri5MatchesTheCpu) {
  // Every size, lane choice and loss, at tolerances where both follow the exact flow to ~1e-9: checkpoints 0 (the
  // starting step only), 1.5, 40, 300.
  for (int size : {8, 16})
    for (int lanes : fused_dopri5_lane_choices(size, size))
      for (LossKind loss : kFusedLosses) {
        const ModelShape shape = value_softmax(size, size, loss);
        compare_fused_dopri5<double>(lanes, shape, spread_for(shape), 21, tight_rule(), StopRule{}, {0, 1.5, 40, 300},
                                     1e-9, "fused dopri5 " + std::to_string(lanes) + " lanes " + emulated::label_of(shape));
      }
}

TEST(FusedKernelEmulation, Dopri5StopsLikeTheCpu) {
  // The wide logistic runs of RunsStopInsideSegmentsLikeTheCpu under dopri5's default tolerances: first passages
  // placed on the dense output inside steps, polarization inside segments; then a step budget (max_steps with a
  // fixed starting step) that fails some runs while others go on. Every lane choice at 8 x 8.
  const ModelShape shape = value_softmax(8, 8, LossKind::logistic);
  for (int lanes : fused_dopri5_lane_choices(8, 8)) {
    AdaptiveRule rule;
    const std::string label = "fused dopri5 " + std::to_string(lanes) + " lanes";
    const Cell<double> polarizing = compare_fused_dopri5<double>(lanes, shape, stopping_init(), 21, rule,
                                                                 rule_named("polarized"), {0, 20, 60, 150}, 1e-9,
                                                                 label + " polarizing");
    EXPECT_GE(count_status(polarizing.records, RunStatus::polarized), 4);
    EXPECT_GE(count_status(polarizing.records, RunStatus::running), 4);
    rule.max_steps = 20;  // on the CPU: 8 fail, 7 polarize, 6 go on
    rule.initial_step = 0.05;
    const Cell<double> budget = compare_fused_dopri5<double>(lanes, shape, stopping_init(), 21, rule,
                                                             rule_named("polarized"), {0, 20, 60, 150}, 1e-9,
                                                             label + " max_steps");
    EXPECT_GE(count_status(budget.records, RunStatus::failed), 4);
    EXPECT_GE(count_status(budget.records, RunStatus::polarized), 4);
  }
}

TEST(FusedKernelEmulation, Dopri5Float32MatchesTheCpu) {
  AdaptiveRule rule;
  rule.rtol = 1e-5;
  rule.atol = 1e-8;
  for (int lanes : fused_dopri5_lane_choices(16, 16))
    for (LossKind loss : kFusedLosses) {
      const ModelShape shape = value_softmax(16, 16, loss);
      compare_fused_dopri5<float>(lanes, shape, spread_for(shape), 21, rule, StopRule{}, {0, 1.5, 40}, 1e-4,
                                  "fused dopri5 float32 " + std::to_string(lanes) + " lanes " + emulated::label_of(shape));
    }
}

// The emulation's warp operations as the fused kernels use them: butterfly sums within aligned groups of 4 lanes
// (partial masks and width 4), a group leaving early while the others go on, and a warp vote.
struct WarpProbe {
  double* group_sums;  // 64: each lane's group sum of the lane indices
  int* votes;          // 64: __any_sync over the warp of (lane == 7) and __all_sync of (lane < 40)
};

__global__ void warp_probe_kernel(WarpProbe probe) {
  const int t = threadIdx.x, lane = t % 32;
  probe.votes[t] = __any_sync(0xffffffffu, lane == 7) + 2 * __all_sync(0xffffffffu, t < 40);
  if (t / 4 == 3) return;  // the fourth group leaves before the shuffles
  const unsigned mask = 0xfu << (lane / 4 * 4);
  double x = double(t);
  for (int offset = 2; offset > 0; offset /= 2) x += __shfl_xor_sync(mask, x, offset, 4);
  probe.group_sums[t] = x;
}

// A lane that leaves while its group's other lanes wait at a shuffle.
__global__ void divergent_shuffle_kernel(WarpProbe) {
  if (threadIdx.x >= 4 || threadIdx.x == 2) return;
  __shfl_xor_sync(0xfu, 1.0, 1, 4);
}

TEST(FusedKernelEmulation, EmulatedWarpOperations) {
  std::vector<double> group_sums(64, -1.0);
  std::vector<int> votes(64, -1);
  emulation::launch_kernel(warp_probe_kernel, 1, 64, 0, WarpProbe{group_sums.data(), votes.data()});
  for (int t = 0; t < 64; ++t) {
    const int first = t / 4 * 4;
    EXPECT_EQ(group_sums[size_t(t)], t / 4 == 3 ? -1.0 : double(4 * first + 6)) << t;
    EXPECT_EQ(votes[size_t(t)], 1 + (t < 32 ? 2 : 0)) << t;  // lane 7 in both warps; t < 40 in the first only
  }
  EXPECT_DEATH(emulation::launch_kernel(divergent_shuffle_kernel, 1, 32, 0, WarpProbe{}), "divergent warp operation");
}

}  // namespace
}  // namespace softflow
