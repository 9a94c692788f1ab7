// Purpose: the CPU backend's SIMD kernel (see simd_kernel.h), compiled by Highway once per instruction set and
// dispatched at run time. Buffers are lane-interleaved: entry e of lane l lives at buf[e * lanes + l], so one
// aligned vector load gives entry e of W runs of the group (V's rows may be padded by an entry: v_row_pitch).
//
// One gd step of a group, from theta_k (s = softmax(a_k) and beta = V_k s already known):
//   loss, r = loss_and_residual(beta)          O(d) (regression: O(m d))
//   u = V^T r                                  pass 1 over V: one load and one FMA per entry
//   da = s .* (u - <s, u>), checks at t_k      O(n)
//   a += h da, s' = softmax(a)                 O(n) exponentials
//   V += (h r) s^T, beta = V s'                pass 2 over V: one load, one store, two FMAs per entry
// so each step reads V twice and writes it once, and the matrix work is the 6 d n FLOPs `softflow bench` counts.
// The logistic loss needs one pass: its r = g y has a fixed direction y, so u = g w with w = V^T y, and w is summed
// in the pass that updates V and forms beta (three FMAs per entry, one load and one store); ||r||^2 = g^2 ||y||^2.
// It also keeps the softmax unnormalised (s = c e, e_j = exp(a_j - max a), c = 1 / sum e): the pass forms V e
// as soon as the exponentials are out, and c scales the O(n) sums (AdvanceGdLogistic).
// Every exponential's argument is <= 0: simd_exp-inl.h's exp_nonpositive, half the instructions of hn::Exp.
//
// One rk4 step: every stage's V-part derivative is rank one (r_i s_i^T), so stage i's state V + c r s^T is never
// formed; the passes of its evaluation apply it entry by entry (two FMAs a pass instead of one). Stage 1: two
// passes of one FMA; stages 2-4: two passes of two; the update V += h/6 (r1 s1^T + 2 r2 s2^T + 2 r3 s3^T +
// r4 s4^T): one pass of four FMAs and a store. 18 FMAs per entry, 36 d n FLOPs against the 34 d n counted.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_kernel.cpp"  // found through the host/ include directory
#include <hwy/foreach_target.h>  // NOLINT: includes this file once per target

#include <hwy/aligned_allocator.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include "simd_exp-inl.h"  // once per target, as this file

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "simd_kernel.h"
#include "softflow/check_prefilter.h"

// Compile-time trip counts are unrolled so that a block's accumulators stay in registers.
#ifndef SOFTFLOW_SIMD_UNROLL
#define SOFTFLOW_SIMD_UNROLL _Pragma("GCC unroll 16")
#endif

