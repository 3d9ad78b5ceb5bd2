// Multi-head latent attention (DeepSeek-V2/V3) in the weight-absorbed form: the cache keeps only
// the normalised latent c_kv [kv_lora_rank] and the rotated rope key [qk_rope_head_dim] per token.
// Per head h, with kv_b_proj split into W_UK[h] [qk_nope, rank] and W_UV[h] [v_head_dim, rank]:
//   q_lat   = q_nopeᵀ·W_UK[h]                       (the query moved into latent space)
//   score_j = scale · (q_lat·c_kv_j + q_rope·k_rope_j) (= q_nope·(W_UK c_kv_j) + q_rope·k_rope_j)
//   o_lat   = Σ_j softmax(score)_j · c_kv_j
//   out     = W_UV[h]·o_lat                          (= Σ_j p_j · (W_UV c_kv_j))
// which equals transformers' expanded attention up to f32 rounding (DeepSeek-V2 paper §2.1.2).
#pragma once

#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/layers/attention.hpp"
#include "moe/layers/linear.hpp"

namespace moe::layers {

struct MlaWeights {
  WeightMatrix q_proj;        // [n_heads·(nope+rope), d_model] when q_lora_rank == 0
  WeightMatrix q_a_proj;      // [q_lora_rank, d_model]
  WeightVector q_a_bias;      // [q_lora_rank] (attention_bias) or empty
  WeightVector q_a_norm;      // [q_lora_rank]
  WeightMatrix q_b_proj;      // [n_heads·(nope+rope), q_lora_rank]
  WeightMatrix kv_a_proj;     // [kv_lora_rank + rope, d_model]
  WeightVector kv_a_bias;     // [kv_lora_rank + rope] or empty
  WeightVector kv_a_norm;     // [kv_lora_rank]
  WeightMatrix kv_b_proj;     // [n_heads·(nope + v), kv_lora_rank]
  WeightMatrix o_proj;        // [d_model, n_heads·v]
  WeightVector o_bias;        // [d_model] or empty
};

struct MlaShape {
  index_t n_heads = 0;
  index_t kv_lora_rank = 0;
  index_t nope = 0;           // qk_nope_head_dim
  index_t rope = 0;           // qk_rope_head_dim
  index_t v = 0;              // v_head_dim
  float scale = 1.0f;
  index_t qk() const noexcept { return nope + rope; }
};

// W_UK[h] as an input-major [nope, rank] matrix (rows of kv_b_proj).
inline WeightMatrix mla_key_up(const MlaShape& s, const WeightMatrix& kv_b, index_t h) {
  return kv_b.row_slice(h * (s.nope + s.v), h * (s.nope + s.v) + s.nope);
}
// W_UV[h] as an [v, rank] matrix (out, in).
inline WeightMatrix mla_value_up(const MlaShape& s, const WeightMatrix& kv_b, index_t h) {
  return kv_b.row_slice(h * (s.nope + s.v) + s.nope, (h + 1) * (s.nope + s.v));
}

// q [n, n_heads·(nope+rope)] -> q_latent [n, n_heads·rank]: q_latent[t,h] = q_nope[t,h]·W_UK[h].
template <class B>
void mla_absorb_queries(B backend, const MlaShape& s, const WeightMatrix& kv_b, View<const float, 2> q,
                        View<float, 2> q_latent) {
  const index_t n = q.extent(0);
  // One parallel region over heads (the per-head products are small; a region per head costs
  // more in synchronisation than it saves). Kernels called inside run on the calling thread.
  parallel_for_chunks(s.n_heads, 1, [&](std::size_t begin, std::size_t end) {
    for (index_t h = begin; h < end; ++h) {
      View<const float, 2> qn(&q(0, h * s.qk()), {n, s.nope}, {q.stride(0), 1});
      View<float, 2> ql(&q_latent(0, h * s.kv_lora_rank), {n, s.kv_lora_rank}, {q_latent.stride(0), 1});
      linear_in_out(backend, qn, mla_key_up(s, kv_b, h), ql);
    }
  });
}

// Latent attention for n tokens of one sequence at positions start..start+n-1.
//   q        [n, n_heads·(nope+rope)] (rope part rotated), q_latent [n, n_heads·rank]
//   latent   [>= start+n, rank] cache, k_rope [>= start+n, rope] cache
//   out_latent [n, n_heads·rank]
inline void mla_attention(const MlaShape& s, View<const float, 2> q, View<const float, 2> q_latent,
                          View<const float, 2> latent, View<const float, 2> k_rope, index_t start,
                          View<float, 2> out_latent) {
  const index_t n = q.extent(0), r = s.kv_lora_rank;
  parallel_for_chunks(n * s.n_heads, 2, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = item / s.n_heads, h = item % s.n_heads;
      const float* ql = &q_latent(t, h * r);
      const float* qr = &q(t, h * s.qk() + s.nope);
      detail::attend_streaming(
          0, start + t + 1, false, 0.0f,
          [&](index_t j) {
            return (detail::dot(ql, &latent(j, 0), r) + detail::dot(qr, &k_rope(j, 0), s.rope)) * s.scale;
          },
          [&](index_t j) { return &latent(j, 0); }, r, &out_latent(t, h * r));
    }
  });
}

// out [n, n_heads·v]: out[t,h] = W_UV[h]·out_latent[t,h].
template <class B>
void mla_expand_values(B backend, const MlaShape& s, const WeightMatrix& kv_b, View<const float, 2> out_latent,
                       View<float, 2> out) {
  const index_t n = out_latent.extent(0);
  parallel_for_chunks(s.n_heads, 1, [&](std::size_t begin, std::size_t end) {
    for (index_t h = begin; h < end; ++h) {
      View<const float, 2> ol(&out_latent(0, h * s.kv_lora_rank), {n, s.kv_lora_rank}, {out_latent.stride(0), 1});
      View<float, 2> o(&out(0, h * s.v), {n, s.v}, {out.stride(0), 1});
      linear(backend, ol, mla_value_up(s, kv_b, h), o);
    }
  });
}

}  // namespace moe::layers
