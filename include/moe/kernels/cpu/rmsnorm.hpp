// xsimd RMSNorm: y = x * rsqrt(mean(x²) + eps) * weight per row, f32 math, rows across threads.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cmath>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

// x [n, d] f32, weight [d] float/bf16/f16 (any alignment), y [n, d] f32; y may alias x (the same
// view). Σx² is accumulated in f32 lanes (relative error <= ~d/L·eps). Same operation order as
// the reference: (x * r) * weight.
template <class W, class Arch>
void rmsnorm(backend::cpu_simd<Arch>, View<const float, 2> x, View<const W, 1> weight, float eps,
             View<float, 2> y) {
  static_assert(detail::is_weight_type_v<W>,
                "moe::kernels::rmsnorm: weights must be float, bf16 or f16");
  detail::check_rmsnorm(x, weight, y);
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  const index_t n = x.extent(0), d = x.extent(1);
  if (d == 0) return;
  const index_t d_vec = d / L * L;
  const index_t grain = std::max<index_t>(1, (index_t{1} << 15) / d);
  parallel_for_chunks(n, grain, [&](index_t r_begin, index_t r_end) {
    for (index_t r = r_begin; r < r_end; ++r) {
      const float* xr = x.data() + r * x.stride(0);
      float* yr = y.data() + r * y.stride(0);
      B acc0(0.0f), acc1(0.0f);
      index_t i = 0;
      for (; i + 2 * L <= d_vec; i += 2 * L) {
        const B a = B::load_unaligned(xr + i), b = B::load_unaligned(xr + i + L);
        acc0 = xsimd::fma(a, a, acc0);
        acc1 = xsimd::fma(b, b, acc1);
      }
      for (; i < d_vec; i += L) {
        const B a = B::load_unaligned(xr + i);
        acc0 = xsimd::fma(a, a, acc0);
      }
      float sum_sq = xsimd::hadd(acc0 + acc1);
      for (; i < d; ++i) sum_sq += xr[i] * xr[i];
      const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(d) + eps);
      const B scale(inv_rms);
      for (i = 0; i < d_vec; i += L) {
        ((B::load_unaligned(xr + i) * scale) * cpu_detail::load_widened<Arch>(weight.data() + i))
            .store_unaligned(yr + i);
      }
      for (; i < d; ++i) yr[i] = (xr[i] * inv_rms) * detail::weight_to_float(weight.data()[i]);
    }
  });
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
