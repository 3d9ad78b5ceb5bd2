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
inline void softmax(backend::reference, View<float, 2> x) {
  detail::check_unit_inner_stride(x, "softmax", "x");
  const index_t n = x.extent(0), d = x.extent(1);
  for (index_t r = 0; r < n; ++r) {
    if (d == 0) continue;
    float max = -std::numeric_limits<float>::infinity();
    for (index_t i = 0; i < d; ++i) max = std::fmax(max, x(r, i));
    if (max == -std::numeric_limits<float>::infinity()) {
      for (index_t i = 0; i < d; ++i) x(r, i) = 0.0f;
      continue;
    }
    double sum = 0.0;
    for (index_t i = 0; i < d; ++i) {
      x(r, i) = std::exp(x(r, i) - max);
      sum += x(r, i);
    }
    for (index_t i = 0; i < d; ++i) x(r, i) = static_cast<float>(x(r, i) / sum);
  }
}

}  // namespace moe::kernels
