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

// Folds term(i, partial) over i < count into four interleaved partials (term i updates partial i mod 4), combined
// as combine(combine(p0, p1), combine(p2, p3)): a chain of count / 4 dependent operations instead of count, for
// the O(n) sums and maxima between the passes over V. The partials start at `initial`.
template <class D, class Term, class Combine>
HWY_INLINE hn::Vec<D> fold_lanes(D d, int count, hn::Vec<D> initial, const Term& term, const Combine& combine) {
  (void)d;
  auto p0 = initial, p1 = initial, p2 = initial, p3 = initial;
  int i = 0;
  for (; i + 4 <= count; i += 4) {
    p0 = term(i, p0);
    p1 = term(i + 1, p1);
    p2 = term(i + 2, p2);
    p3 = term(i + 3, p3);
  }
  for (; i < count; ++i) p0 = term(i, p0);
  return combine(combine(p0, p1), combine(p2, p3));
}

template <class D, class Term>
HWY_INLINE hn::Vec<D> sum_lanes(D d, int count, const Term& term) {
  return fold_lanes(d, count, hn::Zero(d), term, [](hn::Vec<D> x, hn::Vec<D> y) { return hn::Add(x, y); });
}

// max_i x_i per lane (exact in any order). x: count >= 1.
template <class D, class Real = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> max_lanes(D d, int count, const Real* HWY_RESTRICT x) {
  const size_t W = hn::Lanes(d);
  return fold_lanes(
      d, count, hn::Load(d, x), [&](int i, hn::Vec<D> m) { return hn::Max(m, hn::Load(d, x + i * W)); },
      [](hn::Vec<D> p, hn::Vec<D> q) { return hn::Max(p, q); });
}

// s = softmax(a) per lane, stably (shift by the lane's max); returns 1 / sum = max_j s_j. a, s: n.
template <class D, class Real = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> softmax_lanes(D d, int n, const Real* HWY_RESTRICT a, Real* HWY_RESTRICT s) {
  const size_t W = hn::Lanes(d);
  const auto a_max = max_lanes(d, n, a);
  const auto total = sum_lanes(d, n, [&](int j, hn::Vec<D> partial) {
    const auto e = hn::Exp(d, hn::Sub(hn::Load(d, a + j * W), a_max));
    hn::Store(e, d, s + j * W);
    return hn::Add(partial, e);
  });
  const auto inv = hn::Div(hn::Set(d, Real(1)), total);
  for (int j = 0; j < n; ++j) hn::Store(hn::Mul(hn::Load(d, s + j * W), inv), d, s + j * W);
  return inv;
}

// <x, y> per lane. x, y: count.
template <class D, class Real = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> dot_lanes(D d, int count, const Real* HWY_RESTRICT x, const Real* HWY_RESTRICT y) {
  const size_t W = hn::Lanes(d);
  return sum_lanes(d, count, [&](int i, hn::Vec<D> partial) {
    return hn::MulAdd(hn::Load(d, x + i * W), hn::Load(d, y + i * W), partial);
  });
}

