// Purpose: counter-based random draws (Philox4x32-10 from Random123). Every number is a pure function of
// (study seed, cell, run id, variable, index), so a run's initial state does not depend on threads, chunking,
// shards or backend. Shared by both backends; normals come from Box-Muller evaluated with portable_math.h, so the
// CPU and the GPU draw the same bits.
#pragma once

#include <cstdint>

#include <Random123/philox.h>

#include "softflow/hostdevice.h"
#include "softflow/portable_math.h"

namespace softflow {

// What a stream of draws is for; part of the counter, so streams never overlap.
enum class RandomVariable : std::uint32_t {
  value_matrix = 1,      // V (or U for the tied model)
  logits = 2,            // a
  target = 3,            // beta*, y, or the cross-entropy logits of p*
  regression_left = 4,   // Gaussian matrix whose QR gives X's left singular vectors
  regression_right = 5,  // ... right singular vectors
  regression_y = 6,      // regression targets y
  attention_tokens = 7,  // attention: the tokens X
  attention_labels = 8,  // attention: the labels Y (as uniforms)
  attention_fixed = 9,   // attention: the fixed v and query tokens z of random data sets
};

// Run id used for draws shared by every run of a cell (a shared target or data set).
constexpr std::uint32_t kSharedRunId = 0xFFFFFFFFu;

struct RandomStream {
  std::uint64_t seed;
  std::uint32_t cell;
  std::uint32_t run;
  RandomVariable variable;

  // Four 32-bit words for block `block` of this stream.
  SOFTFLOW_HD r123::Philox4x32::ctr_type words(std::uint32_t block) const {
    r123::Philox4x32 generator;
    const r123::Philox4x32::key_type key = {{std::uint32_t(seed), std::uint32_t(seed >> 32)}};
    const r123::Philox4x32::ctr_type counter = {{run, cell, std::uint32_t(variable), block}};
    return generator(counter, key);
  }

  // Standard normals: out[i] for i in [0, count), each the i-th normal of the stream (two per Philox block).
  SOFTFLOW_HD void normals(double* out, int count) const {
    for_each_normal(count, [out](int i, double z) { out[i] = z; });
  }

  // Normals 2 block and 2 block + 1 of the stream: Box-Muller on the block's two 64-bit words, u in (0, 1) from
  // the first and v in [0, 1) from the second.
  SOFTFLOW_HD void normal_pair(std::uint32_t block, double* first, double* second) const {
    const auto w = words(block);
    const double u = open_unit((std::uint64_t(w.v[0]) << 32) | w.v[1]);
    const double v = half_open_unit((std::uint64_t(w.v[2]) << 32) | w.v[3]);
    const double radius = sqrt_rn(mul_rn(-2.0, portable_log(u)));
    double sin_v = 0, cos_v = 0;
    portable_sincos_2pi(v, &sin_v, &cos_v);
    *first = mul_rn(radius, cos_v);
    *second = mul_rn(radius, sin_v);
  }

  // The i-th standard normal of the stream alone (computes its pair and keeps one).
  SOFTFLOW_HD double normal_at(int i) const {
    double pair[2];
    normal_pair(std::uint32_t(i / 2), &pair[0], &pair[1]);
    return pair[i % 2];
  }

  // Calls sink(i, z_i) for the normals i in [0, count) in order, one Philox block per pair.
  template <class Sink>
  SOFTFLOW_HD void for_each_normal(int count, Sink&& sink) const {
    for (int i = 0; i < count; i += 2) {
      double first = 0, second = 0;
      normal_pair(std::uint32_t(i / 2), &first, &second);
      sink(i, first);
      if (i + 1 < count) sink(i + 1, second);
    }
  }

  // (x / 2^12 + 1/2) 2^-52 in (0, 1): every step exact.
  SOFTFLOW_HD static double open_unit(std::uint64_t x) { return (double(x >> 12) + 0.5) * 0x1p-52; }
  // (x / 2^11) 2^-53 in [0, 1): exact.
  SOFTFLOW_HD static double half_open_unit(std::uint64_t x) { return double(x >> 11) * 0x1p-53; }

  // The i-th uniform in (0, 1) of the stream.
  SOFTFLOW_HD double uniform_at(int i) const {
    const auto w = words(std::uint32_t(i / 2));
    return open_unit((i % 2) ? ((std::uint64_t(w.v[2]) << 32) | w.v[3]) : ((std::uint64_t(w.v[0]) << 32) | w.v[1]));
  }
};

}  // namespace softflow
