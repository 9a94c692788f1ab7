// Purpose: the CPU backend's SIMD kernel (simd_kernel.h), gd and rk4, against the scalar reference kernel: per-run
// states after 1000 steps (float64 to 1e-10 relative; float32 within a small multiple of the scalar float32 error
// against the float64 reference), for every loss, shared and per-run data, sizes with and without remainders of
// the blocks; the same statuses, stop times, first passages and step counts when runs polarize, converge or
// diverge inside a segment; groups that are partly stopped or padded; results independent of the thread count.
// The kernel's exponential against std::exp; the exp and the float64 parity on every instruction set the CPU runs.
// Skips in builds without Highway.
#include <gtest/gtest.h>
#include <hwy/targets.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "cpu_backend.h"
#include "engine.h"
#include "simd_kernel.h"
#include "test_support.h"

namespace softflow {
namespace {

class SimdGdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (simd_target() == "none") GTEST_SKIP() << "built without Highway: no SIMD kernel";
  }
};

template <class Real>
testing::KernelRun<Real> run_kernel(const Study& study, CpuKernel kernel) {
  testing::KernelRun<Real> out;
  const CellParams& cell = study.cells[0];
  out.state_size = cell.shape.state_size();
  CpuCellSimulation<Real> simulation(study, cell, 0, kernel);
  CheckpointObservations observations;
  for (size_t c = 0; c < simulation.checkpoint_count(); ++c) simulation.advance_and_observe(c, observations, nullptr);
  for (long long run = 0; run < study.runs; ++run) {
    out.states.insert(out.states.end(), simulation.state(run), simulation.state(run) + out.state_size);
    out.records.push_back(simulation.record(run));
  }
  return out;
}

// 1000 gd or rk4 steps in two segments; 37 runs leave a partly filled last group.
nlohmann::json fixed_step_study(const char* method, const char* loss, int d, int n, const char* target) {
  return {{"runs", 37}, {"loss", loss}, {"integrator", method}, {"step", 0.05}, {"sigma_a", 0.3}, {"d", d},
          {"n", n}, {"regression_samples", 7}, {"target", target},
          {"checkpoints", {{"schedule", "list"}, {"times", {0, 25, 50}}}}};
}

const char* const kMethods[] = {"gd", "rk4"};

TEST_F(SimdGdTest, HandlesValueSoftmaxGdAndRk4Only) {
  const ModelShape value_softmax;
  ModelShape tied;
  tied.model = ModelKind::tied;
  EXPECT_TRUE(simd_handles(value_softmax, Method::gd, false));
  EXPECT_TRUE(simd_handles(value_softmax, Method::gd, true));
  EXPECT_TRUE(simd_handles(value_softmax, Method::rk4, false));
  EXPECT_FALSE(simd_handles(value_softmax, Method::dopri5, false));
  EXPECT_FALSE(simd_handles(tied, Method::gd, false));
  ModelShape huge;
  huge.d = huge.n = 1024;  // a group's states would take more than kSimdGroupBytes
  EXPECT_FALSE(simd_handles(huge, Method::gd, false));
  EXPECT_EQ(simd_thread_bytes(huge, Method::gd, false), 0);
  EXPECT_EQ(simd_thread_bytes(tied, Method::gd, false), 0);
  EXPECT_GE(simd_thread_bytes(value_softmax, Method::gd, true),
            8.0 * value_softmax.state_size() * simd_lanes(true) * simd_slices(value_softmax, Method::gd, true));
  const Study study = testing::study_with(fixed_step_study("gd", "logistic", 16, 16, "per_run"));
  EXPECT_EQ(cpu_kernel_name(CpuKernel::scalar, study.cells[0]), "scalar");
  ModelShape small;
  small.d = small.n = 4;
  EXPECT_EQ(simd_slices(small, Method::gd, false), 2);  // two vectors of runs fit in kSimdTwoSliceBytes
  EXPECT_EQ(simd_slices(small, Method::rk4, false), 1);
  EXPECT_EQ(simd_slices(huge, Method::gd, false), 1);
  EXPECT_EQ(cpu_kernel_name(CpuKernel::simd, study.cells[0]).rfind("simd (" + simd_target(), 0), 0u);
}