#ifndef SOFTFLOW_SIMD_ONCE
#define SOFTFLOW_SIMD_ONCE
namespace softflow {
namespace simd_detail {

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

// The softmax's weights e = exp(a - max_j a_j) per lane, unnormalised (the largest is exactly 1); returns
// 1 / sum_j e_j, which is both the normaliser (softmax(a) = e / sum e) and max_j softmax(a)_j. a, e: n entries.
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> softmax_weights_slices(D d, size_t stride, int n, const Real* HWY_RESTRICT a,
                                               Real* HWY_RESTRICT e) {
  const size_t W = hn::Lanes(d);
  const Slices<D, G> a_max = max_slices<G>(d, stride, n, a);
  const Slices<D, G> total = sum_slices<G>(d, n, [&](int j, int g, hn::Vec<D> partial) {
    const size_t at = j * stride + g * W;
    const auto ej = exp_nonpositive(d, hn::Sub(hn::Load(d, a + at), a_max[g]));
    hn::Store(ej, d, e + at);
    return hn::Add(partial, ej);
  });
  Slices<D, G> inv;
  for (int g = 0; g < G; ++g) inv[g] = hn::Div(hn::Set(d, Real(1)), total[g]);
  return inv;
}

// s = softmax(a) per lane, stably (shift by the lane's max); returns 1 / sum = max_j s_j. a, s: n entries.
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> softmax_slices(D d, size_t stride, int n, const Real* HWY_RESTRICT a, Real* HWY_RESTRICT s) {
  const size_t W = hn::Lanes(d);
  const Slices<D, G> inv = softmax_weights_slices<G>(d, stride, n, a, s);
  for (int j = 0; j < n; ++j)
    for (int g = 0; g < G; ++g) {
      const size_t at = j * stride + g * W;
      hn::Store(hn::Mul(hn::Load(d, s + at), inv[g]), d, s + at);
    }
  return inv;
}

// The logistic loss l = log1p(exp(-x)) per lane at the margin x = <y, beta>, as log1p(e) + max(-x, 0) with
// e = exp(-|x|) (no overflow).
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> logistic_loss_at(D d, const Slices<D, G>& margin) {
  Slices<D, G> loss;
  for (int g = 0; g < G; ++g)
    loss[g] = hn::Add(hn::Log1p(d, exp_nonpositive(d, hn::Neg(hn::Abs(margin[g])))),
                      hn::Max(hn::Neg(margin[g]), hn::Zero(d)));
  return loss;
}

// The weight g of the logistic loss's residual r = -grad l = g y per lane at the margin x: g = 1 / (1 + exp(x)),
// as (x > 0 ? e : 1) / (1 + e) with e = exp(-|x|) (no overflow).
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> logistic_weight_at(D d, const Slices<D, G>& margin) {
  const auto one = hn::Set(d, Real(1));
  Slices<D, G> g_weight;
  for (int g = 0; g < G; ++g) {
    const auto e = exp_nonpositive(d, hn::Neg(hn::Abs(margin[g])));
    g_weight[g] = hn::Div(hn::IfThenElse(hn::Gt(margin[g], hn::Zero(d)), e, one), hn::Add(one, e));
  }
  return g_weight;
}

// Loss l(beta) and r = -grad l per lane, for every value-softmax loss (model.h's loss_and_residual).
// beta: d entries; data: data_size; r: d (out); work: m (regression residuals).
template <int G, class D, class Real = hn::TFromD<D>>
HWY_INLINE Slices<D, G> loss_and_residual_slices(D d, size_t stride, const ModelShape& shape,
                                              const Real* HWY_RESTRICT beta, const Real* HWY_RESTRICT data,
                                              Real* HWY_RESTRICT r, Real* HWY_RESTRICT work) {
  const size_t W = hn::Lanes(d);
  const int dim = shape.d;
  const auto zero = hn::Zero(d);
  switch (shape.loss) {
    case LossKind::logistic: {
      const Slices<D, G> margin = dot_slices<G>(d, stride, dim, data, beta);
      const Slices<D, G> g_weight = logistic_weight_at<G>(d, margin);
      for (int i = 0; i < dim; ++i)
        for (int g = 0; g < G; ++g) {
          const size_t at = i * stride + g * W;
          hn::Store(hn::Mul(g_weight[g], hn::Load(d, data + at)), d, r + at);
        }
      return logistic_loss_at<G>(d, margin);
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
        return hn::Add(partial, exp_nonpositive(d, hn::Sub(hn::Load(d, beta + i * stride + g * W), b_max[g])));
      });
      Slices<D, G> lse;
      for (int g = 0; g < G; ++g) lse[g] = hn::Add(b_max[g], hn::Log(d, total[g]));
      return sum_slices<G>(d, dim, [&](int i, int g, hn::Vec<D> loss) {
        const size_t at = i * stride + g * W;
        const auto p = hn::Load(d, data + at), shifted = hn::Sub(hn::Load(d, beta + at), lse[g]);
        hn::Store(hn::Sub(p, exp_nonpositive(d, shifted)), d, r + at);
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
    case LossKind::linear:
    case LossKind::exponential: break;  // attention losses: simd_handles excludes that model
  }
  return splat<G>(zero);
}

// The passes over V below work on one slice: vectors of entry e at base + e * stride.

// u[j0 .. j0 + kCols) = (V'^T r)[j0 ..], summed over rows in order, where V' = V + cr s_prev^T (kPerturbed) or V.
// v: rows x n (rows pitch entries apart), r, cr: rows, s_prev: n, u: n.
template <bool kPerturbed, int kCols, class D, class Real = hn::TFromD<D>>
HWY_INLINE void transpose_product_block(D d, size_t stride, int rows, int pitch, int j0, const Real* HWY_RESTRICT v,
                                        const Real* HWY_RESTRICT r, const Real* HWY_RESTRICT cr,
                                        const Real* HWY_RESTRICT s_prev, Real* HWY_RESTRICT u) {
  hn::Vec<D> acc[kCols], prev[kCols];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kCols; ++c) {
    acc[c] = hn::Zero(d);
    prev[c] = kPerturbed ? hn::Load(d, s_prev + (j0 + c) * stride) : hn::Zero(d);
  }
  for (int i = 0; i < rows; ++i) {
    const auto ri = hn::Load(d, r + i * stride);
    const auto cri = kPerturbed ? hn::Load(d, cr + i * stride) : hn::Zero(d);
    const Real* row = v + (size_t(i) * pitch + j0) * stride;
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kCols; ++c) {
      auto vij = hn::Load(d, row + c * stride);
      if (kPerturbed) vij = hn::MulAdd(cri, prev[c], vij);
      acc[c] = hn::MulAdd(vij, ri, acc[c]);
    }
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kCols; ++c) hn::Store(acc[c], d, u + (j0 + c) * stride);
}

// u = V'^T r. Shapes as in transpose_product_block; cr and s_prev are read only when kPerturbed.
template <bool kPerturbed, class D, class Real = hn::TFromD<D>>
HWY_INLINE void transpose_product(D d, size_t stride, int rows, int n, int pitch, const Real* v, const Real* r,
                                  const Real* cr, const Real* s_prev, Real* u) {
  constexpr int kWide = kPerturbed ? 8 : 16;  // the perturbed pass also holds s_prev in registers
  int j0 = 0;
  for (; j0 + kWide <= n; j0 += kWide)
    transpose_product_block<kPerturbed, kWide>(d, stride, rows, pitch, j0, v, r, cr, s_prev, u);
  for (; j0 + 4 <= n; j0 += 4)
    transpose_product_block<kPerturbed, 4>(d, stride, rows, pitch, j0, v, r, cr, s_prev, u);
  for (; j0 < n; ++j0) transpose_product_block<kPerturbed, 1>(d, stride, rows, pitch, j0, v, r, cr, s_prev, u);
}

// How a pass over V treats V before forming beta = V' s_next: kKeep (V' = V), kUpdate (V += hr s^T, stored, then
// V' = V), kPerturb (V' = V + hr s^T, not stored).
enum class VChange { kKeep, kUpdate, kPerturb };

// Rows [i0, i0 + kRows) of: V' per kChange, then beta = V' s_next, summed over columns in order.
// v: d x n (rows pitch entries apart), hr: d, s, s_next: n, beta: d; n = kN when kN > 0 (a compile-time size),
// else n_runtime.
template <VChange kChange, int kRows, int kN = 0, class D, class Real = hn::TFromD<D>>
HWY_INLINE void update_and_product_block(D d, size_t stride, int n_runtime, int pitch, int i0, Real* HWY_RESTRICT v,
                                         const Real* HWY_RESTRICT hr, const Real* HWY_RESTRICT s,
                                         const Real* HWY_RESTRICT s_next, Real* HWY_RESTRICT beta) {
  constexpr bool kChanged = kChange != VChange::kKeep;
  const int n = kN > 0 ? kN : n_runtime;
  hn::Vec<D> acc[kRows], hr_rows[kRows];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) {
    acc[c] = hn::Zero(d);
    hr_rows[c] = kChanged ? hn::Load(d, hr + (i0 + c) * stride) : hn::Zero(d);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int j = 0; j < n; ++j) {
    const auto sj = kChanged ? hn::Load(d, s + j * stride) : hn::Zero(d);
    const auto next_j = hn::Load(d, s_next + j * stride);
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kRows; ++c) {
      Real* entry = v + (size_t(i0 + c) * pitch + j) * stride;
      auto vij = hn::Load(d, entry);
      if (kChanged) vij = hn::MulAdd(hr_rows[c], sj, vij);
      if (kChange == VChange::kUpdate) hn::Store(vij, d, entry);
      acc[c] = hn::MulAdd(vij, next_j, acc[c]);
    }
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) hn::Store(acc[c], d, beta + (i0 + c) * stride);
}

