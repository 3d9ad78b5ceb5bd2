// xsimd residual add: y += x.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

// y [n, d] += x [n, d], f32. x may be the same view as y. Single-threaded (memory-bound and
// small next to the matmuls around it).
template <class Arch>
void add(backend::cpu_simd<Arch>, View<float, 2> y, View<const float, 2> x) {
  detail::check_same_shape(y, x, "add", "y", "x");
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  const index_t d = y.extent(1), d_vec = d / L * L;
  for (index_t r = 0; r < y.extent(0); ++r) {
    float* yr = y.data() + r * y.stride(0);
    const float* xr = x.data() + r * x.stride(0);
    index_t i = 0;
    for (; i < d_vec; i += L) (B::load_unaligned(yr + i) + B::load_unaligned(xr + i)).store_unaligned(yr + i);
    for (; i < d; ++i) yr[i] += xr[i];
  }
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