// The group call alone (no checkpoint observation after it): every field of each run's record against
// advance_fixed_step's, for a group with fewer runs than lanes, per-run data, from step 40 to step 340.
void expect_group_keeps_the_records_advance_fixed_step_keeps(Method method) {
  const char* name = method == Method::gd ? "gd" : "rk4";
  const Study study = testing::study_with(fixed_step_study(name, "logistic", 6, 5, "per_run"));
  const CellParams& cell = study.cells[0];
  const int runs = 3;
  std::vector<double> states, data, reference_states;
  std::vector<RunRecord> records(runs), reference(runs);
  std::vector<double> work(size_t(integrator_workspace_size(cell.shape, method)));
  for (int run = 0; run < runs; ++run) {
    auto setup = testing::run_setup<double>(study, std::uint32_t(run));
    records[run].steps = reference[run].steps = 40;
    states.insert(states.end(), setup.theta.begin(), setup.theta.end());
    data.insert(data.end(), setup.data.begin(), setup.data.end());
    advance_fixed_step(cell.shape, method, cell.step, 40, 340, study.stop, setup.theta.data(),
                       setup.data.data(), reference[run], work.data());
    reference_states.insert(reference_states.end(), setup.theta.begin(), setup.theta.end());
  }
  SimdGroup<double> group;
  group.shape = &cell.shape;
  group.method = method;
  group.step = cell.step;
  group.k_from = 40;
  group.k_to = 340;
  group.stop = &study.stop;
  group.count = runs;
  group.states = states.data();
  group.data = data.data();
  group.data_per_run = true;
  group.records = records.data();
  simd_advance(group);
  EXPECT_LT(testing::max_relative_difference(states, reference_states), 1e-10) << name;
  for (int run = 0; run < runs; ++run) {
    const RunRecord &a = records[run], &b = reference[run];
    EXPECT_EQ(a.t, b.t) << name;
    EXPECT_EQ(a.steps, b.steps) << name;
    EXPECT_EQ(a.status, b.status) << name;
    EXPECT_EQ(a.last_check_t, b.last_check_t) << name;
    EXPECT_NEAR(a.last_s_max, b.last_s_max, 1e-12) << name;
    EXPECT_GT(a.last_s_max, 0.2) << name;
    for (int k = 0; k < kPassageCount; ++k) EXPECT_EQ(a.first_time[k], b.first_time[k]) << name;
  }
}

TEST_F(SimdGdTest, OneGroupKeepsTheRecordsAdvanceFixedStepKeeps) {
  expect_group_keeps_the_records_advance_fixed_step_keeps(Method::gd);
  expect_group_keeps_the_records_advance_fixed_step_keeps(Method::rk4);
}

TEST_F(SimdGdTest, Float64StatesAfter1000StepsMatchTheScalarKernel) {
  // n = 64 and 128: V's rows span whole multiples of 2 KiB in a group's buffer (AVX-512: 8 float64 lanes x 64 or
  // 128; AVX2: 4 x 64 or 128), so the buffer pads them (v_row_pitch); d = 9 takes a block of eight rows and one more.
  // 4 x 16 takes two slices of lanes per group, whose 16 entries span 2 KiB on AVX-512: padded too.
  const std::vector<std::pair<int, int>> sizes = {{6, 5}, {16, 16}, {3, 40}, {40, 3}, {21, 19}, {9, 64}, {3, 128},
                                                  {4, 16}};
  std::set<int> slice_counts;
  for (const auto& [d, n] : sizes) {
    ModelShape shape;
    shape.d = d;
    shape.n = n;
    slice_counts.insert(simd_slices(shape, Method::gd, true));
  }
  EXPECT_EQ(slice_counts.size(), 2u) << "both group layouts (one and two vectors of runs) are exercised";
  for (const char* method : kMethods)
    for (const auto& [d, n] : sizes)
      for (const char* loss : {"logistic", "square", "cross_entropy", "regression"})
        for (const char* target : {"per_run", "shared"}) {
          const Study study = testing::study_with(fixed_step_study(method, loss, d, n, target));
          const auto simd = run_kernel<double>(study, CpuKernel::simd);
          const auto scalar = run_kernel<double>(study, CpuKernel::scalar);
          EXPECT_LT(testing::max_relative_difference(simd.states, scalar.states), 1e-10)
              << method << " " << d << "x" << n << " " << loss;
          for (size_t r = 0; r < simd.records.size(); ++r) {
            EXPECT_EQ(simd.records[r].steps, 1000) << d << "x" << n << " " << loss << " " << r;
            EXPECT_EQ(simd.records[r].t, scalar.records[r].t);
            EXPECT_EQ(simd.records[r].last_check_t, scalar.records[r].last_check_t);
            EXPECT_NEAR(simd.records[r].last_s_max, scalar.records[r].last_s_max, 1e-12);
          }
        }
}