// V' per kChange, then beta = V' s_next. Shapes as in update_and_product_block.
template <VChange kChange, class D, class Real = hn::TFromD<D>>
HWY_INLINE void update_and_product(D d, size_t stride, int rows, int n, int pitch, Real* v, const Real* hr,
                                   const Real* s, const Real* s_next, Real* beta) {
  int i0 = 0;
  if (n == 16) {  // the sweep's headline size: a compile-time trip count unrolls the loop over columns
    for (; i0 + 2 <= rows; i0 += 2)
      update_and_product_block<kChange, 2, 16>(d, stride, n, pitch, i0, v, hr, s, s_next, beta);
  } else {
    for (; i0 + 2 <= rows; i0 += 2)
      update_and_product_block<kChange, 2>(d, stride, n, pitch, i0, v, hr, s, s_next, beta);
  }
  for (; i0 < rows; ++i0) update_and_product_block<kChange, 1>(d, stride, n, pitch, i0, v, hr, s, s_next, beta);
}

// The logistic loss's single pass over V (gd): its residual is r = g y with y fixed, so u = V^T r = g V^T y, and
// w = V^T y can be summed in the same pass that updates V and forms beta: one pass over V per step instead of two.
// Rows [i0, i0 + kRows) of: V += hg y s^T (kUpdate: stored; else V unchanged), then beta = V s_next and w += V^T y
// over these rows (w starts at zero in the first block; rows and columns are summed in order). s and s_next may
// be unnormalised softmax weights (hg then carries the normaliser, and beta is V e).
// v: d x n (rows pitch entries apart), y: d, s, s_next, w: n, beta: d; hg: per lane; n = kN when kN > 0, else
// n_runtime.
template <bool kUpdate, int kRows, int kN = 0, class D, class Real = hn::TFromD<D>>
HWY_INLINE void logistic_pass_block(D d, size_t stride, int n_runtime, int pitch, int i0, bool first_block,
                                    Real* HWY_RESTRICT v, const Real* HWY_RESTRICT y, hn::Vec<D> hg,
                                    const Real* HWY_RESTRICT s, const Real* HWY_RESTRICT s_next,
                                    Real* HWY_RESTRICT beta, Real* HWY_RESTRICT w) {
  const int n = kN > 0 ? kN : n_runtime;
  hn::Vec<D> acc[kRows], y_rows[kRows];
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) {
    acc[c] = hn::Zero(d);
    y_rows[c] = hn::Load(d, y + (i0 + c) * stride);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int j = 0; j < n; ++j) {
    const auto hg_sj = kUpdate ? hn::Mul(hg, hn::Load(d, s + j * stride)) : hn::Zero(d);
    const auto next_j = hn::Load(d, s_next + j * stride);
    auto wj = first_block ? hn::Zero(d) : hn::Load(d, w + j * stride);
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kRows; ++c) {
      Real* entry = v + (size_t(i0 + c) * pitch + j) * stride;
      auto vij = hn::Load(d, entry);
      if (kUpdate) {
        vij = hn::MulAdd(y_rows[c], hg_sj, vij);
        hn::Store(vij, d, entry);
      }
      acc[c] = hn::MulAdd(vij, next_j, acc[c]);
      wj = hn::MulAdd(vij, y_rows[c], wj);
    }
    hn::Store(wj, d, w + j * stride);
  }
  SOFTFLOW_SIMD_UNROLL
  for (int c = 0; c < kRows; ++c) hn::Store(acc[c], d, beta + (i0 + c) * stride);
}

// The whole single pass: V per kUpdate, beta = V s_next, w = V^T y. Shapes as in logistic_pass_block. Blocks of
// eight rows where the target has 32 vector registers (their beta, y and h g y stay in registers), else two.
template <bool kUpdate, class D, class Real = hn::TFromD<D>>
HWY_INLINE void logistic_pass(D d, size_t stride, int rows, int n, int pitch, Real* v, const Real* y, hn::Vec<D> hg,
                              const Real* s, const Real* s_next, Real* beta, Real* w) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  constexpr int kBlock = 8;
#else
  constexpr int kBlock = 2;
#endif
  int i0 = 0;
  if (n == 16) {  // the sweep's headline size: a compile-time trip count unrolls the loop over columns
    for (; i0 + kBlock <= rows; i0 += kBlock)
      logistic_pass_block<kUpdate, kBlock, 16>(d, stride, n, pitch, i0, i0 == 0, v, y, hg, s, s_next, beta, w);
  } else {
    for (; i0 + kBlock <= rows; i0 += kBlock)
      logistic_pass_block<kUpdate, kBlock>(d, stride, n, pitch, i0, i0 == 0, v, y, hg, s, s_next, beta, w);
  }
  for (; i0 < rows; ++i0)
    logistic_pass_block<kUpdate, 1>(d, stride, n, pitch, i0, i0 == 0, v, y, hg, s, s_next, beta, w);
}

// Rows [i0, i0 + kRows) of V += sum_m w_m r_m s_m^T over rk4's four stages. v: d x n (rows pitch entries
// apart); wr[m]: d (w_m r_m); s[m]: n.
template <int kRows, class D, class Real = hn::TFromD<D>>
HWY_INLINE void rank_four_update_block(D d, size_t stride, int n, int pitch, int i0, Real* HWY_RESTRICT v,
                                       const Real* const* wr, const Real* const* s) {
  hn::Vec<D> rows[4][kRows];
  SOFTFLOW_SIMD_UNROLL
  for (int m = 0; m < 4; ++m)
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kRows; ++c) rows[m][c] = hn::Load(d, wr[m] + (i0 + c) * stride);
  for (int j = 0; j < n; ++j) {
    const auto s1 = hn::Load(d, s[0] + j * stride), s2 = hn::Load(d, s[1] + j * stride);
    const auto s3 = hn::Load(d, s[2] + j * stride), s4 = hn::Load(d, s[3] + j * stride);
    SOFTFLOW_SIMD_UNROLL
    for (int c = 0; c < kRows; ++c) {
      Real* entry = v + (size_t(i0 + c) * pitch + j) * stride;
      auto vij = hn::MulAdd(rows[0][c], s1, hn::Load(d, entry));
      vij = hn::MulAdd(rows[1][c], s2, vij);
      vij = hn::MulAdd(rows[2][c], s3, vij);
      hn::Store(hn::MulAdd(rows[3][c], s4, vij), d, entry);
    }
  }
}