// Loss l(beta) and r = -grad l per lane, for every value-softmax loss (model.h's loss_and_residual).
// beta: d; data: data_size; r: d (out); work: m (regression residuals).
template <class D, class Real = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> loss_and_residual_lanes(D d, const ModelShape& shape, const Real* HWY_RESTRICT beta,
                                              const Real* HWY_RESTRICT data, Real* HWY_RESTRICT r,
                                              Real* HWY_RESTRICT work) {
  const size_t W = hn::Lanes(d);
  const int dim = shape.d;
  const auto zero = hn::Zero(d), one = hn::Set(d, Real(1));
  switch (shape.loss) {
    case LossKind::logistic: {
      // log(1 + exp(-x)) = log1p(e) + max(-x, 0) and 1 / (1 + exp(x)) = (x > 0 ? e : 1) / (1 + e), e = exp(-|x|).
      const auto margin = dot_lanes(d, dim, data, beta);
      const auto e = hn::Exp(d, hn::Neg(hn::Abs(margin)));
      const auto g = hn::Div(hn::IfThenElse(hn::Gt(margin, zero), e, one), hn::Add(one, e));
      for (int i = 0; i < dim; ++i) hn::Store(hn::Mul(g, hn::Load(d, data + i * W)), d, r + i * W);
      return hn::Add(hn::Log1p(d, e), hn::Max(hn::Neg(margin), zero));
    }
    case LossKind::square: {
      const auto loss = sum_lanes(d, dim, [&](int i, hn::Vec<D> partial) {
        const auto ri = hn::Sub(hn::Load(d, data + i * W), hn::Load(d, beta + i * W));
        hn::Store(ri, d, r + i * W);
        return hn::MulAdd(ri, ri, partial);
      });
      return hn::Mul(hn::Set(d, Real(0.5)), loss);
    }
    case LossKind::cross_entropy: {
      const auto b_max = max_lanes(d, dim, beta);
      const auto total = sum_lanes(d, dim, [&](int i, hn::Vec<D> partial) {
        return hn::Add(partial, hn::Exp(d, hn::Sub(hn::Load(d, beta + i * W), b_max)));
      });
      const auto lse = hn::Add(b_max, hn::Log(d, total));
      return sum_lanes(d, dim, [&](int i, hn::Vec<D> loss) {
        const auto p = hn::Load(d, data + i * W), shifted = hn::Sub(hn::Load(d, beta + i * W), lse);
        hn::Store(hn::Sub(p, hn::Exp(d, shifted)), d, r + i * W);
        return hn::NegMulAdd(p, shifted, loss);
      });
    }
    case LossKind::regression: {
      const int m = shape.m;
      const Real* x = data;  // m x d
      const Real* y = data + size_t(m) * dim * W;
      auto loss = zero;
      for (int k = 0; k < m; ++k) {
        const auto residual = hn::Sub(hn::Load(d, y + k * W), dot_lanes(d, dim, x + size_t(k) * dim * W, beta));
        hn::Store(residual, d, work + k * W);
        loss = hn::MulAdd(residual, residual, loss);
      }
      for (int i = 0; i < dim; ++i) hn::Store(zero, d, r + i * W);
      for (int k = 0; k < m; ++k) {
        const auto twice = hn::Add(hn::Load(d, work + k * W), hn::Load(d, work + k * W));
        for (int i = 0; i < dim; ++i)
          hn::Store(hn::MulAdd(twice, hn::Load(d, x + (size_t(k) * dim + i) * W), hn::Load(d, r + i * W)), d,
                    r + i * W);
      }
      return loss;
    }
  }
  return zero;
}

// u[j0 .. j0 + kCols) = (V^T r)[j0 ..], summed over rows in order. v: rows x n, r: rows, u: n.
template <int kCols, class D, class Real = hn::TFromD<D>>
HWY_INLINE void transpose_product_block(D d, int rows, int n, int j0, const Real* HWY_RESTRICT v,
                                        const Real* HWY_RESTRICT r, Real* HWY_RESTRICT u) {
  const size_t W = hn::Lanes(d);
  hn::Vec<D> acc[kCols];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kCols; ++c) acc[c] = hn::Zero(d);
  for (int i = 0; i < rows; ++i) {
    const auto ri = hn::Load(d, r + i * W);
    const Real* row = v + (size_t(i) * n + j0) * W;
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kCols; ++c) acc[c] = hn::MulAdd(hn::Load(d, row + c * W), ri, acc[c]);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kCols; ++c) hn::Store(acc[c], d, u + (j0 + c) * W);
}

// u = V^T r. v: rows x n, r: rows, u: n.
template <class D, class Real = hn::TFromD<D>>
HWY_INLINE void transpose_product(D d, int rows, int n, const Real* v, const Real* r, Real* u) {
  int j0 = 0;
  for (; j0 + 16 <= n; j0 += 16) transpose_product_block<16>(d, rows, n, j0, v, r, u);
  for (; j0 + 4 <= n; j0 += 4) transpose_product_block<4>(d, rows, n, j0, v, r, u);
  for (; j0 < n; ++j0) transpose_product_block<1>(d, rows, n, j0, v, r, u);
}