TEST_F(SimdGdTest, Float32ErrorIsASmallMultipleOfTheScalarFloat32Error) {
  for (const char* method : kMethods)
    for (const char* loss : {"logistic", "square", "cross_entropy", "regression"}) {
      nlohmann::json changes = fixed_step_study(method, loss, 16, 16, "per_run");
      const auto reference = run_kernel<double>(testing::study_with(changes), CpuKernel::scalar);
      changes["precision"] = "float32";
      const Study study = testing::study_with(changes);
      const auto simd = run_kernel<float>(study, CpuKernel::simd);
      const auto scalar = run_kernel<float>(study, CpuKernel::scalar);
      const double simd_error = testing::max_relative_difference(simd.states, reference.states);
      const double scalar_error = testing::max_relative_difference(scalar.states, reference.states);
      EXPECT_LT(simd_error, 4 * scalar_error + 1e-6) << method << " " << loss << ": scalar float32 error "
                                                     << scalar_error;
    }
}

// Every run's record and, unless it diverged, its state agree between the SIMD and the scalar kernel (float64;
// testing::expect_same_stops); returns how many stopped.
int expect_same_stops(const Study& study) {
  return testing::expect_same_stops(study, run_kernel<double>(study, CpuKernel::simd),
                                    run_kernel<double>(study, CpuKernel::scalar));
}

TEST_F(SimdGdTest, PolarizedRunsStopAndRecordPassagesLikeTheScalarKernel) {
  // Runs polarize at different steps inside both segments; lanes of a group stop one by one.
  for (const char* method : kMethods) {
    const Study study = testing::study_with({{"runs", 200}, {"integrator", method}, {"step", 0.5},
                                             {"stop", {{"polarized_eps", 0.1}}},
                                             {"checkpoints", {{"schedule", "list"}, {"times", {0, 3000, 9000}}}}});
    const int stopped = expect_same_stops(study);
    EXPECT_GT(stopped, 80) << method;
    EXPECT_LT(stopped, 200) << method;  // some groups keep running lanes beside stopped ones
  }
}

TEST_F(SimdGdTest, ConvergedRunsStopLikeTheScalarKernel) {
  for (const char* method : kMethods)
    for (const char* rule : {"loss_below", "grad_norm_below"}) {
      const Study study = testing::study_with({{"runs", 100}, {"integrator", method}, {"loss", "square"}, {"d", 5},
                                               {"n", 7}, {"step", 0.2}, {"stop", {{rule, 0.01}}},
                                               {"checkpoints", {{"schedule", "list"}, {"times", {0, 20, 200}}}}});
      EXPECT_GT(expect_same_stops(study), 50) << method << " " << rule;
    }
}