// Entries from one row of V to the next in a group's buffer (entry_bytes: one entry of every lane): n, or n + 1
// where n entries span a whole number of 2 KiB. Otherwise the entries of one column in rows 2 or 4 apart, which a
// pass over V touches together, share their address bits below 4 KiB: they fall into one L1 set (at d = n = 64
// float32, 16 lanes, a block's eight rows and the s, s_next, w vectors crowd an 8-way set) and a load aliases a
// store just made to a row above. Measured on a Zen 4 (32 KiB 8-way L1), gd float32 with 4096 runs, share of the
// FMA peak: d = n = 64 21 % unpadded against 65 % padded (unpadded, n = 63 and 65 ran whole studies 1.7x faster
// than n = 64), d = n = 128 24 % against 63 %, d = n = 32 43 to 55 % against 66 %; padding d = n = 8 and 16 gained
// nothing, and the rule leaves them unpadded. The rule is by bytes: two-slice groups (small states) pad at n = 16,
// unmeasured.
inline int v_row_pitch(int n, size_t entry_bytes) { return (size_t(n) * entry_bytes) % 2048 == 0 ? n + 1 : n; }

// A group buffer's state entries: V's rows at the pitch above, then a (n).
inline size_t buffer_state_entries(const ModelShape& shape, int pitch) {
  return size_t(shape.d) * size_t(pitch) + size_t(shape.n);
}

// Bookkeeping of a group's lanes over one call, shared by the gd and rk4 steppers: the gather at entry, the
// pre-filter's thresholds, the write-back of a run when it stops and of the others at the end.
template <class Real>
struct LaneBook {
  const SimdGroup<Real>& group;
  size_t lanes;
  int p, q;
  int n, pitch;   // V's columns and row pitch in the buffer (v_row_pitch)
  Real* theta;    // buffer_state_entries x lanes (V's rows pitch entries apart, then a)
  Real* data;     // q x lanes
  Real* active;   // lanes: 1 running, 0 not (or padding)
  Real* passage;  // lanes: the next first-passage threshold, pre-filter form
  Real* flagged;  // lanes
  Real* loss;     // lanes: the flagged lanes' values, then (finish) the last checked s_max
  Real* s_max;    // lanes
  Real* grad_sq;  // lanes
  std::vector<long long> steps_at_entry;
  int running = 0;
  Real polarized_at, loss_below, grad_sq_below;

  // theta: buffer_state_entries x lanes, data: q x lanes, scalars: 6 x lanes. Gathers the running runs into their
  // lanes; stopped runs and padding lanes hold zeros and are never written back. V's row padding is never read.
  LaneBook(const SimdGroup<Real>& g, size_t lane_count, int row_pitch, Real* theta_buffer, Real* data_buffer,
           Real* scalars)
      : group(g), lanes(lane_count), p(g.shape->state_size()), q(g.shape->data_size()), n(g.shape->n),
        pitch(row_pitch), theta(theta_buffer),
        data(data_buffer), active(scalars), passage(scalars + lanes), flagged(scalars + 2 * lanes),
        loss(scalars + 3 * lanes), s_max(scalars + 4 * lanes), grad_sq(scalars + 5 * lanes),
        steps_at_entry(lanes) {
    const CheckThresholds<Real> thresholds(*group.stop);
    polarized_at = thresholds.polarized_at;
    loss_below = thresholds.loss_below;
    grad_sq_below = thresholds.grad_sq_below;
    const int count = std::min(group.count, int(lanes));
    for (size_t l = 0; l < lanes; ++l) {
      const bool live = int(l) < count && group.records[l].status == RunStatus::running;
      running += live;
      active[l] = live ? Real(1) : Real(0);
      passage[l] = live ? prefilter_passage<Real>(group.records[l]) : Real(3);
      steps_at_entry[l] = live ? group.records[l].steps : 0;
      const Real* run_data = group.data + (group.data_per_run ? l * size_t(q) : 0);
      for (int e = 0; e < q; ++e) data[e * lanes + l] = live ? run_data[e] : Real(0);
    }
    for_each_block([&](int first, Real* slots, int length) {
      for (size_t l = 0; l < lanes; ++l) {
        const Real* state = group.states + l * size_t(p) + first;
        if (active[l] == Real(0)) {
          for (int j = 0; j < length; ++j) slots[j * lanes + l] = Real(0);
        } else {
          for (int j = 0; j < length; ++j) slots[j * lanes + l] = state[j];
        }
      }
    });
  }

  // Calls copy(first, slots, length) for blocks of at most kTransposeBlock state entries first.. that sit in
  // consecutive buffer slots (a row of V, or a), slots: the first one's entries in theta (one per lane). The
  // gather and the write-back go block by block, every lane within a block: its slots (kTransposeBlock x lanes
  // entries, 1 KiB in float32 at 16 lanes) stay in L1 while each lane reads or writes its own state a cache line
  // at a time. Lane by lane instead, each lane streamed the whole buffer: at d = n = 256 (4 MiB a group, past
  // L2) gathering and writing back 4096 runs took 1.33 s on the Zen 4 host, the time of over 100 gd steps.
  static constexpr int kTransposeBlock = 16;
  template <class Copy>
  void for_each_block(Copy copy) const {
    const int rows = group.shape->d, matrix = group.shape->matrix_size();
    auto stretch = [&](int first, size_t first_slot, int length) {
      for (int j = 0; j < length; j += kTransposeBlock)
        copy(first + j, theta + (first_slot + j) * lanes, std::min(kTransposeBlock, length - j));
    };
    for (int i = 0; i < rows; ++i) stretch(i * n, size_t(i) * pitch, n);  // V's row i
    stretch(matrix, size_t(rows) * pitch, p - matrix);                   // a
  }

  // Writes the state of every lane l with selected(l) back to its run.
  template <class Select>
  void scatter(Select selected) const {
    for_each_block([&](int first, const Real* slots, int length) {
      for (size_t l = 0; l < lanes; ++l) {
        if (!selected(l)) continue;
        Real* state = group.states + l * size_t(p) + first;
        for (int j = 0; j < length; ++j) state[j] = slots[j * lanes + l];
      }
    });
  }

  // apply_checks at step k for every lane the pre-filter flagged (flagged, loss, s_max, grad_sq filled in); a run
  // that stops is written back now. Returns false when no run of the group is running any more.
  bool settle_flagged(long long k) {
    const double t = double(k) * group.step;
    for (size_t l = 0; l < lanes; ++l) {
      if (flagged[l] == Real(0)) continue;
      RunRecord& rec = group.records[l];
      rec.t = t;
      rec.steps = steps_at_entry[l] + (k - group.k_from);
      const FlowEval<Real> eval{loss[l], s_max[l], grad_sq[l], 0};
      if (apply_checks(eval, t, *group.stop, false, rec)) {
        passage[l] = prefilter_passage<Real>(rec);
      } else {
        scatter([l](size_t lane) { return lane == l; });
        active[l] = Real(0);
        --running;
      }
    }
    return running > 0;
  }

