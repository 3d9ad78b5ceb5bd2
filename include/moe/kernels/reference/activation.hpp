// Scalar activations (the oracle): SiLU in place and the SwiGLU gate silu(gate)·up.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cmath>

namespace moe::kernels {

namespace detail {
// silu(v) = v·sigmoid(v) = v / (1 + exp(-v)); for v < -88 exp(-v) is +inf and the result is -0,
// the correctly rounded limit.
inline float silu_scalar(float v) noexcept { return v / (1.0f + std::exp(-v)); }

// The logistic function, 1 / (1 + exp(-v)): the one scalar sigmoid of the library (routers,
// gates, GPT-OSS's GLU).
inline float sigmoid_scalar(float v) noexcept { return 1.0f / (1.0f + std::exp(-v)); }
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

// GPT-OSS's clamped GLU over interleaved gate/up columns: gate = gu[t, 2i], up = gu[t, 2i+1];
// when `clamped`, gate = min(gate, limit) and up = clamp(up, ±limit); then
// out[t, i] = (up + 1) · gate · sigmoid(alpha · gate). gu [n, 2f], out [n, f].
struct GluParams {
  float alpha = 1.702f;
  float limit = 7.0f;
  bool clamped = true;
};

inline void glu_interleaved(backend::reference, View<const float, 2> gu, const GluParams& p, View<float, 2> out) {
  require(gu.extent(0) == out.extent(0) && gu.extent(1) == 2 * out.extent(1), ErrorCode::kInvalidArgument,
          "glu_interleaved: gate/up [{}, {}] for out [{}, {}]", gu.extent(0), gu.extent(1), out.extent(0),
          out.extent(1));
  for (index_t t = 0; t < out.extent(0); ++t) {
    for (index_t i = 0; i < out.extent(1); ++i) {
      float g = gu(t, 2 * i), u = gu(t, 2 * i + 1);
      if (p.clamped) {
        g = std::min(g, p.limit);
        u = std::clamp(u, -p.limit, p.limit);
      }
      out(t, i) = (u + 1.0f) * (g * detail::sigmoid_scalar(g * p.alpha));
    }
  }
}

}  // namespace moe::kernels
