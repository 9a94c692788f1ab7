// Purpose: a cell's loss data (targets, regression data sets, attention data sets), drawn from the counter-based
// streams: one array for the whole cell (CellParams::data_shared) or one per run. Layout per model.h / attention.h.
#pragma once

#include <cstdint>
#include <vector>

#include "softflow/initial_state.h"
#include "study.h"

namespace softflow {

InitParams init_params(const CellParams& cell);

// Fills `data` (shape.data_size()) for `run` (kSharedRunId for cell-wide data).
template <class Real>
void draw_loss_data(const CellParams& cell, std::uint64_t seed, std::uint32_t cell_index, std::uint32_t run,
                    Real* data);

// The regression data set (science.md section 1): X (m x d) = L diag(sigma) R^T with Haar-random orthonormal L, R
// and singular values sigma = linspace(1, 1/kappa, min(m, d)); y ~ N(0, I_m). x_out: m*d row-major, y_out: m.
void draw_regression_data(int m, int d, double kappa, std::uint64_t seed, std::uint32_t cell_index,
                          std::uint32_t run, double* x_out, double* y_out);

// Loss data of every run of a cell: shared (one copy) or per run.
template <class Real>
class CellData {
 public:
  CellData(const CellParams& cell, std::uint64_t seed, std::uint32_t cell_index, long long runs);
  const Real* for_run(long long run) const { return values_.data() + (shared_ ? 0 : run * stride_); }
  bool shared() const { return shared_; }  // one array for every run

 private:
  bool shared_;
  long long stride_;
  std::vector<Real> values_;
};

}  // namespace softflow