  // Runs still running reached k_to: writes back their states and the bookkeeping the skipped checks would have
  // kept. last_s_max: lanes, the s_max of each lane's last checked state.
  void finish(const Real* last_s_max) const {
    scatter([this](size_t l) { return active[l] != Real(0); });
    for (size_t l = 0; l < lanes; ++l) {
      if (active[l] == Real(0)) continue;
      RunRecord& rec = group.records[l];
      rec.steps = steps_at_entry[l] + (group.k_to - group.k_from);
      rec.t = double(group.k_to) * group.step;
      if (group.k_to > group.k_from) {
        rec.last_check_t = double(group.k_to - 1) * group.step;
        rec.last_s_max = double(last_s_max[l]);
      }
    }
  }
};

// The pre-filter at step k for G slices of lanes (values per slice); runs apply_checks on the flagged lanes.
// loss: the loss, or a stand-in that flags a superset (non-finite wherever the loss is; below book.loss_below
// wherever the loss is), with loss_of() giving the loss itself for the flagged lanes. Returns false when no run of
// the group is running any more.
template <int G, class D, class LossOf, class Real = hn::TFromD<D>>
HWY_INLINE bool check_lanes(D d, LaneBook<Real>& book, long long k, const Slices<D, G>& loss,
                            const Slices<D, G>& s_max, const Slices<D, G>& grad_sq, const LossOf& loss_of) {
  const size_t W = hn::Lanes(d);
  bool any_flagged = false;
  for (int g = 0; g < G; ++g) {
    // Lanes where apply_checks could do more than note the time and s_max.
    const auto finite = hn::And(hn::And(hn::IsFinite(loss[g]), hn::IsFinite(grad_sq[g])), hn::IsFinite(s_max[g]));
    const auto events = hn::Or(
        hn::Or(hn::Ge(s_max[g], hn::Load(d, book.passage + g * W)), hn::Ge(s_max[g], hn::Set(d, book.polarized_at))),
        hn::Or(hn::Lt(loss[g], hn::Set(d, book.loss_below)), hn::Lt(grad_sq[g], hn::Set(d, book.grad_sq_below))));
    const auto flagged =
        hn::And(hn::Gt(hn::Load(d, book.active + g * W), hn::Zero(d)), hn::Or(hn::Not(finite), events));
    hn::Store(hn::IfThenElseZero(flagged, hn::Set(d, Real(1))), d, book.flagged + g * W);
    any_flagged = any_flagged || !hn::AllFalse(d, flagged);
  }
  if (!any_flagged) return true;
  const Slices<D, G> exact_loss = loss_of();
  for (int g = 0; g < G; ++g) {
    hn::Store(exact_loss[g], d, book.loss + g * W);
    hn::Store(s_max[g], d, book.s_max + g * W);
    hn::Store(grad_sq[g], d, book.grad_sq + g * W);
  }
  return book.settle_flagged(k);
}

// Entries (each one value per lane) of a group's buffer for gd: state (V's rows padded to their pitch: at most d
// more entries), data, s, s_next, u, da (n each), beta, r, hr (d each), regression residuals (m), and 6 per-lane
// scalars.
inline size_t gd_buffer_entries(const ModelShape& shape) {
  return buffer_state_entries(shape, shape.n + 1) + shape.data_size() + 4 * shape.n + 3 * shape.d + shape.m + 6;
}

// A gd group's buffers (entries x lanes, lanes = the stride of one entry): state (V's rows `pitch` entries apart,
// then a), data q, s and s_next (n each: softmax(a) and the next step's, or for the logistic loss their
// unnormalised weights), u and da (n each; the logistic loss keeps w = V^T y in u), beta, r, hr (d each),
// regression residuals m; then the book's scalars.
template <class Real>
struct GdBuffers {
  Real *theta, *a, *data, *s, *s_next, *u, *da, *beta, *r, *hr, *work, *scalars;

  GdBuffers(const ModelShape& shape, size_t lanes, int pitch) {
    theta = simd_detail::thread_buffer<Real>(lanes * gd_buffer_entries(shape));
    a = theta + size_t(shape.d) * pitch * lanes;
    data = theta + buffer_state_entries(shape, pitch) * lanes;
    s = data + size_t(shape.data_size()) * lanes;
    s_next = s + shape.n * lanes;
    u = s_next + shape.n * lanes;
    da = u + shape.n * lanes;
    beta = da + shape.n * lanes;
    r = beta + shape.d * lanes;
    hr = r + shape.d * lanes;
    work = hr + shape.d * lanes;
    scalars = work + shape.m * lanes;
  }
};

