// The oracle's ops on weights in a ggml block format (quant/): every op the graph applies to a
// weight, written once against FormatTraits (dequantize a block, then the scalar arithmetic of the
// element-type kernel). A view of a block format counts blocks in its inner extent, so its logical
// width is extent · block_elements. These overloads are more constrained than the element-type
// templates of the same signature, so overload resolution picks them for block formats only.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/mla.hpp"
#include "moe/kernels/reference/random.hpp"

#include <cmath>
#include <cstdint>

namespace moe::kernels {

// y = x·Wᵀ for W [out, in] in a block format: each block dequantized, products summed in double
// (the dequantize-in-the-dot oracle). x [n, in], y [n, out]; in a multiple of the block size.
template <class W>
  requires is_block_format_v<W>
void matmul(backend::reference, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  detail::check_matmul(x, w, y, "matmul");
  constexpr index_t B = W::block_elements;
  float tmp[B];
  for (index_t t = 0; t < x.extent(0); ++t) {
    const float* xr = x.data() + t * x.stride(0);
    for (index_t o = 0; o < w.extent(0); ++o) {
      const W* wr = w.data() + o * w.stride(0);
      double acc = 0.0;
      for (index_t b = 0; b < w.extent(1); ++b) {
        W::dequantize(wr[b], tmp);
        for (index_t j = 0; j < B; ++j) acc += static_cast<double>(xr[b * B + j]) * static_cast<double>(tmp[j]);
      }
      y(t, o) = static_cast<float>(acc);
    }
  }
}

// y = x·W for W [in, out] in a block format (blocks run along out). x [n, in], y [n, out].
template <class W>
  requires is_block_format_v<W>
void matmul_in_out(backend::reference, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  const index_t cols = detail::weight_cols(w);
  require(x.extent(1) == w.extent(0) && y.extent(0) == x.extent(0) && y.extent(1) == cols,
          ErrorCode::kInvalidArgument, "matmul_in_out: shapes x [{}, {}], w [{}, {}] ({}, in, out), y [{}, {}]",
          x.extent(0), x.extent(1), w.extent(0), cols, dtype_name(W::dtype), y.extent(0), y.extent(1));
  for (index_t t = 0; t < x.extent(0); ++t) {
    for (index_t o = 0; o < cols; ++o) {
      double acc = 0.0;
      for (index_t i = 0; i < x.extent(1); ++i) {
        acc += static_cast<double>(x(t, i)) * static_cast<double>(W::decode(w.data() + i * w.stride(0), o));
      }
      y(t, o) = static_cast<float>(acc);
    }
  }
}

// out[t, :] = dequantized table row tokens[t]. table [vocab, d] (d / block_elements blocks per row).
template <class W>
  requires is_block_format_v<W>
void embed_rows(backend::reference, View<const W, 2> table, View<const std::int32_t, 1> tokens, View<float, 2> out) {
  require(out.extent(0) == tokens.extent(0) && out.extent(1) == detail::weight_cols(table),
          ErrorCode::kInvalidArgument, "embed_rows: table [{}, {}] ({}), {} tokens, out [{}, {}]", table.extent(0),
          detail::weight_cols(table), dtype_name(W::dtype), tokens.extent(0), out.extent(0), out.extent(1));
  for (index_t t = 0; t < tokens.extent(0); ++t) {
    const W* row = &table(static_cast<index_t>(tokens[t]), 0);
    for (index_t b = 0; b < table.extent(1); ++b) W::dequantize(row[b], &out(t, b * W::block_elements));
  }
}

// rmsnorm with a block-format weight [d] (as the element-type oracle, weight decoded).
template <class W>
  requires is_block_format_v<W>
void rmsnorm(backend::reference, View<const float, 2> x, View<const W, 1> weight, float eps, View<float, 2> y) {
  detail::check_same_shape(x, View<const float, 2>(y), "rmsnorm", "x", "y");
  const index_t d = x.extent(1);
  require(detail::weight_cols(weight) == d, ErrorCode::kInvalidArgument, "rmsnorm: weight has {} elements, rows of x {}",
          detail::weight_cols(weight), d);
  if (d == 0) return;
  for (index_t r = 0; r < x.extent(0); ++r) {
    double sum_sq = 0.0;
    for (index_t i = 0; i < d; ++i) sum_sq += static_cast<double>(x(r, i)) * x(r, i);
    const auto inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(d) + eps));
    for (index_t i = 0; i < d; ++i) y(r, i) = (x(r, i) * inv_rms) * W::decode(weight.data(), i);
  }
}

