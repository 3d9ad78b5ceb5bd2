// Per-head products (the oracle): for each head h < n_heads,
//   y[:, h·R .. (h+1)·R) = x[:, h·xs .. h·xs + K) · W[h·R .. (h+1)·R)ᵀ
// with W [n_heads·R, K] stored [out, in] in any weight format (R = W's rows / n_heads, K its
// columns), x [n, >= (n_heads-1)·xs + K] read at column offset h·xs (xs = x_head_stride) and
// y [n, n_heads·R]. MLA's split projections are this (GGUF's attn_k_b [H, rank, nope] moves each
// head's q_nope into latent space, attn_v_b [H, v, rank] expands each head's latent output).
// The cpu backend runs the heads in parallel (kernels/cpu/matmul_heads.hpp), CUDA as one batched
// launch (kernels/cuda/matmul.cuh).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/quant_ops.hpp"

namespace moe::kernels {
namespace detail {

template <class W, class S>
void check_matmul_heads(index_t n_heads, index_t x_head_stride, const TensorView<const float, 2, S>& x,
                        const TensorView<const W, 2, S>& w, const TensorView<float, 2, S>& y, const char* op) {
  const index_t rows = w.extent(0), k = weight_cols(w);
  require(n_heads > 0 && rows % n_heads == 0 && x.extent(0) == y.extent(0) &&
              y.extent(1) == rows && (n_heads - 1) * x_head_stride + k <= x.extent(1),
          ErrorCode::kInvalidArgument,
          "{}: {} heads, x [{}, {}] read every {} columns, w [{}, {}] ({}, out, in), y [{}, {}] do not agree", op,
          n_heads, x.extent(0), x.extent(1), x_head_stride, rows, k, FormatTraits<W>::name, y.extent(0), y.extent(1));
  check_unit_inner_stride(x, op, "x");
  check_unit_inner_stride(w, op, "w");
  check_unit_inner_stride(y, op, "y");
}

// Head h's operands of matmul_heads.
template <class W, class S>
struct HeadOperands {
  TensorView<const float, 2, S> x;
  TensorView<const W, 2, S> w;
  TensorView<float, 2, S> y;
};
template <class W, class S>
HeadOperands<W, S> head_operands(index_t n_heads, index_t x_head_stride, const TensorView<const float, 2, S>& x,
                                 const TensorView<const W, 2, S>& w, const TensorView<float, 2, S>& y, index_t h) {
  const index_t r = w.extent(0) / n_heads, k = weight_cols(w);
  return {TensorView<const float, 2, S>(x.data() + h * x_head_stride, {x.extent(0), k}, {x.stride(0), 1}),
          w.slice(h * r, (h + 1) * r), TensorView<float, 2, S>(y.data() + h * r, {y.extent(0), r}, {y.stride(0), 1})};
}

}  // namespace detail

template <class W>
void matmul_heads(backend::reference be, index_t n_heads, index_t x_head_stride, View<const float, 2> x,
                  View<const W, 2> w, View<float, 2> y) {
  detail::check_matmul_heads(n_heads, x_head_stride, x, w, y, "matmul_heads");
  for (index_t h = 0; h < n_heads; ++h) {
    const auto o = detail::head_operands(n_heads, x_head_stride, x, w, y, h);
    matmul(be, o.x, o.w, o.y);
  }
}

}  // namespace moe::kernels