// Rows [i0, i0 + kRows) of: (kUpdate) V += hr s^T, then beta = V s_next, summed over columns in order.
// v: d x n, hr: d, s, s_next: n, beta: d; n = kN when kN > 0 (a compile-time size), else n_runtime.
template <bool kUpdate, int kRows, int kN = 0, class D, class Real = hn::TFromD<D>>
HWY_INLINE void update_and_product_block(D d, int n_runtime, int i0, Real* HWY_RESTRICT v, const Real* HWY_RESTRICT hr,
                                         const Real* HWY_RESTRICT s, const Real* HWY_RESTRICT s_next,
                                         Real* HWY_RESTRICT beta) {
  const size_t W = hn::Lanes(d);
  const int n = kN > 0 ? kN : n_runtime;
  hn::Vec<D> acc[kRows], hr_rows[kRows];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) {
    acc[c] = hn::Zero(d);
    hr_rows[c] = kUpdate ? hn::Load(d, hr + (i0 + c) * W) : hn::Zero(d);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int j = 0; j < n; ++j) {
    const auto sj = kUpdate ? hn::Load(d, s + j * W) : hn::Zero(d);
    const auto next_j = hn::Load(d, s_next + j * W);
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kRows; ++c) {
      Real* entry = v + (size_t(i0 + c) * n + j) * W;
      auto vij = hn::Load(d, entry);
      if (kUpdate) {
        vij = hn::MulAdd(hr_rows[c], sj, vij);
        hn::Store(vij, d, entry);
      }
      acc[c] = hn::MulAdd(vij, next_j, acc[c]);
    }
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) hn::Store(acc[c], d, beta + (i0 + c) * W);
}

// (kUpdate) V += hr s^T, then beta = V s_next. Shapes as in update_and_product_block.
template <bool kUpdate, class D, class Real = hn::TFromD<D>>
HWY_INLINE void update_and_product(D d, int rows, int n, Real* v, const Real* hr, const Real* s,
                                   const Real* s_next, Real* beta) {
  int i0 = 0;
  if (n == 16) {  // the sweep's headline size: a compile-time trip count unrolls the loop over columns
    for (; i0 + 2 <= rows; i0 += 2) update_and_product_block<kUpdate, 2, 16>(d, n, i0, v, hr, s, s_next, beta);
  } else {
    for (; i0 + 2 <= rows; i0 += 2) update_and_product_block<kUpdate, 2>(d, n, i0, v, hr, s, s_next, beta);
  }
  for (; i0 < rows; ++i0) update_and_product_block<kUpdate, 1>(d, n, i0, v, hr, s, s_next, beta);
}

// One slice of a group: W runs, one per lane, with its own lane-interleaved buffers (entry e at [e * W + lane]).
template <class Real>
struct Slice {
  Real* theta;  // state_size: V (d x n) then a (n)
  Real* a;      // = theta + d n
  Real* data;   // data_size
  Real *s, *s_next, *u, *da;  // n each
  Real *beta, *r, *hr;        // d each
  Real* work;                 // m
};

// Reals one slice's buffers take, per lane.
inline size_t slice_size(const ModelShape& shape) {
  return size_t(shape.state_size()) + shape.data_size() + 4 * shape.n + 3 * shape.d + shape.m;
}

template <class Real>
Slice<Real> slice_at(Real* base, const ModelShape& shape, size_t W) {
  Slice<Real> slice;
  slice.theta = base;
  slice.a = base + size_t(shape.matrix_size()) * W;
  slice.data = base + size_t(shape.state_size()) * W;
  slice.s = slice.data + size_t(shape.data_size()) * W;
  slice.s_next = slice.s + shape.n * W;
  slice.u = slice.s_next + shape.n * W;
  slice.da = slice.u + shape.n * W;
  slice.beta = slice.da + shape.n * W;
  slice.r = slice.beta + shape.d * W;
  slice.hr = slice.r + shape.d * W;
  slice.work = slice.hr + shape.d * W;
  return slice;
}

// A group is kSlices slices advanced phase by phase in turn, so that one slice's latency-bound O(n) phases (sums,
// exponentials) can overlap another's work in the out-of-order window. Measured on the development machine (AMD
// EPYC, AVX-512, d = n = 16 float32): 2 slices ran at 160 useful GFLOP/s against 165 for 1, so 1 it is; the knob
// stays for CPUs where the overlap pays.
constexpr int kSlices = 1;

