// matmul_heads on the cpu backend (the product is defined in kernels/reference/matmul_heads.hpp):
// with at least as many heads as threads, one parallel region over the heads, each head's matmul
// on the calling thread (a region per head would cost more in synchronisation than a decode
// step's head product takes); with fewer heads, one head after another, each matmul split across
// the team. Every output is what matmul gives for that head, whichever way the work is split.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/matmul.hpp"
#include "moe/kernels/cpu/quant_matmul.hpp"
#include "moe/kernels/reference/matmul_heads.hpp"

namespace moe::kernels {

template <class W, class Arch>
void matmul_heads(backend::cpu_simd<Arch> be, index_t n_heads, index_t x_head_stride, View<const float, 2> x,
                  View<const W, 2> w, View<float, 2> y) {
  detail::check_matmul_heads(n_heads, x_head_stride, x, w, y, "matmul_heads");
  const auto head = [&](index_t h) {
    const auto o = detail::head_operands(n_heads, x_head_stride, x, w, y, h);
    matmul(be, o.x, o.w, o.y);
  };
  if (n_heads >= static_cast<index_t>(max_threads())) {
    parallel_for_chunks(n_heads, 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t h = begin; h < end; ++h) head(static_cast<index_t>(h));
    });
  } else {
    for (index_t h = 0; h < n_heads; ++h) head(h);
  }
}

}  // namespace moe::kernels
