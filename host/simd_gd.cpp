// Purpose: the CPU backend's SIMD gd path (see simd_gd.h), compiled by Highway once per instruction set and
// dispatched at run time. Buffers are lane-interleaved: entry e of lane l lives at buf[e * W + l], so one aligned
// vector load gives entry e of every run of the group.
//
// One gd step of a group, from theta_k (s = softmax(a_k) and beta = V_k s already known):
//   loss, r = loss_and_residual(beta)          O(d) (regression: O(m d))
//   u = V^T r                                  pass 1 over V: one load and one FMA per entry
//   da = s .* (u - <s, u>), checks at t_k      O(n)
//   a += h da, s' = softmax(a)                 O(n) exponentials
//   V += (h r) s^T, beta = V s'                pass 2 over V: one load, one store, two FMAs per entry
// so each step reads V twice and writes it once, and the matrix work is the 6 d n FLOPs `softflow bench` counts.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_gd.cpp"  // found through the host/ include directory
#include <hwy/foreach_target.h>  // NOLINT: includes this file once per target

#include <hwy/aligned_allocator.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "simd_gd.h"

// Compile-time trip counts are unrolled so that a block's accumulators stay in registers.
#ifndef SOFTFLOW_SIMD_UNROLL
#define SOFTFLOW_SIMD_UNROLL _Pragma("GCC unroll 16")
#endif

#ifndef SOFTFLOW_SIMD_ONCE
#define SOFTFLOW_SIMD_ONCE
namespace softflow {
namespace simd_detail {

// The scalar side of the pre-filter: thresholds nudged one ulp outward so that the vector comparison in Real flags
// every lane the scalar rule (in double) could act on.
template <class Real>
Real at_most(double x) { return std::nextafter(Real(x), -std::numeric_limits<Real>::infinity()); }
template <class Real>
Real at_least(double x) { return std::nextafter(Real(x), std::numeric_limits<Real>::infinity()); }

// The lowest first-passage threshold the run has not reached yet (2 = all reached: s_max never exceeds 1).
inline double next_passage(const RunRecord& rec) {
  for (int k = 0; k < kPassageCount; ++k)
    if (rec.first_time[k] < 0) return passage_threshold(k);
  return 2.0;
}

// Entries (each one value per lane) of a group's buffer: state, data, s, s_next, u, da (n each), beta, r, hr (d
// each), regression residuals (m), and 6 per-lane scalars.
inline size_t group_buffer_entries(const ModelShape& shape) {
  return size_t(shape.state_size()) + shape.data_size() + 4 * shape.n + 3 * shape.d + shape.m + 6;
}

// Per-thread scratch that grows to the largest group seen (aligned for vector loads).
template <class Real>
Real* thread_buffer(size_t count) {
  thread_local hwy::AlignedFreeUniquePtr<Real[]> buffer;
  thread_local size_t capacity = 0;
  if (count > capacity) {
    buffer = hwy::AllocateAligned<Real>(count);
    capacity = count;
  }
  return buffer.get();
}

}  // namespace simd_detail
}  // namespace softflow
#endif  // SOFTFLOW_SIMD_ONCE

