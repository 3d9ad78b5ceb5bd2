// xsimd activations: SiLU in place and the SwiGLU gate silu(gate)·up.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

namespace cpu_detail {
// silu(v) = v / (1 + exp(-v)) with xsimd's vector exp (a few ulp); for v < -88, exp(-v) = +inf
// and the quotient is -0, as in the scalar version.
template <class Arch>
inline FloatBatch<Arch> silu_batch(const FloatBatch<Arch>& v) noexcept {
  using B = FloatBatch<Arch>;
  return v / (B(1.0f) + xsimd::exp(-v));
}

// o[i] = silu(g[i]) · u[i] for i < d, one row (o may be g or u): the operations of swiglu below,
// which other kernels fusing the step (kernels/cpu/interleaved_experts.hpp) share.
template <class Arch>
inline void swiglu_row(const float* g, const float* u, float* o, index_t d) noexcept {
  using B = FloatBatch<Arch>;
  constexpr index_t L = B::size;
  const index_t d_vec = d / L * L;
  index_t i = 0;
  for (; i < d_vec; i += L) (silu_batch<Arch>(B::load_unaligned(g + i)) * B::load_unaligned(u + i)).store_unaligned(o + i);
  for (; i < d; ++i) o[i] = detail::silu_scalar(g[i]) * u[i];
}
}  // namespace cpu_detail

// x [n, d] f32, in place; rows across threads for large inputs.
template <class Arch>
void silu(backend::cpu_simd<Arch>, View<float, 2> x) {
  detail::check_unit_inner_stride(x, "silu", "x");
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  const index_t d = x.extent(1), d_vec = d / L * L;
  const index_t grain = std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(d, 1));
  parallel_for_chunks(x.extent(0), grain, [&](index_t r_begin, index_t r_end) {
    for (index_t r = r_begin; r < r_end; ++r) {
      float* xr = x.data() + r * x.stride(0);
      index_t i = 0;
      for (; i < d_vec; i += L) cpu_detail::silu_batch<Arch>(B::load_unaligned(xr + i)).store_unaligned(xr + i);
      for (; i < d; ++i) xr[i] = detail::silu_scalar(xr[i]);
    }
  });
}

// out = silu(gate) · up, all [n, d] f32; out may alias gate or up (the same view).
template <class Arch>
void swiglu(backend::cpu_simd<Arch>, View<const float, 2> gate, View<const float, 2> up,
            View<float, 2> out) {
  detail::check_same_shape(gate, up, "swiglu", "gate", "up");
  detail::check_same_shape(gate, out, "swiglu", "gate", "out");
  const index_t d = gate.extent(1);
  const index_t grain = std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(d, 1));
  parallel_for_chunks(gate.extent(0), grain, [&](index_t r_begin, index_t r_end) {
    for (index_t r = r_begin; r < r_end; ++r) {
      cpu_detail::swiglu_row<Arch>(gate.data() + r * gate.stride(0), up.data() + r * up.stride(0),
                                   out.data() + r * out.stride(0), d);
    }
  });
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
