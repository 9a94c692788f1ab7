// Purpose: drawing a cell's loss data (see cell_data.h).
#include "cell_data.h"

#include <cmath>

#include "attention_data.h"

namespace softflow {

InitParams init_params(const CellParams& cell) {
  InitParams init;
  init.sigma_v = cell.sigma_v;
  init.mu_a = cell.mu_a;
  init.sigma_a = cell.sigma_a;
  init.identity_init = cell.identity_init;
  init.ce_temperature = cell.ce_temperature;
  return init;
}

namespace {

// Orthonormalizes the `cols` columns of a (rows x cols, row-major, rows >= cols) in place: modified Gram-Schmidt,
// applied twice for orthogonality to working precision.
void orthonormalize_columns(std::vector<double>& a, int rows, int cols) {
  for (int pass = 0; pass < 2; ++pass)
    for (int j = 0; j < cols; ++j) {
      for (int k = 0; k < j; ++k) {
        double projection = 0;
        for (int i = 0; i < rows; ++i) projection += a[i * cols + k] * a[i * cols + j];
        for (int i = 0; i < rows; ++i) a[i * cols + j] -= projection * a[i * cols + k];
      }
      double norm = 0;
      for (int i = 0; i < rows; ++i) norm += a[i * cols + j] * a[i * cols + j];
      norm = std::sqrt(norm);
      for (int i = 0; i < rows; ++i) a[i * cols + j] /= norm;
    }
}

std::vector<double> gaussian_matrix(int rows, int cols, const RandomStream& stream) {
  std::vector<double> a(size_t(rows) * cols);
  stream.normals(a.data(), int(a.size()));
  return a;
}

}  // namespace

void draw_regression_data(int m, int d, double kappa, std::uint64_t seed, std::uint32_t cell_index,
                          std::uint32_t run, double* x_out, double* y_out) {
  const int rank = m < d ? m : d;
  std::vector<double> left = gaussian_matrix(m, rank, {seed, cell_index, run, RandomVariable::regression_left});
  std::vector<double> right = gaussian_matrix(d, rank, {seed, cell_index, run, RandomVariable::regression_right});
  orthonormalize_columns(left, m, rank);
  orthonormalize_columns(right, d, rank);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < d; ++j) {
      double x = 0;
      for (int k = 0; k < rank; ++k) {
        const double sigma = rank == 1 ? 1.0 : 1.0 + (1.0 / kappa - 1.0) * double(k) / double(rank - 1);
        x += left[i * rank + k] * sigma * right[j * rank + k];
      }
      x_out[i * d + j] = x;
    }
  RandomStream{seed, cell_index, run, RandomVariable::regression_y}.normals(y_out, m);
}

template <class Real>
void draw_loss_data(const CellParams& cell, std::uint64_t seed, std::uint32_t cell_index, std::uint32_t run,
                    Real* data) {
  const ModelShape& shape = cell.shape;
  if (shape.model == ModelKind::attention) {
    std::vector<double> values(size_t(shape.data_size()));
    draw_attention_data(cell, seed, cell_index, run, values.data());
    for (size_t i = 0; i < values.size(); ++i) data[i] = Real(values[i]);
    return;
  }
  if (shape.loss != LossKind::regression) {
    draw_target_vector(shape, init_params(cell), seed, cell_index, run, data);
    return;
  }
  std::vector<double> values(size_t(shape.data_size()));
  draw_regression_data(shape.m, shape.d, cell.kappa, seed, cell_index, run, values.data(),
                       values.data() + shape.m * shape.d);
  for (size_t i = 0; i < values.size(); ++i) data[i] = Real(values[i]);
}

template <class Real>
CellData<Real>::CellData(const CellParams& cell, std::uint64_t seed, std::uint32_t cell_index, long long runs)
    : shared_(cell.data_shared()), stride_(cell.shape.data_size()) {
  const long long copies = shared_ ? 1 : runs;
  values_.resize(size_t(copies * stride_));
  if (shared_) {
    draw_loss_data(cell, seed, cell_index, kSharedRunId, values_.data());
    return;
  }
#pragma omp parallel for schedule(static)
  for (long long run = 0; run < runs; ++run)
    draw_loss_data(cell, seed, cell_index, std::uint32_t(run), values_.data() + run * stride_);
}

template void draw_loss_data<float>(const CellParams&, std::uint64_t, std::uint32_t, std::uint32_t, float*);
template void draw_loss_data<double>(const CellParams&, std::uint64_t, std::uint32_t, std::uint32_t, double*);
template class CellData<float>;
template class CellData<double>;

}  // namespace softflow