// gd for every loss: two passes over V per step (see the file's header).
template <int G, class Real>
void AdvanceGdTwoPasses(const SimdGroup<Real>& group) {
  using D = hn::ScalableTag<Real>;
  using V = hn::Vec<D>;
  const D d;
  const size_t W = hn::Lanes(d), lanes = G * W;
  const ModelShape& shape = *group.shape;
  const int rows = shape.d, n = shape.n, pitch = v_row_pitch(n, lanes * sizeof(Real));
  GdBuffers<Real> buf(shape, lanes, pitch);
  Real *theta = buf.theta, *a = buf.a, *data = buf.data, *s = buf.s, *s_next = buf.s_next, *u = buf.u;
  Real *da = buf.da, *beta = buf.beta, *r = buf.r, *hr = buf.hr;
  LaneBook<Real> book(group, lanes, pitch, theta, data, buf.scalars);
  if (book.running == 0) return;

  const auto h = hn::Set(d, Real(group.step));
  Slices<D, G> s_max = softmax_slices<G>(d, lanes, n, a, s);
  for (int g = 0; g < G; ++g)
    update_and_product<VChange::kKeep>(d, lanes, rows, n, pitch, theta + g * W, hr + g * W, s + g * W, s + g * W,
                                       beta + g * W);
  Slices<D, G> last_s_max = s_max;
  for (long long k = group.k_from; k < group.k_to; ++k) {
    const Slices<D, G> loss = loss_and_residual_slices<G>(d, lanes, shape, beta, data, r, buf.work);
    for (int g = 0; g < G; ++g)
      transpose_product<false>(d, lanes, rows, n, pitch, theta + g * W, r + g * W, r + g * W, s + g * W,
                               u + g * W);
    const Slices<D, G> mean_u = dot_slices<G>(d, lanes, n, s, u);
    const Slices<D, G> r_sq = dot_slices<G>(d, lanes, rows, r, r);
    const Slices<D, G> grad_a_sq = sum_slices<G>(d, n, [&](int j, int g, V partial) {
      const size_t at = j * lanes + g * W;
      const auto daj = hn::Mul(hn::Load(d, s + at), hn::Sub(hn::Load(d, u + at), mean_u[g]));
      hn::Store(daj, d, da + at);
      return hn::MulAdd(daj, daj, partial);
    });
    const Slices<D, G> s_sq = dot_slices<G>(d, lanes, n, s, s);
    Slices<D, G> grad_sq;
    for (int g = 0; g < G; ++g) grad_sq[g] = hn::MulAdd(r_sq[g], s_sq[g], grad_a_sq[g]);  // + ||r s^T||_F^2
    if (!check_lanes<G>(d, book, k, loss, s_max, grad_sq, [&] { return loss; })) break;
    last_s_max = s_max;
    for (size_t at = 0; at < size_t(n) * lanes; at += W)
      hn::Store(hn::MulAdd(h, hn::Load(d, da + at), hn::Load(d, a + at)), d, a + at);
    for (size_t at = 0; at < size_t(rows) * lanes; at += W) hn::Store(hn::Mul(h, hn::Load(d, r + at)), d, hr + at);
    s_max = softmax_slices<G>(d, lanes, n, a, s_next);
    for (int g = 0; g < G; ++g)
      update_and_product<VChange::kUpdate>(d, lanes, rows, n, pitch, theta + g * W, hr + g * W, s + g * W,
                                           s_next + g * W, beta + g * W);
    std::swap(s, s_next);
  }
  for (int g = 0; g < G; ++g) hn::Store(last_s_max[g], d, book.loss + g * W);
  book.finish(book.loss);
}

// gd for the logistic loss: one pass over V per step (logistic_pass). Its residual r = g y has a fixed direction,
// so u = V^T r = g w with w = V^T y summed in the pass that updates V, and ||r||^2 = g^2 ||y||^2. The softmax is
// kept as its unnormalised weights e and normaliser c = 1 / sum e (s = c e): the pass forms V e, not V s, and c
// scales the O(n) sums instead of every entry, so the pass waits only for the exponentials, not for their sum.
template <int G, class Real>
void AdvanceGdLogistic(const SimdGroup<Real>& group) {
  using D = hn::ScalableTag<Real>;
  using V = hn::Vec<D>;
  const D d;
  const size_t W = hn::Lanes(d), lanes = G * W;
  const ModelShape& shape = *group.shape;
  const int rows = shape.d, n = shape.n, pitch = v_row_pitch(n, lanes * sizeof(Real));
  GdBuffers<Real> buf(shape, lanes, pitch);
  Real *theta = buf.theta, *a = buf.a, *y = buf.data, *e = buf.s, *e_next = buf.s_next, *w = buf.u;
  Real *da = buf.da, *v_e = buf.beta;  // v_e: V e (beta = c V e)
  LaneBook<Real> book(group, lanes, pitch, theta, y, buf.scalars);
  if (book.running == 0) return;

  const auto h = hn::Set(d, Real(group.step));
  const bool loss_each_step = group.stop->loss_below > 0;
  const Slices<D, G> y_sq = dot_slices<G>(d, lanes, rows, y, y);
  Slices<D, G> c = softmax_weights_slices<G>(d, lanes, n, a, e);  // c = 1 / sum e = max_j s_j
  for (int g = 0; g < G; ++g)
    logistic_pass<false>(d, lanes, rows, n, pitch, theta + g * W, y + g * W, hn::Zero(d), e + g * W, e + g * W,
                         v_e + g * W, w + g * W);
  Slices<D, G> last_s_max = c;
  for (long long k = group.k_from; k < group.k_to; ++k) {
    // margin <y, beta> = c <y, V e>; <s, u> = g c <e, w>; da_j = c e_j (g w_j - <s, u>).
    const Slices<D, G> y_dot_ve = dot_slices<G>(d, lanes, rows, y, v_e);
    const Slices<D, G> e_dot_w = dot_slices<G>(d, lanes, n, e, w);
    Slices<D, G> margin, mean_u, r_sq;
    for (int g = 0; g < G; ++g) margin[g] = hn::Mul(c[g], y_dot_ve[g]);
    const Slices<D, G> g_weight = logistic_weight_at<G>(d, margin);
    for (int g = 0; g < G; ++g) {
      mean_u[g] = hn::Mul(g_weight[g], hn::Mul(c[g], e_dot_w[g]));
      r_sq[g] = hn::Mul(hn::Mul(g_weight[g], g_weight[g]), y_sq[g]);
    }
    const Slices<D, G> grad_a_sq = sum_slices<G>(d, n, [&](int j, int g, V partial) {
      const size_t at = j * lanes + g * W;
      const auto sj = hn::Mul(c[g], hn::Load(d, e + at));
      const auto daj = hn::Mul(sj, hn::MulSub(g_weight[g], hn::Load(d, w + at), mean_u[g]));
      hn::Store(daj, d, da + at);
      return hn::MulAdd(daj, daj, partial);
    });
    const Slices<D, G> e_sq = dot_slices<G>(d, lanes, n, e, e);
    Slices<D, G> grad_sq;
    for (int g = 0; g < G; ++g)  // ||da||^2 + ||r s^T||_F^2
      grad_sq[g] = hn::MulAdd(hn::Mul(r_sq[g], hn::Mul(c[g], c[g])), e_sq[g], grad_a_sq[g]);
    // Without a loss_below rule the margin stands in for the loss in the pre-filter (non-finite wherever the loss
    // is), and the loss's log1p is computed only when a lane is flagged.
    auto loss_of = [&] { return logistic_loss_at<G>(d, margin); };
    if (!check_lanes<G>(d, book, k, loss_each_step ? loss_of() : margin, c, grad_sq, loss_of)) break;
    last_s_max = c;
    for (size_t at = 0; at < size_t(n) * lanes; at += W)
      hn::Store(hn::MulAdd(h, hn::Load(d, da + at), hn::Load(d, a + at)), d, a + at);
    const Slices<D, G> c_next = softmax_weights_slices<G>(d, lanes, n, a, e_next);
    for (int g = 0; g < G; ++g)  // V += (h g c) y e^T = h r s^T
      logistic_pass<true>(d, lanes, rows, n, pitch, theta + g * W, y + g * W,
                          hn::Mul(h, hn::Mul(g_weight[g], c[g])), e + g * W, e_next + g * W, v_e + g * W, w + g * W);
    std::swap(e, e_next);
    c = c_next;
  }
  for (int g = 0; g < G; ++g) hn::Store(last_s_max[g], d, book.loss + g * W);
  book.finish(book.loss);
}