HWY_BEFORE_NAMESPACE();
namespace softflow {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// A group holds G slices of W runs (one vector each): entry e of the group's runs is G consecutive vectors at
// buf + e * stride (stride = G * W lanes), slice g at + g * W. The O(n) phases between the passes over V (sums,
// exponentials, divisions) are latency-bound chains; running them for every slice in the same loop gives the CPU
// independent work to overlap them with, as long as the group's state stays in L1 (simd_slices).
template <class D, int G>
using Slices = std::array<hn::Vec<D>, G>;

template <int G, class V>
HWY_INLINE std::array<V, G> splat(V v) {
  std::array<V, G> out;
  for (auto& x : out) x = v;
  return out;
}

// Folds term(i, g, partial) over i < count for every slice g into four interleaved partials per slice (term i
// updates partial i mod 4), combined as combine(combine(p0, p1), combine(p2, p3)): chains of count / 4 dependent
// operations instead of count. The partials start at `initial`.
template <int G, class D, class Term, class Combine>
HWY_INLINE Slices<D, G> fold_slices(int count, const Slices<D, G>& initial, const Term& term, const Combine& combine) {
  Slices<D, G> p0 = initial, p1 = initial, p2 = initial, p3 = initial;
  int i = 0;
  for (; i + 4 <= count; i += 4) {
    for (int g = 0; g < G; ++g) {
      p0[g] = term(i, g, p0[g]);
      p1[g] = term(i + 1, g, p1[g]);
      p2[g] = term(i + 2, g, p2[g]);
      p3[g] = term(i + 3, g, p3[g]);
    }
  }
  for (; i < count; ++i)
    for (int g = 0; g < G; ++g) p0[g] = term(i, g, p0[g]);
  Slices<D, G> out;
  for (int g = 0; g < G; ++g) out[g] = combine(combine(p0[g], p1[g]), combine(p2[g], p3[g]));
  return out;
}

template <int G, class D, class Term>
HWY_INLINE Slices<D, G> sum_slices(D d, int count, const Term& term) {
  return fold_slices<G, D>(count, splat<G>(hn::Zero(d)), term,
                        [](hn::Vec<D> x, hn::Vec<D> y) { return hn::Add(x, y); });
}

// max_i x_i per lane (exact in any order). x: count >= 1 entries.
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> max_slices(D d, size_t stride, int count, const Real* HWY_RESTRICT x) {
  const size_t W = hn::Lanes(d);
  Slices<D, G> first;
  for (int g = 0; g < G; ++g) first[g] = hn::Load(d, x + g * W);
  return fold_slices<G, D>(
      count, first, [&](int i, int g, hn::Vec<D> m) { return hn::Max(m, hn::Load(d, x + i * stride + g * W)); },
      [](hn::Vec<D> p, hn::Vec<D> q) { return hn::Max(p, q); });
}

// <x, y> per lane. x, y: count entries.
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> dot_slices(D d, size_t stride, int count, const Real* HWY_RESTRICT x,
                                const Real* HWY_RESTRICT y) {
  const size_t W = hn::Lanes(d);
  return sum_slices<G>(d, count, [&](int i, int g, hn::Vec<D> partial) {
    const size_t at = i * stride + g * W;
    return hn::MulAdd(hn::Load(d, x + at), hn::Load(d, y + at), partial);
  });
}

// s = softmax(a) per lane, stably (shift by the lane's max); returns 1 / sum = max_j s_j. a, s: n entries.
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> softmax_slices(D d, size_t stride, int n, const Real* HWY_RESTRICT a, Real* HWY_RESTRICT s) {
  const size_t W = hn::Lanes(d);
  const Slices<D, G> a_max = max_slices<G>(d, stride, n, a);
  const Slices<D, G> total = sum_slices<G>(d, n, [&](int j, int g, hn::Vec<D> partial) {
    const size_t at = j * stride + g * W;
    const auto e = hn::Exp(d, hn::Sub(hn::Load(d, a + at), a_max[g]));
    hn::Store(e, d, s + at);
    return hn::Add(partial, e);
  });
  Slices<D, G> inv;
  for (int g = 0; g < G; ++g) inv[g] = hn::Div(hn::Set(d, Real(1)), total[g]);
  for (int j = 0; j < n; ++j)
    for (int g = 0; g < G; ++g) {
      const size_t at = j * stride + g * W;
      hn::Store(hn::Mul(hn::Load(d, s + at), inv[g]), d, s + at);
    }
  return inv;
}

// Loss l(beta) and r = -grad l per lane, for every value-softmax loss (model.h's loss_and_residual).
// beta: d entries; data: data_size; r: d (out); work: m (regression residuals).
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> loss_and_residual_slices(D d, size_t stride, const ModelShape& shape,
                                              const Real* HWY_RESTRICT beta, const Real* HWY_RESTRICT data,
                                              Real* HWY_RESTRICT r, Real* HWY_RESTRICT work) {
  const size_t W = hn::Lanes(d);
  const int dim = shape.d;
  const auto zero = hn::Zero(d), one = hn::Set(d, Real(1));
  switch (shape.loss) {
    case LossKind::logistic: {
      // log(1 + exp(-x)) = log1p(e) + max(-x, 0) and 1 / (1 + exp(x)) = (x > 0 ? e : 1) / (1 + e), e = exp(-|x|).
      const Slices<D, G> margin = dot_slices<G>(d, stride, dim, data, beta);
      Slices<D, G> e, g_weight, loss;
      for (int g = 0; g < G; ++g) {
        e[g] = hn::Exp(d, hn::Neg(hn::Abs(margin[g])));
        g_weight[g] = hn::Div(hn::IfThenElse(hn::Gt(margin[g], zero), e[g], one), hn::Add(one, e[g]));
      }
      for (int i = 0; i < dim; ++i)
        for (int g = 0; g < G; ++g) {
          const size_t at = i * stride + g * W;
          hn::Store(hn::Mul(g_weight[g], hn::Load(d, data + at)), d, r + at);
        }
      for (int g = 0; g < G; ++g) loss[g] = hn::Add(hn::Log1p(d, e[g]), hn::Max(hn::Neg(margin[g]), zero));
      return loss;
    }
    case LossKind::square: {
      Slices<D, G> loss = sum_slices<G>(d, dim, [&](int i, int g, hn::Vec<D> partial) {
        const size_t at = i * stride + g * W;
        const auto ri = hn::Sub(hn::Load(d, data + at), hn::Load(d, beta + at));
        hn::Store(ri, d, r + at);
        return hn::MulAdd(ri, ri, partial);
      });
      for (auto& x : loss) x = hn::Mul(hn::Set(d, Real(0.5)), x);
      return loss;
    }
    case LossKind::cross_entropy: {
      const Slices<D, G> b_max = max_slices<G>(d, stride, dim, beta);
      const Slices<D, G> total = sum_slices<G>(d, dim, [&](int i, int g, hn::Vec<D> partial) {
        return hn::Add(partial, hn::Exp(d, hn::Sub(hn::Load(d, beta + i * stride + g * W), b_max[g])));
      });
      Slices<D, G> lse;
      for (int g = 0; g < G; ++g) lse[g] = hn::Add(b_max[g], hn::Log(d, total[g]));
      return sum_slices<G>(d, dim, [&](int i, int g, hn::Vec<D> loss) {
        const size_t at = i * stride + g * W;
        const auto p = hn::Load(d, data + at), shifted = hn::Sub(hn::Load(d, beta + at), lse[g]);
        hn::Store(hn::Sub(p, hn::Exp(d, shifted)), d, r + at);
        return hn::NegMulAdd(p, shifted, loss);
      });
    }
    case LossKind::regression: {
      const int m = shape.m;
      const Real* x = data;  // m x d
      const Real* y = data + size_t(m) * dim * stride;
      Slices<D, G> loss = splat<G>(zero);
      for (int k = 0; k < m; ++k) {
        const Slices<D, G> fitted = dot_slices<G>(d, stride, dim, x + size_t(k) * dim * stride, beta);
        for (int g = 0; g < G; ++g) {
          const auto residual = hn::Sub(hn::Load(d, y + k * stride + g * W), fitted[g]);
          hn::Store(residual, d, work + k * stride + g * W);
          loss[g] = hn::MulAdd(residual, residual, loss[g]);
        }
      }
      for (int i = 0; i < dim; ++i)
        for (int g = 0; g < G; ++g) hn::Store(zero, d, r + i * stride + g * W);
      for (int k = 0; k < m; ++k)
        for (int g = 0; g < G; ++g) {
          const auto twice = hn::Add(hn::Load(d, work + k * stride + g * W), hn::Load(d, work + k * stride + g * W));
          for (int i = 0; i < dim; ++i) {
            const size_t at = i * stride + g * W;
            hn::Store(hn::MulAdd(twice, hn::Load(d, x + size_t(k) * dim * stride + at), hn::Load(d, r + at)), d,
                      r + at);
          }
        }
      return loss;
    }
  }
  return splat<G>(zero);
}

// The passes over V below work on one slice: vectors of entry e at base + e * stride.

// u[j0 .. j0 + kCols) = (V^T r)[j0 ..], summed over rows in order. v: rows x n, r: rows, u: n.
template <int kCols, class D, class Real = hn::TFromD<D>>
HWY_INLINE void transpose_product_block(D d, size_t stride, int rows, int n, int j0, const Real* HWY_RESTRICT v,
                                        const Real* HWY_RESTRICT r, Real* HWY_RESTRICT u) {
  hn::Vec<D> acc[kCols];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kCols; ++c) acc[c] = hn::Zero(d);
  for (int i = 0; i < rows; ++i) {
    const auto ri = hn::Load(d, r + i * stride);
    const Real* row = v + (size_t(i) * n + j0) * stride;
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kCols; ++c) acc[c] = hn::MulAdd(hn::Load(d, row + c * stride), ri, acc[c]);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kCols; ++c) hn::Store(acc[c], d, u + (j0 + c) * stride);
}

