// Purpose: `softflow bench` computes its yardsticks as documented (bench_metrics.h, fma_peak.h, bench.h): the
// useful FLOP counts, the GPU peak formula, the FMA micro-kernel's FLOP count, and every point's derived figures
// from its own timings, and the CPU's description that names the machine beside them. No timing is asserted.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>

#include "bench.h"
#include "bench_metrics.h"
#include "engine.h"
#include "fma_peak.h"

namespace softflow {
namespace {

TEST(BenchTest, UsefulFlopsPerStepAreTheDocumentedCounts) {
  EXPECT_EQ(useful_flops_per_step(Method::gd, 16, 16), 6.0 * 16 * 16);
  EXPECT_EQ(useful_flops_per_step(Method::gd, 3, 7), 6.0 * 3 * 7);
  EXPECT_EQ(useful_flops_per_step(Method::rk4, 16, 16), 34.0 * 16 * 16);
  EXPECT_EQ(useful_flops_per_step(Method::dopri5, 16, 16), 0.0);
}

TEST(BenchTest, CpuDescriptionNamesFamilyAndModelOfTheFirstProcessor) {
  // /proc/cpuinfo as a KVM guest on a Zen 4 host shows it: a bare name, told apart by family and model.
  std::istringstream zen4(
      "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
      "stepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: other\n");
  EXPECT_EQ(describe_cpu(zen4), "AMD EPYC (family 25, model 17)");
  std::istringstream name_only("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n");
  EXPECT_EQ(describe_cpu(name_only), "Some CPU @ 2.0GHz");
  std::istringstream no_name("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n");  // an Arm listing
  EXPECT_EQ(describe_cpu(no_name), "unknown CPU");
  std::istringstream empty_values("model name\t:\ncpu family\t: \nmodel\t\t: 1\n");
  EXPECT_EQ(describe_cpu(empty_values), "unknown CPU");
}

TEST(BenchTest, GpuPeakIsLanesTimesTwoTimesClock) {
  // H100 SXM: 132 SMs at 1980 MHz: 132 x 128 x 2 x 1.98e9 = 66908.16 GFLOP/s FP32, half that FP64.
  EXPECT_NEAR(gpu_peak_gflops(132, 1980000, false), 66908.16, 1e-6);
  EXPECT_NEAR(gpu_peak_gflops(132, 1980000, true), 33454.08, 1e-6);
}

TEST(BenchTest, FmaMicroKernelCountsItsFlops) {
  EXPECT_EQ(fma_flops_per_iteration("avx512f", false), 16 * 16 * 2);
  EXPECT_EQ(fma_flops_per_iteration("avx512f", true), 16 * 8 * 2);
  EXPECT_EQ(fma_flops_per_iteration("avx2+fma", false), 16 * 8 * 2);
  EXPECT_EQ(fma_flops_per_iteration("sse2 (no fma)", true), 16 * 2 * 2);
  for (const bool float64 : {false, true}) {
    const FmaPeak peak = measure_fma_peak(float64, 1, 1000);
    EXPECT_EQ(peak.threads, 1);
    EXPECT_EQ(peak.flops, 1000 * fma_flops_per_iteration(peak.isa, float64));
    EXPECT_GT(peak.seconds, 0);
  }
}

TEST(BenchTest, PointsDeriveTheirFiguresFromTheirTimings) {
  BenchOptions options;
  options.backends = {"cpu"};
  options.sizes = {4, 6};
  options.runs = {64};
  options.precisions = {"float64"};
  options.integrators = {"gd", "rk4"};
  // Long enough that a busy machine (ctest -j2 beside other work) does not lose the steps' time in the noise of
  // the observations it is measured against: at 0.005 s a point was once skipped for that under ctest -j2.
  options.seconds = 0.05;
  options.repeats = 3;
  options.progress = false;
  const nlohmann::json bench = run_bench(options);
  const double peak = bench["machine"]["backends"]["cpu"]["peak_gflops"]["float64"];
  EXPECT_GT(peak, 0);
  ASSERT_EQ(bench["points"].size(), 4u);
  for (const auto& point : bench["points"]) {
    ASSERT_FALSE(point.contains("skipped")) << point.dump();
    const std::vector<double> seconds = point["seconds"];
    ASSERT_EQ(seconds.size(), 3u);
    std::vector<double> sorted = seconds;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(point["median_seconds"].get<double>(), sorted[1]);
    EXPECT_EQ(point["min_seconds"].get<double>(), sorted[0]);
    EXPECT_EQ(point["max_seconds"].get<double>(), sorted[2]);
    const int d = point["d"];
    const double steps = double(point["runs"].get<long long>()) * double(point["steps"].get<long long>());
    const double per_step = point["integrator"] == "gd" ? 6.0 * d * d : 34.0 * d * d;
    EXPECT_DOUBLE_EQ(point["trajectory_steps_per_second"].get<double>(), steps / sorted[1]);
    EXPECT_DOUBLE_EQ(point["useful_gflops_per_second"].get<double>(), per_step * steps / sorted[1] / 1e9);
    EXPECT_DOUBLE_EQ(point["fraction_of_peak"].get<double>(), point["useful_gflops_per_second"].get<double>() / peak);
  }
  const std::string table = bench_markdown(bench);
  const std::string kernel = bench["points"].back()["kernel"];
  EXPECT_NE(table.find("| cpu | " + kernel + " | 6 | 64 | float64 | rk4 |"), std::string::npos) << table;
}

TEST(BenchTest, PointsThatDoNotFitAreSkippedWithTheReason) {
  BenchOptions options;
  options.backends = {"cpu"};
  options.sizes = {4096};
  options.runs = {4294967294LL};
  options.precisions = {"float64"};
  options.integrators = {"gd"};
  options.progress = false;
  const nlohmann::json bench = run_bench(options);
  ASSERT_EQ(bench["points"].size(), 1u);
  EXPECT_NE(bench["points"][0]["skipped"].get<std::string>().find("too little memory"), std::string::npos);
}

}  // namespace
}  // namespace softflow