template <int G, class Real>
void AdvanceGd(const SimdGroup<Real>& group) {
  if (group.shape->loss == LossKind::logistic)
    AdvanceGdLogistic<G>(group);
  else
    AdvanceGdTwoPasses<G>(group);
}

// Entries of a group's buffer for rk4: state (V's rows padded to their pitch: at most d more entries), data, the
// stage's a, 4 x (s, da) (n each), 4 x r, c r, beta (d each), u (n), regression residuals (m), and 6 per-lane
// scalars.
inline size_t rk4_buffer_entries(const ModelShape& shape) {
  return buffer_state_entries(shape, shape.n + 1) + shape.data_size() + 10 * shape.n + 6 * shape.d + shape.m + 6;
}

template <class Real>
void AdvanceRk4(const SimdGroup<Real>& group) {
  using D = hn::ScalableTag<Real>;
  using V = hn::Vec<D>;
  const D d;
  const size_t lanes = hn::Lanes(d), W = lanes;  // one slice: the stride of an entry is one vector
  const ModelShape& shape = *group.shape;
  const int rows = shape.d, n = shape.n, q = shape.data_size(), pitch = v_row_pitch(n, lanes * sizeof(Real));

  Real* theta = simd_detail::thread_buffer<Real>(lanes * rk4_buffer_entries(shape));
  Real* a = theta + size_t(rows) * pitch * lanes;
  Real* data = theta + buffer_state_entries(shape, pitch) * lanes;
  Real* a_stage = data + size_t(q) * lanes;
  Real* s[4];
  Real* da[4];
  Real* r[4];
  for (int m = 0; m < 4; ++m) {
    s[m] = a_stage + (1 + 2 * m) * n * lanes;
    da[m] = s[m] + n * lanes;
  }
  for (int m = 0; m < 4; ++m) r[m] = a_stage + (9 * n + m * rows) * lanes;
  Real* cr = r[3] + rows * lanes;
  Real* beta = cr + rows * lanes;
  Real* u = beta + rows * lanes;
  Real* work = u + n * lanes;
  LaneBook<Real> book(group, lanes, pitch, theta, data, work + shape.m * lanes);
  if (book.running == 0) return;

  // Stage m's derivative at (V + cr s[m - 1]^T, a_stage) (m = 0: at (V, a)): s[m], r[m], da[m]; returns the loss,
  // and s_max and ||grad L||^2 through the pointers.
  auto evaluate = [&](int m, const Real* a_at, V* s_max, V* grad_sq) {
    const V max_s = softmax_slices<1>(d, lanes, n, a_at, s[m])[0];
    if (m == 0)
      update_and_product<VChange::kKeep>(d, lanes, rows, n, pitch, theta, cr, s[0], s[0], beta);
    else
      update_and_product<VChange::kPerturb>(d, lanes, rows, n, pitch, theta, cr, s[m - 1], s[m], beta);
    const V loss = loss_and_residual_slices<1>(d, lanes, shape, beta, data, r[m], work)[0];
    if (m == 0)
      transpose_product<false>(d, lanes, rows, n, pitch, theta, r[0], cr, s[0], u);
    else
      transpose_product<true>(d, lanes, rows, n, pitch, theta, r[m], cr, s[m - 1], u);
    const V mean_u = dot_slices<1>(d, lanes, n, s[m], u)[0];
    const V grad_a_sq = sum_slices<1>(d, n, [&](int j, int, V partial) {
      const size_t at = j * lanes;
      const auto daj = hn::Mul(hn::Load(d, s[m] + at), hn::Sub(hn::Load(d, u + at), mean_u));
      hn::Store(daj, d, da[m] + at);
      return hn::MulAdd(daj, daj, partial);
    })[0];
    if (s_max) *s_max = max_s;
    if (grad_sq)
      *grad_sq = hn::MulAdd(dot_slices<1>(d, lanes, rows, r[m], r[m])[0], dot_slices<1>(d, lanes, n, s[m], s[m])[0],
                            grad_a_sq);
    return loss;
  };
  // The state of stage m + 1: a_stage = a + c da[m], cr = c r[m] (V + cr s[m]^T).
  auto stage_state = [&](int m, Real c) {
    const auto cv = hn::Set(d, c);
    for (size_t at = 0; at < size_t(n) * lanes; at += W)
      hn::Store(hn::MulAdd(cv, hn::Load(d, da[m] + at), hn::Load(d, a + at)), d, a_stage + at);
    for (size_t at = 0; at < size_t(rows) * lanes; at += W)
      hn::Store(hn::Mul(cv, hn::Load(d, r[m] + at)), d, cr + at);
  };

  const Real h = Real(group.step), half = h / Real(2), sixth = h / Real(6), third = h / Real(3);
  V last_s_max = hn::Zero(d);
  for (long long k = group.k_from; k < group.k_to; ++k) {
    Slices<D, 1> loss, s_max, grad_sq;
    loss[0] = evaluate(0, a, &s_max[0], &grad_sq[0]);
    if (!check_lanes<1>(d, book, k, loss, s_max, grad_sq, [&] { return loss; })) break;
    last_s_max = s_max[0];
    stage_state(0, half);
    evaluate(1, a_stage, nullptr, nullptr);
    stage_state(1, half);
    evaluate(2, a_stage, nullptr, nullptr);
    stage_state(2, h);
    evaluate(3, a_stage, nullptr, nullptr);
    // V += h/6 (r1 s1^T + 2 r2 s2^T + 2 r3 s3^T + r4 s4^T); a += h/6 (da1 + 2 (da2 + da3) + da4), as the scalar
    // kernel writes it. The weighted r's reuse r[] in place.
    const Real weights[4] = {sixth, third, third, sixth};
    for (int m = 0; m < 4; ++m)
      for (size_t at = 0; at < size_t(rows) * lanes; at += W)
        hn::Store(hn::Mul(hn::Set(d, weights[m]), hn::Load(d, r[m] + at)), d, r[m] + at);
    int i0 = 0;
    for (; i0 + 2 <= rows; i0 += 2) rank_four_update_block<2>(d, lanes, n, pitch, i0, theta, r, s);
    for (; i0 < rows; ++i0) rank_four_update_block<1>(d, lanes, n, pitch, i0, theta, r, s);
    const auto two = hn::Set(d, Real(2)), sixth_v = hn::Set(d, sixth);
    for (size_t at = 0; at < size_t(n) * lanes; at += W) {
      const auto inner = hn::Add(hn::MulAdd(two, hn::Add(hn::Load(d, da[1] + at), hn::Load(d, da[2] + at)),
                                            hn::Load(d, da[0] + at)),
                                 hn::Load(d, da[3] + at));
      hn::Store(hn::MulAdd(sixth_v, inner, hn::Load(d, a + at)), d, a + at);
    }
  }
  hn::Store(last_s_max, d, book.loss);
  book.finish(book.loss);
}