// u = V^T r. v: rows x n, r: rows, u: n.
template <class D, class Real = hn::TFromD<D>>
HWY_INLINE void transpose_product(D d, size_t stride, int rows, int n, const Real* v, const Real* r, Real* u) {
  int j0 = 0;
  for (; j0 + 16 <= n; j0 += 16) transpose_product_block<16>(d, stride, rows, n, j0, v, r, u);
  for (; j0 + 4 <= n; j0 += 4) transpose_product_block<4>(d, stride, rows, n, j0, v, r, u);
  for (; j0 < n; ++j0) transpose_product_block<1>(d, stride, rows, n, j0, v, r, u);
}

// Rows [i0, i0 + kRows) of: (kUpdate) V += hr s^T, then beta = V s_next, summed over columns in order.
// v: d x n, hr: d, s, s_next: n, beta: d; n = kN when kN > 0 (a compile-time size), else n_runtime.
template <bool kUpdate, int kRows, int kN = 0, class D, class Real = hn::TFromD<D>>
HWY_INLINE void update_and_product_block(D d, size_t stride, int n_runtime, int i0, Real* HWY_RESTRICT v,
                                         const Real* HWY_RESTRICT hr, const Real* HWY_RESTRICT s,
                                         const Real* HWY_RESTRICT s_next, Real* HWY_RESTRICT beta) {
  const int n = kN > 0 ? kN : n_runtime;
  hn::Vec<D> acc[kRows], hr_rows[kRows];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) {
    acc[c] = hn::Zero(d);
    hr_rows[c] = kUpdate ? hn::Load(d, hr + (i0 + c) * stride) : hn::Zero(d);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int j = 0; j < n; ++j) {
    const auto sj = kUpdate ? hn::Load(d, s + j * stride) : hn::Zero(d);
    const auto next_j = hn::Load(d, s_next + j * stride);
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kRows; ++c) {
      Real* entry = v + (size_t(i0 + c) * n + j) * stride;
      auto vij = hn::Load(d, entry);
      if (kUpdate) {
        vij = hn::MulAdd(hr_rows[c], sj, vij);
        hn::Store(vij, d, entry);
      }
      acc[c] = hn::MulAdd(vij, next_j, acc[c]);
    }
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) hn::Store(acc[c], d, beta + (i0 + c) * stride);
}

