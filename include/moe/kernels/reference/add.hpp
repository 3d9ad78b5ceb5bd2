// Scalar residual add (the oracle): y += x.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

namespace moe::kernels {

// y [n, d] += x [n, d], f32. x may be the same view as y (then y doubles).
inline void add(backend::reference, View<float, 2> y, View<const float, 2> x) {
  detail::check_same_shape(y, x, "add", "y", "x");
  for (index_t r = 0; r < y.extent(0); ++r) {
    for (index_t i = 0; i < y.extent(1); ++i) y(r, i) += x(r, i);
  }
}

}  // namespace moe::kernels
