// Purpose: the CUDA kernel sets of `softflow run --cuda-kernels` (host/cuda_kernel_set.h, cuda_cell_input.h's
// apply_cuda_kernel_set): validated leaves every kernel choice at the backend's default; candidate turns on every
// opt-in kernel, and fused gd's logistic variant only for the logistic loss (it throws for the others). Host code
// only: runs in every build with the CUDA parts, with or without a device.
#include <gtest/gtest.h>

#include "cuda_cell_input.h"
#include "test_support.h"

namespace softflow {
namespace {

template <class Real>
CudaCellInput<Real> input_for(const nlohmann::json& changes, CudaKernelSet set) {
  const Study study = testing::study_with(changes);
  const CellData<Real> data(study.cells[0], study.seed, 0, study.runs);
  CudaCellInput<Real> input = make_cuda_cell_input(study, 0, data);
  apply_cuda_kernel_set(set, input);
  input.data = nullptr;  // data dies here; the kernel choices are what is checked
  return input;
}

TEST(CudaKernelSet, ValidatedKeepsTheBackendDefaults) {
  const CudaCellInput<double> input = input_for<double>({{"runs", 8}}, CudaKernelSet::validated);
  const CudaCellInput<double> defaults;
  EXPECT_EQ(input.fused_lanes, defaults.fused_lanes);
  EXPECT_EQ(input.fused_variant, defaults.fused_variant);
  EXPECT_EQ(input.block_gd, defaults.block_gd);
  EXPECT_EQ(input.fused_rk4_lanes, 0);
  EXPECT_EQ(input.block_rk4, 0);
  EXPECT_EQ(input.fused_dopri5_lanes, 0);
  EXPECT_EQ(input.block_dopri5, 0);
  EXPECT_EQ(input.block_tied, 0);
  EXPECT_EQ(input.cublas_regression, 0);
  EXPECT_EQ(input.cublas_attention, 0);
}

TEST(CudaKernelSet, CandidateTurnsOnEveryOptInKernel) {
  const CudaCellInput<float> input = input_for<float>({{"runs", 8}}, CudaKernelSet::candidate);
  EXPECT_EQ(input.fused_rk4_lanes, -1);
  EXPECT_EQ(input.block_rk4, -1);
  EXPECT_EQ(input.fused_dopri5_lanes, -1);
  EXPECT_EQ(input.block_dopri5, -1);
  EXPECT_EQ(input.block_tied, -1);
  EXPECT_EQ(input.cublas_regression, 1);
  EXPECT_EQ(input.cublas_attention, 1);
  EXPECT_EQ(input.fused_variant, 2);  // the default study's loss is logistic
  for (const char* loss : {"square", "cross_entropy"})
    EXPECT_EQ(input_for<float>({{"runs", 8}, {"loss", loss}}, CudaKernelSet::candidate).fused_variant, -1) << loss;
  EXPECT_STREQ(cuda_kernel_set_name(parse_cuda_kernel_set("candidate")), "candidate");
  EXPECT_STREQ(cuda_kernel_set_name(parse_cuda_kernel_set("validated")), "validated");
}

}  // namespace
}  // namespace softflow
