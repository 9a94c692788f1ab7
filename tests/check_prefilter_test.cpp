// Purpose: the pre-filter in front of apply_checks (check_prefilter.h): every evaluation on which apply_checks
// would act (divergence, a first passage, a stop) is flagged in float32 and float64, and unflagged evaluations
// leave a record as apply_checks would, apart from the time and s_max of the last check.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "softflow/check_prefilter.h"

namespace softflow {
namespace {

// True if apply_checks changes more of the record than last_check_t and last_s_max.
template <class Real>
bool checks_act(const FlowEval<Real>& eval, const StopRule& stop, RunRecord rec) {
  const RunRecord before = rec;
  apply_checks(eval, 1.0, stop, false, rec);
  bool changed = rec.status != before.status || rec.stop_time != before.stop_time;
  for (int k = 0; k < kPassageCount; ++k) changed = changed || rec.first_time[k] != before.first_time[k];
  return changed;
}

// Values of a double threshold x as Real: the nearest ones, then some ulps either side.
template <class Real>
Real near(double x, int ulps) {
  Real value = Real(x);
  for (int i = 0; i < std::abs(ulps); ++i) value = std::nextafter(value, ulps > 0 ? Real(INFINITY) : Real(-INFINITY));
  return value;
}

template <class Real>
void expect_every_acting_evaluation_flagged() {
  const StopRule stop{0.05, 0.003, 0.001};  // polarized at s_max >= 0.95, loss < 0.003, ||grad|| < 0.001
  const CheckThresholds<Real> thresholds(stop);
  RunRecord fresh, past_first;
  past_first.first_time[0] = 0.5;
  int acting = 0;
  for (const RunRecord& rec : {fresh, past_first}) {
    const Real passage = prefilter_passage<Real>(rec);
    for (int ulps = -3; ulps <= 3; ++ulps)
      for (const double s_max : {0.5, 0.9, 0.95, 0.99})
        for (const double loss : {1.0, 0.003})
          for (const double grad_sq : {1.0, 1e-6}) {
            const FlowEval<Real> eval{near<Real>(loss, ulps), near<Real>(s_max, ulps), near<Real>(grad_sq, ulps), 0};
            const bool acts = checks_act(eval, stop, rec);
            acting += acts;
            if (acts)
              EXPECT_TRUE(thresholds.flags(eval.loss, eval.s_max, eval.grad_norm_sq, passage))
                  << sizeof(Real) << " " << s_max << " " << loss << " " << grad_sq << " " << ulps;
          }
  }
  EXPECT_GT(acting, 50);
  for (const Real bad : {Real(NAN), Real(INFINITY)}) {  // divergence: any non-finite value
    EXPECT_TRUE(thresholds.flags(bad, Real(0.5), Real(1), prefilter_passage<Real>(fresh)));
    EXPECT_TRUE(thresholds.flags(Real(1), bad, Real(1), prefilter_passage<Real>(fresh)));
    EXPECT_TRUE(thresholds.flags(Real(1), Real(0.5), bad, prefilter_passage<Real>(fresh)));
  }
  EXPECT_FALSE(thresholds.flags(Real(1), Real(0.5), Real(1), prefilter_passage<Real>(fresh)));
}

TEST(CheckPrefilter, FlagsEveryEvaluationTheChecksActOn) {
  expect_every_acting_evaluation_flagged<float>();
  expect_every_acting_evaluation_flagged<double>();
}

TEST(CheckPrefilter, RulesThatAreOffFlagNothing) {
  const CheckThresholds<float> thresholds{StopRule{}};
  RunRecord all_passed;
  for (int k = 0; k < kPassageCount; ++k) all_passed.first_time[k] = 1;
  EXPECT_FALSE(thresholds.flags(-1e30f, 1.0f, 0.0f, prefilter_passage<float>(all_passed)));
  EXPECT_TRUE(thresholds.flags(-1e30f, 1.0f, 0.0f, prefilter_passage<float>(RunRecord())));  // the 0.9 passage
}

}  // namespace
}  // namespace softflow