// The logistic loss's gd has its own stepper, whose pre-filter computes the loss only where a loss_below rule or
// a flagged lane needs it: runs stop at the loss threshold (and at the gradient one) like the scalar kernel's.
TEST_F(SimdGdTest, LogisticRunsStopAtLossAndGradientThresholdsLikeTheScalarKernel) {
  for (const auto& [rule, threshold] : {std::pair{"loss_below", 0.007}, std::pair{"grad_norm_below", 0.008}}) {
    const Study study = testing::study_with({{"runs", 100}, {"integrator", "gd"}, {"loss", "logistic"}, {"d", 5},
                                             {"n", 7}, {"step", 0.5}, {"sigma_v", 0.5}, {"stop", {{rule, threshold}}},
                                             {"checkpoints", {{"schedule", "list"}, {"times", {0, 20, 200}}}}});
    const int stopped = expect_same_stops(study);
    EXPECT_GT(stopped, 20) << rule;
    EXPECT_LT(stopped, 100) << rule;
  }
}

TEST_F(SimdGdTest, DivergedRunsStopLikeTheScalarKernel) {
  // Square loss with a step beyond the stable range: about half the runs blow up, at different steps; lanes that
  // stop keep computing beside the others and must not change what was recorded for them or their neighbours.
  for (const char* method : kMethods) {
    const double step = std::string(method) == "gd" ? 4.0 : 8.0;  // 750 steps; rk4 is stable to larger steps
    const Study study = testing::study_with({{"runs", 96}, {"integrator", method}, {"loss", "square"}, {"d", 16},
                                             {"n", 16}, {"step", step}, {"sigma_v", 1.5},
                                             {"checkpoints", {{"schedule", "list"}, {"times", {0, 750 * step}}}}});
    const int stopped = expect_same_stops(study);
    EXPECT_GT(stopped, 20) << method;
    EXPECT_LT(stopped, 90) << method;
  }
}

TEST_F(SimdGdTest, ResultsDoNotDependOnTheThreadCount) {
  nlohmann::json changes = fixed_step_study("gd", "logistic", 16, 16, "per_run");
  changes["integrator"] = {"gd", "rk4"};
  changes["runs"] = 1000;
  changes["precision"] = "float32";
  const Study study = testing::study_with(changes);
  EngineOptions options;
  options.backend = BackendChoice::cpu;
  options.progress = false;
  options.threads = 1;
  const nlohmann::json one = reproducible_part(run_study(study, options));
  options.threads = 2;
  const nlohmann::json results = run_study(study, options);
  EXPECT_EQ(reproducible_part(results), one);
  for (int cell = 0; cell < 2; ++cell)
    EXPECT_EQ(results["provenance"]["cpu_kernels"][cell].get<std::string>().rfind("simd", 0), 0u);
}

// Runs check(name) with the SIMD kernel dispatched to each instruction set it is compiled for that this CPU runs
// (AVX-512, AVX2, SSE4), then restores the normal dispatch. Returns how many it ran.
template <class Check>
int for_each_instruction_set(const Check& check) {
  int count = 0;
  const std::int64_t supported = hwy::SupportedTargets();
  for (const std::int64_t target : {HWY_AVX3, HWY_AVX2, HWY_SSE4}) {
    if ((supported & target) == 0) continue;
    hwy::SetSupportedTargetsForTest(target);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());  // dispatch again
    const std::string name = hwy::TargetName(target);
    if (simd_target() != name) continue;  // not compiled for it
    check(name);
    ++count;
  }
  hwy::SetSupportedTargetsForTest(0);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  return count;
}

// Largest error of simd_exp_nonpositive against std::exp in a wider type, in units in the last place of the
// reference, over x uniform in [lo, 0] and x = -10^k (k from -30 to 1.9) where the result is normal; the
// flushed and subnormal range below, and the exact points, are checked by the caller.
template <class Real, class Wide>
double exp_ulp_error(double lo) {
  std::vector<Real> x;
  for (int i = 0; i <= (1 << 20); ++i) x.push_back(Real(lo * i / double(1 << 20)));
  for (double k = -30; k < 1.9; k += 1e-3) x.push_back(Real(-std::pow(10.0, k)));
  std::vector<Real> out(x.size());
  simd_exp_nonpositive(x.data(), out.data(), x.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const Wide reference = std::exp(Wide(x[i]));
    if (reference < Wide(std::numeric_limits<Real>::min())) continue;
    const Real rounded = Real(reference);
    const Wide ulp = Wide(std::nextafter(rounded, Real(2))) - Wide(rounded);
    worst = std::max(worst, double(std::abs(Wide(out[i]) - reference) / ulp));
  }
  return worst;
}

