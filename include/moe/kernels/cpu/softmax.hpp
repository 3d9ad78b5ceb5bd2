// xsimd row softmax, in place, max-subtracted; rows across threads for large inputs.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

// x [n, d] f32: each row becomes exp(x - max) / Σ exp(x - max); the sum is accumulated in f32
// lanes and applied as one reciprocal. A row whose max is -inf becomes all zeros (as in the
// reference).
template <class Arch>
void softmax(backend::cpu_simd<Arch>, View<float, 2> x) {
  detail::check_unit_inner_stride(x, "softmax", "x");
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const index_t d = x.extent(1), d_vec = d / L * L;
  if (d == 0) return;
  const index_t grain = std::max<index_t>(1, (index_t{1} << 14) / d);
  parallel_for_chunks(x.extent(0), grain, [&](index_t r_begin, index_t r_end) {
    for (index_t r = r_begin; r < r_end; ++r) {
      float* xr = x.data() + r * x.stride(0);
      B vmax(kNegInf);
      index_t i = 0;
      for (; i < d_vec; i += L) vmax = xsimd::max(vmax, B::load_unaligned(xr + i));
      float max = cpu_detail::max_lane<Arch>(vmax);
      for (; i < d; ++i) max = std::fmax(max, xr[i]);
      if (max == kNegInf) {
        for (i = 0; i < d; ++i) xr[i] = 0.0f;
        continue;
      }
      const B bmax(max);
      B vsum(0.0f);
      for (i = 0; i < d_vec; i += L) {
        const B e = xsimd::exp(B::load_unaligned(xr + i) - bmax);
        e.store_unaligned(xr + i);
        vsum += e;
      }
      float sum = xsimd::hadd(vsum);
      for (; i < d; ++i) {
        xr[i] = std::exp(xr[i] - max);
        sum += xr[i];
      }
      const float inv = 1.0f / sum;
      const B binv(inv);
      for (i = 0; i < d_vec; i += L) (B::load_unaligned(xr + i) * binv).store_unaligned(xr + i);
      for (; i < d; ++i) xr[i] *= inv;
    }
  });
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
