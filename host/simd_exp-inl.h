// Purpose: exp(x) for x <= 0 on Highway vectors: the only arguments the SIMD kernel's exponentials take (a
// softmax's a_j - max a, a logistic loss's -|margin|, cross-entropy's beta_i - max beta and beta_i - logsumexp).
// Highway's general hn::Exp spends about twice the instructions on the whole range (two scalings, a saturating
// float-to-int conversion); on [lowest, 0] one scaling suffices and the rounding to an integer is one add.
//
//   x = q ln 2 + r, q = round(x / ln 2) (|r| <= ln 2 / 2), exp(x) = 2^q exp(r),
//   exp(r) by Highway's own polynomial (impl::ExpImpl<T>::ExpPoly, the one hn::Exp uses), so the accuracy is
//   hn::Exp's (measured against std::exp in tests/simd_test.cpp).
//
// q is rounded by adding 2^p + bias (p = 23 / 52 mantissa bits) inside the fused multiply-add x / ln 2 + 2^p +
// bias: the sum's last bits then hold q + bias, the biased exponent of 2^q, which a shift moves into place.
// Exactly: exp(0) = 1 (the softmax's largest weight stays exactly 1), exp(-inf) = 0, NaN in NaN out. Below
// kExpFlushBelow (where 2^q would leave the normal range) the result is 0: there std::exp returns a subnormal,
// under 1.2e-38 (float) or 2.3e-308 (double), which no sum holding a 1 can see.
//
// Included once per Highway target (foreach_target): the include guard toggles with HWY_TARGET_TOGGLE.
#if defined(SOFTFLOW_SIMD_EXP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SOFTFLOW_SIMD_EXP_INL_H_
#undef SOFTFLOW_SIMD_EXP_INL_H_
#else
#define SOFTFLOW_SIMD_EXP_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace softflow {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The constants of exp_nonpositive per precision: mantissa bits, exponent bias, ln 2 split in a high part with
// trailing zero bits (q ln2_high is exact for the q that occur) and the rest, and the flush bound (above
// ln(smallest normal), below it by less than ln 2 / 2 so that q + bias >= 1).
template <class Real>
struct ExpConstants;
template <>
struct ExpConstants<float> {
  static constexpr int kMantissaBits = 23;
  static constexpr float kBias = 127.0f;
  static constexpr float kLn2High = 0.693145751953125f;
  static constexpr float kLn2Low = 1.428606765330187045e-6f;
  static constexpr float kFlushBelow = -87.5f;
};
template <>
struct ExpConstants<double> {
  static constexpr int kMantissaBits = 52;
  static constexpr double kBias = 1023.0;
  static constexpr double kLn2High = 0.6931471805596629565116018;
  static constexpr double kLn2Low = 0.28235290563031577122588448175e-12;
  static constexpr double kFlushBelow = -708.0;
};

// exp(x) per lane for x <= 0 (or NaN); x > 0 is outside its contract (the result is wrong, not a crash).
template <class D, class V = hn::Vec<D>, class Real = hn::TFromD<D>>
HWY_INLINE V exp_nonpositive(D d, V x) {
  using C = ExpConstants<Real>;
  const hn::RebindToSigned<D> di;
  // 2^p + bias: in [2^p, 2^(p+1)) a Real's unit in the last place is 1, so adding it rounds to an integer.
  const V shifter = hn::Set(d, Real(Real(1ull << C::kMantissaBits) + C::kBias));
  const V q_biased = hn::MulAdd(x, hn::Set(d, Real(1.442695040888963407359924681)), shifter);
  const V q = hn::Sub(q_biased, shifter);
  V r = hn::NegMulAdd(q, hn::Set(d, C::kLn2High), x);
  r = hn::NegMulAdd(q, hn::Set(d, C::kLn2Low), r);
  const V exp_r = hn::Add(hn::impl::ExpImpl<Real>().ExpPoly(d, r), hn::Set(d, Real(1)));
  const V two_to_q = hn::BitCast(d, hn::ShiftLeft<C::kMantissaBits>(hn::BitCast(di, q_biased)));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, C::kFlushBelow)), hn::Mul(exp_r, two_to_q));
}

}  // namespace HWY_NAMESPACE
}  // namespace softflow
HWY_AFTER_NAMESPACE();

#endif  // SOFTFLOW_SIMD_EXP_INL_H_