// The exact points and the flush: exp(0) = exp(-0) = 1, exp(-inf) = 0, NaN stays NaN, 0 below the flush bound
// (where std::exp is subnormal or 0), and a count that is not a multiple of the vector length.
template <class Real>
void expect_exp_edges(Real flush_below) {
  const Real inf = std::numeric_limits<Real>::infinity(), nan = std::numeric_limits<Real>::quiet_NaN();
  const std::vector<Real> x = {Real(0), Real(-0.0), -inf, nan, Real(flush_below * 1.01), Real(-1e6),
                               std::numeric_limits<Real>::lowest(), Real(-1)};
  std::vector<Real> out(x.size(), Real(-7));
  simd_exp_nonpositive(x.data(), out.data(), x.size());
  EXPECT_EQ(out[0], Real(1));
  EXPECT_EQ(out[1], Real(1));
  EXPECT_EQ(out[2], Real(0));
  EXPECT_TRUE(std::isnan(out[3]));
  EXPECT_EQ(out[4], Real(0));
  EXPECT_LT(std::exp(double(x[4])), double(std::numeric_limits<Real>::min()));
  EXPECT_EQ(out[5], Real(0));
  EXPECT_EQ(out[6], Real(0));
  EXPECT_NEAR(out[7], std::exp(Real(-1)), 2 * std::numeric_limits<Real>::epsilon());
}

// The kernel's exponential (every exp it takes has an argument <= 0) is as accurate as Highway's hn::Exp
// (documented: 1 ulp): at most 1.5 ulps from std::exp over the normal range (measured here: 1.005 / 0.985), on
// every instruction set the kernel is compiled for that this CPU runs (SSE4 has no FMA: its rounding add and
// reduction round twice).
TEST_F(SimdGdTest, ExponentialOfNonpositiveArgumentsIsWithinOneAndAHalfUlps) {
  const int checked = for_each_instruction_set([](const std::string& name) {
    const double float_error = exp_ulp_error<float, double>(-87.3);
    const double double_error = exp_ulp_error<double, long double>(-708.0);
    EXPECT_LE(float_error, 1.5) << name;
    EXPECT_LE(double_error, 1.5) << name;
    std::printf("exp_nonpositive on %s: worst error %.3f ulp (float32), %.3f ulp (float64)\n", name.c_str(),
                float_error, double_error);
    expect_exp_edges<float>(-87.5f);
    expect_exp_edges<double>(-708.0);
  });
  EXPECT_GE(checked, 1);
}

// The whole kernel on the instruction sets this CPU has besides its best (which the tests above use): float64
// states after 1000 gd / rk4 steps within 1e-10 of the scalar kernel for every loss, at d = n = 16, at 5 x 7
// (block remainders) and at 3 x 128 (V's rows padded in the group's buffer: v_row_pitch).
TEST_F(SimdGdTest, Float64StatesMatchTheScalarKernelOnEveryInstructionSet) {
  const std::string best = simd_target();
  const int checked = for_each_instruction_set([&](const std::string& name) {
    if (name == best) return;
    for (const char* method : kMethods)
      for (const auto& [d, n] : {std::pair{16, 16}, std::pair{5, 7}, std::pair{3, 128}})
        for (const char* loss : {"logistic", "square", "cross_entropy", "regression"}) {
          const Study study = testing::study_with(fixed_step_study(method, loss, d, n, "per_run"));
          const auto simd = run_kernel<double>(study, CpuKernel::simd);
          const auto scalar = run_kernel<double>(study, CpuKernel::scalar);
          EXPECT_LT(testing::max_relative_difference(simd.states, scalar.states), 1e-10)
              << name << " " << method << " " << d << "x" << n << " " << loss;
        }
  });
  if (checked < 2) GTEST_SKIP() << "this CPU runs only one of the kernel's instruction sets";
}

}  // namespace
}  // namespace softflow