template <class Real>
void AdvanceGd(const SimdGdGroup<Real>& group) {
  using simd_detail::at_least;
  using simd_detail::at_most;
  using D = hn::ScalableTag<Real>;
  using V = hn::Vec<D>;
  const D d;
  const size_t W = hn::Lanes(d), lanes = kSlices * W;
  const ModelShape& shape = *group.shape;
  const StopRule& stop = *group.stop;
  const int rows = shape.d, n = shape.n, p = shape.state_size(), q = shape.data_size();
  const int count = std::min(group.count, int(lanes));

  // Buffers: the slices, then per-lane scalars (lanes each): active (1 running, 0 not or padding), the next
  // first-passage threshold (pre-filter form), flagged, loss, s_max, grad_sq.
  const size_t per_slice = slice_size(shape) * W;
  Real* buffer = simd_detail::thread_buffer<Real>(kSlices * per_slice + 6 * lanes);
  Slice<Real> slices[kSlices];
  for (int g = 0; g < kSlices; ++g) slices[g] = slice_at(buffer + g * per_slice, shape, W);
  Real* active_lanes = buffer + kSlices * per_slice;
  Real* passage_lanes = active_lanes + lanes;
  Real* flagged_lanes = passage_lanes + lanes;
  Real* loss_lanes = flagged_lanes + lanes;
  Real* s_max_lanes = loss_lanes + lanes;
  Real* grad_sq_lanes = s_max_lanes + lanes;

  // Gather: running runs into their lanes; stopped runs and padding lanes hold zeros and are never written back.
  std::vector<long long> steps_at_entry(lanes);
  int running = 0;
  for (size_t l = 0; l < lanes; ++l) {
    const Slice<Real>& slice = slices[l / W];
    const size_t lane = l % W;
    const bool live = int(l) < count && group.records[l].status == RunStatus::running;
    running += live;
    active_lanes[l] = live ? Real(1) : Real(0);
    passage_lanes[l] = live ? at_most<Real>(simd_detail::next_passage(group.records[l])) : Real(3);
    steps_at_entry[l] = live ? group.records[l].steps : 0;
    const Real* state = group.states + l * size_t(p);
    for (int e = 0; e < p; ++e) slice.theta[e * W + lane] = live ? state[e] : Real(0);
    const Real* run_data = group.data + (group.data_per_run ? l * size_t(q) : 0);
    for (int e = 0; e < q; ++e) slice.data[e * W + lane] = live ? run_data[e] : Real(0);
  }
  if (running == 0) return;
  auto scatter = [&](size_t l) {
    Real* state = group.states + l * size_t(p);
    for (int e = 0; e < p; ++e) state[e] = slices[l / W].theta[e * W + l % W];
  };

  const auto zero = hn::Zero(d);
  const auto h = hn::Set(d, Real(group.step));
  const auto polarized_at = hn::Set(d, stop.polarized_eps > 0 ? at_most<Real>(1.0 - stop.polarized_eps) : Real(3));
  const auto loss_below =
      hn::Set(d, stop.loss_below > 0 ? at_least<Real>(stop.loss_below) : std::numeric_limits<Real>::lowest());
  const auto grad_sq_below =
      hn::Set(d, stop.grad_norm_below > 0 ? at_least<Real>(stop.grad_norm_below * stop.grad_norm_below) : Real(-1));
  V s_max[kSlices], last_s_max[kSlices], loss[kSlices], grad_sq[kSlices];
  for (int g = 0; g < kSlices; ++g) {
    s_max[g] = softmax_lanes(d, n, slices[g].a, slices[g].s);
    update_and_product<false>(d, rows, n, slices[g].theta, slices[g].hr, slices[g].s, slices[g].s, slices[g].beta);
    last_s_max[g] = s_max[g];
  }
  long long k = group.k_from;
  for (; k < group.k_to; ++k) {
    for (int g = 0; g < kSlices; ++g) {
      const Slice<Real>& sl = slices[g];
      loss[g] = loss_and_residual_lanes(d, shape, sl.beta, sl.data, sl.r, sl.work);
      transpose_product(d, rows, n, sl.theta, sl.r, sl.u);
    }
    for (int g = 0; g < kSlices; ++g) {
      const Slice<Real>& sl = slices[g];
      const auto mean_u = dot_lanes(d, n, sl.s, sl.u);
      const auto grad_a_sq = sum_lanes(d, n, [&](int j, V partial) {
        const auto daj = hn::Mul(hn::Load(d, sl.s + j * W), hn::Sub(hn::Load(d, sl.u + j * W), mean_u));
        hn::Store(daj, d, sl.da + j * W);
        return hn::MulAdd(daj, daj, partial);
      });
      grad_sq[g] = hn::MulAdd(dot_lanes(d, rows, sl.r, sl.r), dot_lanes(d, n, sl.s, sl.s), grad_a_sq);  // ||r s^T||^2
    }
    // Pre-filter: lanes where apply_checks could do more than note the time and s_max.
    bool any_flagged = false;
    for (int g = 0; g < kSlices; ++g) {
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
      for (int g = 0; g < kSlices; ++g) {
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
    for (int g = 0; g < kSlices; ++g) {
      Slice<Real>& sl = slices[g];
      last_s_max[g] = s_max[g];
      for (int j = 0; j < n; ++j)
        hn::Store(hn::MulAdd(h, hn::Load(d, sl.da + j * W), hn::Load(d, sl.a + j * W)), d, sl.a + j * W);
      for (int i = 0; i < rows; ++i) hn::Store(hn::Mul(h, hn::Load(d, sl.r + i * W)), d, sl.hr + i * W);
      s_max[g] = softmax_lanes(d, n, sl.a, sl.s_next);
    }
    for (int g = 0; g < kSlices; ++g) {
      Slice<Real>& sl = slices[g];
      update_and_product<true>(d, rows, n, sl.theta, sl.hr, sl.s, sl.s_next, sl.beta);
      std::swap(sl.s, sl.s_next);
    }
  }
  // Runs still running reached k_to: write back their states and the bookkeeping the skipped checks would have kept.
  for (int g = 0; g < kSlices; ++g) hn::Store(last_s_max[g], d, s_max_lanes + g * W);
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

void AdvanceGdFloat(const SimdGdGroup<float>& group) { AdvanceGd(group); }
void AdvanceGdDouble(const SimdGdGroup<double>& group) { AdvanceGd(group); }
int LanesFloat() { return int(hn::Lanes(hn::ScalableTag<float>())); }
int LanesDouble() { return int(hn::Lanes(hn::ScalableTag<double>())); }
int GroupRunsFloat() { return kSlices * LanesFloat(); }
int GroupRunsDouble() { return kSlices * LanesDouble(); }
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace softflow
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace softflow {

HWY_EXPORT(AdvanceGdFloat);
HWY_EXPORT(AdvanceGdDouble);
HWY_EXPORT(LanesFloat);
HWY_EXPORT(LanesDouble);
HWY_EXPORT(GroupRunsFloat);
HWY_EXPORT(GroupRunsDouble);
HWY_EXPORT(TargetName);

std::string simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

int simd_lanes(bool float64) {
  return float64 ? HWY_DYNAMIC_DISPATCH(LanesDouble)() : HWY_DYNAMIC_DISPATCH(LanesFloat)();
}

int simd_group_runs(bool float64) {
  return float64 ? HWY_DYNAMIC_DISPATCH(GroupRunsDouble)() : HWY_DYNAMIC_DISPATCH(GroupRunsFloat)();
}

bool simd_handles(const ModelShape& shape, Method method, bool float64) {
  const double group_bytes = double(shape.state_size()) * simd_group_runs(float64) * (float64 ? 8.0 : 4.0);
  return shape.model == ModelKind::value_softmax && method == Method::gd && group_bytes <= kSimdGroupBytes;
}

void simd_advance_gd(const SimdGdGroup<float>& group) { HWY_DYNAMIC_DISPATCH(AdvanceGdFloat)(group); }
void simd_advance_gd(const SimdGdGroup<double>& group) { HWY_DYNAMIC_DISPATCH(AdvanceGdDouble)(group); }

}  // namespace softflow
#endif  // HWY_ONCE