// (kUpdate) V += hr s^T, then beta = V s_next. Shapes as in update_and_product_block.
template <bool kUpdate, class D, class Real = hn::TFromD<D>>
HWY_INLINE void update_and_product(D d, size_t stride, int rows, int n, Real* v, const Real* hr, const Real* s,
                                   const Real* s_next, Real* beta) {
  int i0 = 0;
  if (n == 16) {  // the sweep's headline size: a compile-time trip count unrolls the loop over columns
    for (; i0 + 2 <= rows; i0 += 2)
      update_and_product_block<kUpdate, 2, 16>(d, stride, n, i0, v, hr, s, s_next, beta);
  } else {
    for (; i0 + 2 <= rows; i0 += 2) update_and_product_block<kUpdate, 2>(d, stride, n, i0, v, hr, s, s_next, beta);
  }
  for (; i0 < rows; ++i0) update_and_product_block<kUpdate, 1>(d, stride, n, i0, v, hr, s, s_next, beta);
}

template <int G, class Real>
void AdvanceGd(const SimdGdGroup<Real>& group) {
  using simd_detail::at_least;
  using simd_detail::at_most;
  using D = hn::ScalableTag<Real>;
  using V = hn::Vec<D>;
  const D d;
  const size_t W = hn::Lanes(d), lanes = G * W;  // lanes = the stride of one entry
  const ModelShape& shape = *group.shape;
  const StopRule& stop = *group.stop;
  const int rows = shape.d, n = shape.n, p = shape.state_size(), q = shape.data_size();
  const int count = std::min(group.count, int(lanes));

  // Buffers (entries x lanes): state p, data q, s n, s_next n, u n, da n, beta d, r d, hr d, work m; then per-lane
  // scalars (lanes each): active (1 running, 0 not or padding), the next first-passage threshold (pre-filter
  // form), flagged, loss, s_max, grad_sq.
  Real* theta = simd_detail::thread_buffer<Real>(lanes * simd_detail::group_buffer_entries(shape));
  Real* a = theta + size_t(shape.matrix_size()) * lanes;
  Real* data = theta + size_t(p) * lanes;
  Real* s = data + size_t(q) * lanes;
  Real* s_next = s + n * lanes;
  Real* u = s_next + n * lanes;
  Real* da = u + n * lanes;
  Real* beta = da + n * lanes;
  Real* r = beta + rows * lanes;
  Real* hr = r + rows * lanes;
  Real* work = hr + rows * lanes;
  Real* active_lanes = work + shape.m * lanes;
  Real* passage_lanes = active_lanes + lanes;
  Real* flagged_lanes = passage_lanes + lanes;
  Real* loss_lanes = flagged_lanes + lanes;
  Real* s_max_lanes = loss_lanes + lanes;
  Real* grad_sq_lanes = s_max_lanes + lanes;

  // Gather: running runs into their lanes; stopped runs and padding lanes hold zeros and are never written back.
  std::vector<long long> steps_at_entry(lanes);
  int running = 0;
  for (size_t l = 0; l < lanes; ++l) {
    const bool live = int(l) < count && group.records[l].status == RunStatus::running;
    running += live;
    active_lanes[l] = live ? Real(1) : Real(0);
    passage_lanes[l] = live ? at_most<Real>(simd_detail::next_passage(group.records[l])) : Real(3);
    steps_at_entry[l] = live ? group.records[l].steps : 0;
    const Real* state = group.states + l * size_t(p);
    for (int e = 0; e < p; ++e) theta[e * lanes + l] = live ? state[e] : Real(0);
    const Real* run_data = group.data + (group.data_per_run ? l * size_t(q) : 0);
    for (int e = 0; e < q; ++e) data[e * lanes + l] = live ? run_data[e] : Real(0);
  }
  if (running == 0) return;
  auto scatter = [&](size_t l) {
    Real* state = group.states + l * size_t(p);
    for (int e = 0; e < p; ++e) state[e] = theta[e * lanes + l];
  };

  const auto zero = hn::Zero(d);
  const auto h = hn::Set(d, Real(group.step));
  const auto polarized_at = hn::Set(d, stop.polarized_eps > 0 ? at_most<Real>(1.0 - stop.polarized_eps) : Real(3));
  const auto loss_below =
      hn::Set(d, stop.loss_below > 0 ? at_least<Real>(stop.loss_below) : std::numeric_limits<Real>::lowest());
  const auto grad_sq_below =
      hn::Set(d, stop.grad_norm_below > 0 ? at_least<Real>(stop.grad_norm_below * stop.grad_norm_below) : Real(-1));
  Slices<D, G> s_max = softmax_slices<G>(d, lanes, n, a, s);
  for (int g = 0; g < G; ++g)
    update_and_product<false>(d, lanes, rows, n, theta + g * W, hr + g * W, s + g * W, s + g * W, beta + g * W);
  Slices<D, G> last_s_max = s_max;
  for (long long k = group.k_from; k < group.k_to; ++k) {
    const Slices<D, G> loss = loss_and_residual_slices<G>(d, lanes, shape, beta, data, r, work);
    for (int g = 0; g < G; ++g) transpose_product(d, lanes, rows, n, theta + g * W, r + g * W, u + g * W);
    const Slices<D, G> mean_u = dot_slices<G>(d, lanes, n, s, u);
    const Slices<D, G> grad_a_sq = sum_slices<G>(d, n, [&](int j, int g, V partial) {
      const size_t at = j * lanes + g * W;
      const auto daj = hn::Mul(hn::Load(d, s + at), hn::Sub(hn::Load(d, u + at), mean_u[g]));
      hn::Store(daj, d, da + at);
      return hn::MulAdd(daj, daj, partial);
    });
    const Slices<D, G> r_sq = dot_slices<G>(d, lanes, rows, r, r), s_sq = dot_slices<G>(d, lanes, n, s, s);
    // Pre-filter: lanes where apply_checks could do more than note the time and s_max.
    Slices<D, G> grad_sq;
    bool any_flagged = false;
    for (int g = 0; g < G; ++g) {
      grad_sq[g] = hn::MulAdd(r_sq[g], s_sq[g], grad_a_sq[g]);  // ||r s^T||_F^2 + ||da||^2
      const auto finite = hn::And(hn::And(hn::IsFinite(loss[g]), hn::IsFinite(grad_sq[g])), hn::IsFinite(s_max[g]));
      const auto events =
          hn::Or(hn::Or(hn::Ge(s_max[g], hn::Load(d, passage_lanes + g * W)), hn::Ge(s_max[g], polarized_at)),
                 hn::Or(hn::Lt(loss[g], loss_below), hn::Lt(grad_sq[g], grad_sq_below)));
      const auto flagged = hn::And(hn::Gt(hn::Load(d, active_lanes + g * W), zero), hn::Or(hn::Not(finite), events));
      hn::Store(hn::IfThenElseZero(flagged, hn::Set(d, Real(1))), d, flagged_lanes + g * W);
      any_flagged = any_flagged || !hn::AllFalse(d, flagged);
    }
    if (any_flagged) {
      const double t = double(k) * group.step;
      for (int g = 0; g < G; ++g) {
        hn::Store(loss[g], d, loss_lanes + g * W);
        hn::Store(s_max[g], d, s_max_lanes + g * W);
        hn::Store(grad_sq[g], d, grad_sq_lanes + g * W);
      }
      for (size_t l = 0; l < lanes; ++l) {
        if (flagged_lanes[l] == Real(0)) continue;
        RunRecord& rec = group.records[l];
        rec.t = t;
        rec.steps = steps_at_entry[l] + (k - group.k_from);
        const FlowEval<Real> eval{loss_lanes[l], s_max_lanes[l], grad_sq_lanes[l], 0};
        if (apply_checks(eval, t, stop, false, rec)) {
          passage_lanes[l] = at_most<Real>(simd_detail::next_passage(rec));
        } else {
          scatter(l);
          active_lanes[l] = Real(0);
          --running;
        }
      }
      if (running == 0) break;
    }
    last_s_max = s_max;
    for (size_t at = 0; at < size_t(n) * lanes; at += W)
      hn::Store(hn::MulAdd(h, hn::Load(d, da + at), hn::Load(d, a + at)), d, a + at);
    for (size_t at = 0; at < size_t(rows) * lanes; at += W) hn::Store(hn::Mul(h, hn::Load(d, r + at)), d, hr + at);
    s_max = softmax_slices<G>(d, lanes, n, a, s_next);
    for (int g = 0; g < G; ++g)
      update_and_product<true>(d, lanes, rows, n, theta + g * W, hr + g * W, s + g * W, s_next + g * W,
                               beta + g * W);
    std::swap(s, s_next);
  }
  // Runs still running reached k_to: write back their states and the bookkeeping the skipped checks would have kept.
  for (int g = 0; g < G; ++g) hn::Store(last_s_max[g], d, s_max_lanes + g * W);
  for (size_t l = 0; l < lanes; ++l) {
    if (active_lanes[l] == Real(0)) continue;
    scatter(l);
    RunRecord& rec = group.records[l];
    rec.steps = steps_at_entry[l] + (group.k_to - group.k_from);
    rec.t = double(group.k_to) * group.step;
    if (group.k_to > group.k_from) {
      rec.last_check_t = double(group.k_to - 1) * group.step;
      rec.last_s_max = double(s_max_lanes[l]);
    }
  }
}

