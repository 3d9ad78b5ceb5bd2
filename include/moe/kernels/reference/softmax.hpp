// Scalar row softmax (the oracle), in place, max-subtracted.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <cmath>
#include <limits>

namespace moe::kernels {

// x [n, d] f32: each row becomes exp(x - max) / Σ exp(x - max). Subtracting the row max keeps
// every exp() in (0, 1], so nothing overflows. A row whose max is -inf (everything masked)
// becomes all zeros rather than NaN. The sum is formed in double here.
namespace detail {

// The one scalar softmax of the library (rows of the softmax kernel, router scores): x[0, d)
// becomes exp(x - max) / Σ exp(x - max), in place. Subtracting the max keeps every exp() in
// (0, 1], so nothing overflows; a row whose max is -inf (everything masked) becomes all zeros
// rather than NaN. The sum is formed in double.
inline void softmax_row(float* x, index_t d) noexcept {
  if (d == 0) return;
  float max = -std::numeric_limits<float>::infinity();
  for (index_t i = 0; i < d; ++i) max = std::fmax(max, x[i]);
  if (max == -std::numeric_limits<float>::infinity()) {
    for (index_t i = 0; i < d; ++i) x[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (index_t i = 0; i < d; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  for (index_t i = 0; i < d; ++i) x[i] = static_cast<float>(x[i] / sum);
}

}  // namespace detail

// x [n, d] f32: each row softmaxed in place (detail::softmax_row).
inline void softmax(backend::reference, View<float, 2> x) {
  detail::check_unit_inner_stride(x, "softmax", "x");
  for (index_t r = 0; r < x.extent(0); ++r) detail::softmax_row(&x(r, 0), x.extent(1));
}

}  // namespace moe::kernels