// y[t, :] += bias for a block-format bias [d].
template <class W>
  requires is_block_format_v<W>
void add_bias(backend::reference, View<float, 2> y, View<const W, 1> bias) {
  require(detail::weight_cols(bias) == y.extent(1), ErrorCode::kInvalidArgument, "add_bias: bias of {} for rows of {}",
          detail::weight_cols(bias), y.extent(1));
  for (index_t t = 0; t < y.extent(0); ++t) {
    for (index_t i = 0; i < y.extent(1); ++i) y(t, i) += W::decode(bias.data(), i);
  }
}

// dst = dequantized src [n].
template <class W>
  requires is_block_format_v<W>
void to_f32(backend::reference, View<const W, 1> src, View<float, 1> dst) {
  require(detail::weight_cols(src) == dst.extent(0), ErrorCode::kInvalidArgument, "to_f32: {} elements into {}",
          detail::weight_cols(src), dst.extent(0));
  for (index_t i = 0; i < dst.extent(0); ++i) dst[i] = W::decode(src.data(), i);
}

namespace detail {
// Blocks [b0, b1) of fill_uniform below (the cpu backend splits the blocks across its threads).
template <class W>
void fill_uniform_blocks(View<W, 1> x, index_t b0, index_t b1, std::uint64_t seed, float scale, float offset) {
  constexpr index_t B = W::block_elements;
  float tmp[B];
  for (index_t b = b0; b < b1; ++b) {
    for (index_t j = 0; j < B; ++j) tmp[j] = offset + scale * uniform_pm1(seed, b * B + j);
    W::quantize(tmp, x[b]);
  }
}
}  // namespace detail

// x = quantize(offset + scale · u(seed, i)) for the x.extent(0)·block_elements elements of x
// (the same values fill_uniform gives an element type, then ggml's reference quantizer).
template <class W>
  requires is_block_format_v<W>
void fill_uniform(backend::reference, View<W, 1> x, std::uint64_t seed, float scale, float offset) {
  detail::fill_uniform_blocks(x, 0, x.extent(0), seed, scale, offset);
}

// MLA's absorbed projections with kv_b_proj [n_heads·(nope+v), rank] in a block format.
template <class W>
  requires is_block_format_v<W>
void mla_absorb_queries(backend::reference be, const MlaShape& s, View<const W, 2> kv_b, View<const float, 2> q,
                        View<float, 2> q_latent) {
  detail::check_mla_projection(s, kv_b.extent(0), detail::weight_cols(kv_b), q.extent(0), q.extent(1),
                               q_latent.extent(0), q_latent.extent(1), "mla_absorb_queries", s.n_heads * s.qk(),
                               s.n_heads * s.kv_lora_rank);
  for (index_t h = 0; h < s.n_heads; ++h) {
    matmul_in_out(be, detail::head_columns(q, h * s.qk(), s.nope), detail::mla_key_up(s, kv_b, h),
                  detail::head_columns(q_latent, h * s.kv_lora_rank, s.kv_lora_rank));
  }
}

template <class W>
  requires is_block_format_v<W>
void mla_expand_values(backend::reference be, const MlaShape& s, View<const W, 2> kv_b, View<const float, 2> out_latent,
                       View<float, 2> out) {
  detail::check_mla_projection(s, kv_b.extent(0), detail::weight_cols(kv_b), out_latent.extent(0),
                               out_latent.extent(1), out.extent(0), out.extent(1), "mla_expand_values",
                               s.n_heads * s.kv_lora_rank, s.n_heads * s.v);
  for (index_t h = 0; h < s.n_heads; ++h) {
    matmul(be, detail::head_columns(out_latent, h * s.kv_lora_rank, s.kv_lora_rank), detail::mla_value_up(s, kv_b, h),
           detail::head_columns(out, h * s.v, s.v));
  }
}

}  // namespace moe::kernels
