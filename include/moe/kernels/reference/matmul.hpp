// Scalar matrix products (the oracle): y = x·Wᵀ for weights stored [out, in] (one row per output,
// the Hugging Face Linear layout) and y = x·W for weights stored [in, out].
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

namespace moe::kernels {

// y = x·Wᵀ, overwriting y.
//   x [n_tokens, in] f32, w [out, in] in float/bf16/f16, y [n_tokens, out] f32.
// Innermost strides 1; outer strides may be larger; w need not be aligned; y must not alias x or w.
// Products and sums are formed in double and rounded to f32 once, so the oracle's own error is
// negligible next to any f32 kernel checked against it. Thread-safe for distinct y.
template <class W>
void matmul(backend::reference, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  static_assert(detail::is_weight_type_v<W>,
                "moe::kernels::matmul: weights must be float, bf16 or f16");
  detail::check_matmul(x, w, y, "matmul");
  const index_t n_tokens = x.extent(0), d_in = x.extent(1), d_out = w.extent(0);
  for (index_t t = 0; t < n_tokens; ++t) {
    const float* xr = x.data() + t * x.stride(0);
    for (index_t o = 0; o < d_out; ++o) {
      const W* wr = w.data() + o * w.stride(0);
      double acc = 0.0;
      for (index_t i = 0; i < d_in; ++i) {
        acc += static_cast<double>(xr[i]) * static_cast<double>(detail::weight_to_float(wr[i]));
      }
      y(t, o) = static_cast<float>(acc);
    }
  }
}

// y = x·W, overwriting y, for weights stored input-major (GPT-OSS expert banks, MLA absorption).
//   x [n_tokens, in] f32, w [in, out] in float/bf16/f16, y [n_tokens, out] f32.
// Same strides, aliasing and accumulation rules as matmul.
template <class W>
void matmul_in_out(backend::reference, View<const float, 2> x, View<const W, 2> w,
                   View<float, 2> y) {
  static_assert(detail::is_weight_type_v<W>,
                "moe::kernels::matmul_in_out: weights must be float, bf16 or f16");
  detail::check_matmul_in_out(x, w, y, "matmul_in_out");
  const index_t n_tokens = x.extent(0), d_in = x.extent(1), d_out = w.extent(1);
  for (index_t t = 0; t < n_tokens; ++t) {
    for (index_t o = 0; o < d_out; ++o) {
      double acc = 0.0;
      for (index_t i = 0; i < d_in; ++i) {
        acc += static_cast<double>(x(t, i)) *
               static_cast<double>(detail::weight_to_float(w.data()[i * w.stride(0) + o]));
      }
      y(t, o) = static_cast<float>(acc);
    }
  }
}

}  // namespace moe::kernels