void AdvanceGdFloat1(const SimdGroup<float>& group) { AdvanceGd<1>(group); }
void AdvanceGdFloat2(const SimdGroup<float>& group) { AdvanceGd<2>(group); }
void AdvanceGdDouble1(const SimdGroup<double>& group) { AdvanceGd<1>(group); }
void AdvanceGdDouble2(const SimdGroup<double>& group) { AdvanceGd<2>(group); }
void AdvanceRk4Float(const SimdGroup<float>& group) { AdvanceRk4(group); }
void AdvanceRk4Double(const SimdGroup<double>& group) { AdvanceRk4(group); }
// out[i] = exp_nonpositive(x[i]), i < count (a tail shorter than a vector goes through a padded copy).
template <class Real>
void ExpNonpositive(const Real* x, Real* out, size_t count) {
  const hn::ScalableTag<Real> d;
  const size_t W = hn::Lanes(d);
  size_t i = 0;
  for (; i + W <= count; i += W) hn::StoreU(exp_nonpositive(d, hn::LoadU(d, x + i)), d, out + i);
  if (i == count) return;
  std::vector<Real> tail(W, Real(0));
  std::copy(x + i, x + count, tail.begin());
  hn::StoreU(exp_nonpositive(d, hn::LoadU(d, tail.data())), d, tail.data());
  std::copy(tail.begin(), tail.begin() + (count - i), out + i);
}
void ExpNonpositiveFloat(const float* x, float* out, size_t count) { ExpNonpositive(x, out, count); }
void ExpNonpositiveDouble(const double* x, double* out, size_t count) { ExpNonpositive(x, out, count); }
int LanesFloat() { return int(hn::Lanes(hn::ScalableTag<float>())); }
int LanesDouble() { return int(hn::Lanes(hn::ScalableTag<double>())); }
size_t GdBufferEntries(const ModelShape& shape) { return gd_buffer_entries(shape); }
size_t Rk4BufferEntries(const ModelShape& shape) { return rk4_buffer_entries(shape); }
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
HWY_EXPORT(AdvanceRk4Float);
HWY_EXPORT(AdvanceRk4Double);
HWY_EXPORT(ExpNonpositiveFloat);
HWY_EXPORT(ExpNonpositiveDouble);
HWY_EXPORT(LanesFloat);
HWY_EXPORT(LanesDouble);
HWY_EXPORT(GdBufferEntries);
HWY_EXPORT(Rk4BufferEntries);
HWY_EXPORT(TargetName);

std::string simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

void simd_exp_nonpositive(const float* x, float* out, size_t count) {
  HWY_DYNAMIC_DISPATCH(ExpNonpositiveFloat)(x, out, count);
}
void simd_exp_nonpositive(const double* x, double* out, size_t count) {
  HWY_DYNAMIC_DISPATCH(ExpNonpositiveDouble)(x, out, count);
}

int simd_lanes(bool float64) {
  return float64 ? HWY_DYNAMIC_DISPATCH(LanesDouble)() : HWY_DYNAMIC_DISPATCH(LanesFloat)();
}

int simd_slices(const ModelShape& shape, Method method, bool float64) {
  const double two_slices_bytes = 2.0 * simd_lanes(float64) * shape.state_size() * (float64 ? 8.0 : 4.0);
  return method == Method::gd && two_slices_bytes <= kSimdTwoSliceBytes ? 2 : 1;
}

bool simd_handles(const ModelShape& shape, Method method, bool float64) {
  const double group_bytes =
      double(shape.state_size()) * simd_lanes(float64) * simd_slices(shape, method, float64) * (float64 ? 8.0 : 4.0);
  return shape.model == ModelKind::value_softmax && (method == Method::gd || method == Method::rk4) &&
         group_bytes <= kSimdGroupBytes;
}

double simd_thread_bytes(const ModelShape& shape, Method method, bool float64) {
  if (!simd_handles(shape, method, float64)) return 0;
  const size_t entries = method == Method::gd ? HWY_DYNAMIC_DISPATCH(GdBufferEntries)(shape)
                                              : HWY_DYNAMIC_DISPATCH(Rk4BufferEntries)(shape);
  return double(entries) * simd_lanes(float64) * simd_slices(shape, method, float64) * (float64 ? 8.0 : 4.0);
}

void simd_advance(const SimdGroup<float>& group) {
  if (group.method == Method::rk4)
    HWY_DYNAMIC_DISPATCH(AdvanceRk4Float)(group);
  else if (simd_slices(*group.shape, group.method, false) == 2)
    HWY_DYNAMIC_DISPATCH(AdvanceGdFloat2)(group);
  else
    HWY_DYNAMIC_DISPATCH(AdvanceGdFloat1)(group);
}

void simd_advance(const SimdGroup<double>& group) {
  if (group.method == Method::rk4)
    HWY_DYNAMIC_DISPATCH(AdvanceRk4Double)(group);
  else if (simd_slices(*group.shape, group.method, true) == 2)
    HWY_DYNAMIC_DISPATCH(AdvanceGdDouble2)(group);
  else
    HWY_DYNAMIC_DISPATCH(AdvanceGdDouble1)(group);
}

}  // namespace softflow
#endif  // HWY_ONCE