void AdvanceGdFloat1(const SimdGdGroup<float>& group) { AdvanceGd<1>(group); }
void AdvanceGdFloat2(const SimdGdGroup<float>& group) { AdvanceGd<2>(group); }
void AdvanceGdDouble1(const SimdGdGroup<double>& group) { AdvanceGd<1>(group); }
void AdvanceGdDouble2(const SimdGdGroup<double>& group) { AdvanceGd<2>(group); }
int LanesFloat() { return int(hn::Lanes(hn::ScalableTag<float>())); }
int LanesDouble() { return int(hn::Lanes(hn::ScalableTag<double>())); }
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace softflow
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace softflow {

HWY_EXPORT(AdvanceGdFloat1);
HWY_EXPORT(AdvanceGdFloat2);
HWY_EXPORT(AdvanceGdDouble1);
HWY_EXPORT(AdvanceGdDouble2);
HWY_EXPORT(LanesFloat);
HWY_EXPORT(LanesDouble);
HWY_EXPORT(TargetName);

std::string simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

int simd_lanes(bool float64) {
  return float64 ? HWY_DYNAMIC_DISPATCH(LanesDouble)() : HWY_DYNAMIC_DISPATCH(LanesFloat)();
}

int simd_slices(const ModelShape& shape, bool float64) {
  const double two_slices_bytes = 2.0 * simd_lanes(float64) * shape.state_size() * (float64 ? 8.0 : 4.0);
  return two_slices_bytes <= kSimdTwoSliceBytes ? 2 : 1;
}

bool simd_handles(const ModelShape& shape, Method method, bool float64) {
  const double group_bytes =
      double(shape.state_size()) * simd_lanes(float64) * simd_slices(shape, float64) * (float64 ? 8.0 : 4.0);
  return shape.model == ModelKind::value_softmax && method == Method::gd && group_bytes <= kSimdGroupBytes;
}

double simd_thread_bytes(const ModelShape& shape, Method method, bool float64) {
  if (!simd_handles(shape, method, float64)) return 0;
  return double(simd_detail::group_buffer_entries(shape)) * simd_lanes(float64) * simd_slices(shape, float64) *
         (float64 ? 8.0 : 4.0);
}

void simd_advance_gd(const SimdGdGroup<float>& group) {
  if (simd_slices(*group.shape, false) == 2)
    HWY_DYNAMIC_DISPATCH(AdvanceGdFloat2)(group);
  else
    HWY_DYNAMIC_DISPATCH(AdvanceGdFloat1)(group);
}

void simd_advance_gd(const SimdGdGroup<double>& group) {
  if (simd_slices(*group.shape, true) == 2)
    HWY_DYNAMIC_DISPATCH(AdvanceGdDouble2)(group);
  else
    HWY_DYNAMIC_DISPATCH(AdvanceGdDouble1)(group);
}

}  // namespace softflow
#endif  // HWY_ONCE
