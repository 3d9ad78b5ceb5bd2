// Scalar activations (the oracle): SiLU in place and the SwiGLU gate silu(gate)·up.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <cmath>

namespace moe::kernels {

namespace detail {
// silu(v) = v·sigmoid(v) = v / (1 + exp(-v)); for v < -88 exp(-v) is +inf and the result is -0,
// the correctly rounded limit.
inline float silu_scalar(float v) noexcept { return v / (1.0f + std::exp(-v)); }
}  // namespace detail

// x [n, d] f32, in place.
inline void silu(backend::reference, View<float, 2> x) {
  detail::check_unit_inner_stride(x, "silu", "x");
  for (index_t r = 0; r < x.extent(0); ++r) {
    for (index_t i = 0; i < x.extent(1); ++i) x(r, i) = detail::silu_scalar(x(r, i));
  }
}

// out = silu(gate) · up, all [n, d] f32. out may alias gate or up (the same view); each element
// is read before it is written.
inline void swiglu(backend::reference, View<const float, 2> gate, View<const float, 2> up,
                   View<float, 2> out) {
  detail::check_same_shape(gate, up, "swiglu", "gate", "up");
  detail::check_same_shape(gate, out, "swiglu", "gate", "out");
  for (index_t r = 0; r < gate.extent(0); ++r) {
    for (index_t i = 0; i < gate.extent(1); ++i) {
      out(r, i) = detail::silu_scalar(gate(r, i)) * up(r, i);
    }
  }
}

}  // namespace moe::kernels
