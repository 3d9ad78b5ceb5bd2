// Scalar RMSNorm (the oracle): y = x * rsqrt(mean(x²) + eps) * weight, per row, in f32.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <cmath>

namespace moe::kernels {

// x [n, d] f32, weight [d] float/bf16/f16, y [n, d] f32. y may alias x (same view): each row is
// read completely before it is written. The operation order follows Hugging Face's
// LlamaRMSNorm in f32: (x * r) * weight with r = 1/sqrt(mean(x²) + eps); the mean is summed in
// double here. Models with a (1 + w) weight (Gemma style) pass the shifted weight.
template <class W>
void rmsnorm(backend::reference, View<const float, 2> x, View<const W, 1> weight, float eps,
             View<float, 2> y) {
  static_assert(detail::is_weight_type_v<W>,
                "moe::kernels::rmsnorm: weights must be float, bf16 or f16");
  detail::check_rmsnorm(x, weight, y);
  const index_t n = x.extent(0), d = x.extent(1);
  if (d == 0) return;
  for (index_t r = 0; r < n; ++r) {
    double sum_sq = 0.0;
    for (index_t i = 0; i < d; ++i) sum_sq += static_cast<double>(x(r, i)) * x(r, i);
    const auto inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(d) + eps));
    for (index_t i = 0; i < d; ++i) {
      y(r, i) = (x(r, i) * inv_rms) * detail::weight_to_float(weight(i));
    }
  }
}

// x = x * rsqrt(mean(x²) + eps) per row, in place, with no weight: Llama 4's L2Norm of q and k
// (Llama4TextL2Norm; despite its name a weightless RMS normalisation). x [n, d] f32.
inline void rms_normalize(backend::reference, View<float, 2> x, float eps) {
  const index_t n = x.extent(0), d = x.extent(1);
  if (d == 0) return;
  for (index_t r = 0; r < n; ++r) {
    double sum_sq = 0.0;
    for (index_t i = 0; i < d; ++i) sum_sq += static_cast<double>(x(r, i)) * x(r, i);
    const auto inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(d) + eps));
    for (index_t i = 0; i < d; ++i) x(r, i) *= inv_rms;
  }
}

}  // namespace moe::kernels
