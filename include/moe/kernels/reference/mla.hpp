// The weight-absorbed projections of multi-head latent attention (the oracle): queries moved into
// latent space and latent outputs expanded back to values, per head through kv_b_proj. With
// kv_b_proj split per head into W_UK[h] [nope, rank] and W_UV[h] [v, rank] (rows of kv_b_proj):
//   q_latent[t, h] = q_nope[t, h]ᵀ·W_UK[h]      out[t, h] = W_UV[h]·out_latent[t, h]
// (DeepSeek-V2 paper §2.1.2). The cpu backend runs the heads in parallel.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/matmul.hpp"

namespace moe::kernels {
namespace detail {

inline void check_mla_projection(const MlaShape& s, index_t kv_b_rows, index_t kv_b_cols, index_t n_a, index_t w_a,
                                 index_t n_b, index_t w_b, const char* op, index_t expect_a, index_t expect_b) {
  require(kv_b_rows == s.n_heads * (s.nope + s.v) && kv_b_cols == s.kv_lora_rank && n_a == n_b && w_a == expect_a &&
              w_b == expect_b,
          ErrorCode::kInvalidArgument, "{}: kv_b_proj [{}, {}], operands [{}, {}] and [{}, {}] for {} heads", op,
          kv_b_rows, kv_b_cols, n_a, w_a, n_b, w_b, s.n_heads);
}

// Head h's W_UK [nope, rank] (input-major for q_nope·W_UK) and W_UV [v, rank] (out, in).
template <class W, class S>
TensorView<const W, 2, S> mla_key_up(const MlaShape& s, const TensorView<const W, 2, S>& kv_b, index_t h) {
  return kv_b.slice(h * (s.nope + s.v), h * (s.nope + s.v) + s.nope);
}
template <class W, class S>
TensorView<const W, 2, S> mla_value_up(const MlaShape& s, const TensorView<const W, 2, S>& kv_b, index_t h) {
  return kv_b.slice(h * (s.nope + s.v) + s.nope, (h + 1) * (s.nope + s.v));
}

// Head h's columns of a [n, heads·width] activation starting at column offset h·stride.
template <class T>
View<T, 2> head_columns(const View<T, 2>& x, index_t offset, index_t width) {
  return View<T, 2>(x.data() + offset, {x.extent(0), width}, {x.stride(0), 1});
}

}  // namespace detail

// q [n, n_heads·(nope+rope)] -> q_latent [n, n_heads·rank]; kv_b [n_heads·(nope+v), rank].
template <class W>
void mla_absorb_queries(backend::reference be, const MlaShape& s, View<const W, 2> kv_b, View<const float, 2> q,
                        View<float, 2> q_latent) {
  detail::check_mla_projection(s, kv_b.extent(0), kv_b.extent(1), q.extent(0), q.extent(1), q_latent.extent(0),
                               q_latent.extent(1), "mla_absorb_queries", s.n_heads * s.qk(),
                               s.n_heads * s.kv_lora_rank);
  for (index_t h = 0; h < s.n_heads; ++h) {
    matmul_in_out(be, detail::head_columns(q, h * s.qk(), s.nope), detail::mla_key_up(s, kv_b, h),
                  detail::head_columns(q_latent, h * s.kv_lora_rank, s.kv_lora_rank));
  }
}

// out_latent [n, n_heads·rank] -> out [n, n_heads·v].
template <class W>
void mla_expand_values(backend::reference be, const MlaShape& s, View<const W, 2> kv_b,
                       View<const float, 2> out_latent, View<float, 2> out) {
  detail::check_mla_projection(s, kv_b.extent(0), kv_b.extent(1), out_latent.extent(0), out_latent.extent(1),
                               out.extent(0), out.extent(1), "mla_expand_values", s.n_heads * s.kv_lora_rank,
                               s.n_heads * s.v);
  for (index_t h = 0; h < s.n_heads; ++h) {
    matmul(be, detail::head_columns(out_latent, h * s.kv_lora_rank, s.kv_lora_rank), detail::mla_value_up(s, kv_b, h),
           detail::head_columns(out, h * s.v, s.v));
  }
}

}  // namespace moe::kernels
