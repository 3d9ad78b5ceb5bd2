// Multi-head latent attention (DeepSeek-V2/V3) in the weight-absorbed form: the cache keeps only
// the normalised latent c_kv [kv_lora_rank] and the rotated rope key [qk_rope_head_dim] per token.
// Per head h, with kv_b_proj split into W_UK[h] [qk_nope, rank] and W_UV[h] [v_head_dim, rank]:
//   q_lat   = q_nopeᵀ·W_UK[h]                       (the query moved into latent space)
//   score_j = scale · (q_lat·c_kv_j + q_rope·k_rope_j) (= q_nope·(W_UK c_kv_j) + q_rope·k_rope_j)
//   o_lat   = Σ_j softmax(score)_j · c_kv_j
//   out     = W_UV[h]·o_lat                          (= Σ_j p_j · (W_UV c_kv_j))
// which equals transformers' expanded attention up to f32 rounding (DeepSeek-V2 paper §2.1.2).
// kv_b_proj comes in one of two forms: as the checkpoint stores it, or split per head as GGUF
// files store it (attn_k_b = W_UK[h]ᵀ [rank, nope] and attn_v_b = W_UV[h] [v, rank], k_b_proj and
// v_b_proj here). The split form makes both products ordinary [out, in] matmuls per head
// (kernels::matmul_heads), so a quantized file's halves are used in place; the stored form's
// absorption is input-major (kernels::mla_absorb_queries).
// With DeepSeek sparse attention (V3.2, GLM-5; kernels/reference/dsa.hpp) a lightning indexer picks
// each query's top index_topk positions and the softmax runs over those only: its query comes from
// the normalised q_lora latent (wq_b), its key per token from x (wk, LayerNorm k_norm, rope on the
// first qk_rope_head_dim dims) and is cached after the layer's values; its head weights are
// weights_proj·x. A layer without indexer weights ("shared", GLM-5) reuses the previous layer's
// selection, which stays in the scratch.
// The layer wires the kernels (kernels/reference/{attention,mla}.hpp hold the arithmetic).
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/layers/linear.hpp"

#include <span>

namespace moe::layers {

using kernels::MlaShape;

template <class S = host_memory>
struct MlaWeights {
  WeightMatrix<S> q_proj;     // [n_heads·(nope+rope), d_model] when q_lora_rank == 0
  WeightMatrix<S> q_a_proj;   // [q_lora_rank, d_model]
  WeightVector<S> q_a_bias;   // [q_lora_rank] (attention_bias) or empty
  WeightVector<S> q_a_norm;   // [q_lora_rank]
  WeightMatrix<S> q_b_proj;   // [n_heads·(nope+rope), q_lora_rank]
  WeightMatrix<S> kv_a_proj;  // [kv_lora_rank + rope, d_model]
  WeightVector<S> kv_a_bias;  // [kv_lora_rank + rope] or empty
  WeightVector<S> kv_a_norm;  // [kv_lora_rank]
  WeightMatrix<S> kv_b_proj;  // [n_heads·(nope + v), kv_lora_rank], or empty when split:
  WeightMatrix<S> k_b_proj;   // [n_heads·kv_lora_rank, nope]: W_UK[h]ᵀ per head (GGUF attn_k_b)
  WeightMatrix<S> v_b_proj;   // [n_heads·v, kv_lora_rank]: W_UV[h] per head (GGUF attn_v_b)
  WeightMatrix<S> o_proj;     // [d_model, n_heads·v]
  WeightVector<S> o_bias;     // [d_model] or empty
  // DSA lightning indexer ("indexer." prefix), empty on dense or shared-selection layers
  WeightMatrix<S> index_wq_b;     // [index_heads·index_head_dim, q_lora_rank]
  WeightMatrix<S> index_wk;       // [index_head_dim, d_model]
  WeightVector<S> index_k_norm;   // [index_head_dim] LayerNorm weight
  WeightVector<S> index_k_bias;   // [index_head_dim] LayerNorm bias
  WeightMatrix<S> index_weights;  // [index_heads, d_model] (weights_proj)

  bool has_indexer() const noexcept { return !index_wk.empty(); }
  bool split_kv_b() const noexcept { return !k_b_proj.empty(); }

  template <class F>
  auto transform(F&& f) const {
    MlaWeights<typename decltype(f("", q_proj))::memory> r;
    r.q_proj = f("q_proj.weight", q_proj), r.q_a_proj = f("q_a_proj.weight", q_a_proj);
    r.q_a_bias = f("q_a_proj.bias", q_a_bias), r.q_a_norm = f("q_a_layernorm.weight", q_a_norm);
    r.q_b_proj = f("q_b_proj.weight", q_b_proj), r.kv_a_proj = f("kv_a_proj_with_mqa.weight", kv_a_proj);
    r.kv_a_bias = f("kv_a_proj_with_mqa.bias", kv_a_bias), r.kv_a_norm = f("kv_a_layernorm.weight", kv_a_norm);
    r.kv_b_proj = f("kv_b_proj.weight", kv_b_proj), r.o_proj = f("o_proj.weight", o_proj);
    r.k_b_proj = f("k_b_proj.weight", k_b_proj), r.v_b_proj = f("v_b_proj.weight", v_b_proj);
    r.o_bias = f("o_proj.bias", o_bias);
    r.index_wq_b = f("indexer.wq_b.weight", index_wq_b), r.index_wk = f("indexer.wk.weight", index_wk);
    r.index_k_norm = f("indexer.k_norm.weight", index_k_norm), r.index_k_bias = f("indexer.k_norm.bias", index_k_bias);
    r.index_weights = f("indexer.weights_proj.weight", index_weights);
    return r;
  }
};

struct MlaOptions {
  MlaShape shape;
  index_t q_lora_rank = 0;  // 0: a plain q_proj
  kernels::RopePairing rope_pairing = kernels::RopePairing::half_split;
  kernels::DsaShape dsa;  // top_k == 0: dense attention
  kernels::RopePairing index_rope_pairing = kernels::RopePairing::half_split;
};

template <class B>
struct MlaScratch {
  ViewOf<B, float, 2> q;           // [n, H·(nope+rope)]
  ViewOf<B, float, 2> q_a;         // [n, q_lora_rank]
  ViewOf<B, float, 2> ckv;         // [n, rank + rope]
  ViewOf<B, float, 2> q_latent;    // [n, H·rank]
  ViewOf<B, float, 2> out_latent;  // [n, H·rank]
  ViewOf<B, float, 2> attn;        // [n, H·v]
  // DSA only (empty otherwise)
  ViewOf<B, float, 2> index_q;                   // [n, index_heads·index_head_dim]
  ViewOf<B, float, 2> index_k;                   // [n, index_head_dim]
  ViewOf<B, float, 2> index_w;                   // [n, index_heads]
  ViewOf<B, std::int32_t, 2> index_selection;    // [n, index_topk], kept for the next shared layer
};

// The indexer's selection for the rows of x (q_resid = the normalised q_lora latent): its key
// appended to the layer's cache, the top positions into s.index_selection.
template <class B>
void dsa_indexer_forward(B be, const MlaOptions& o, const MlaWeights<typename B::memory>& m,
                         const kernels::PassSlots<typename B::memory>& pass, const kernels::CacheLayer& layer,
                         ViewOf<B, const float, 2> x, ViewOf<B, const float, 2> q_resid, ViewOf<B, const float, 2> cos,
                         ViewOf<B, const float, 2> sin, const MlaScratch<B>& s) {
  using CV = ViewOf<B, const float, 2>;
  const kernels::DsaShape& d = o.dsa;
  const index_t n = x.extent(0), rope = o.shape.rope;
  constexpr float kKeyNormEps = 1e-6f;  // the indexer's nn.LayerNorm(eps=1e-6)
  linear(be, q_resid, m.index_wq_b, s.index_q);
  linear(be, x, m.index_wk, s.index_k);
  require(m.index_k_norm.dtype == m.index_k_bias.dtype, ErrorCode::kInvalidArgument,
          "indexer.k_norm: weight and bias dtypes differ");
  visit_dtype(m.index_k_norm.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::layer_norm(be, CV(s.index_k), m.index_k_norm.template view<T>(), m.index_k_bias.template view<T>(),
                        kKeyNormEps, s.index_k);
  });
  // Rope on each head's first `rope` dims (the rest passes through).
  kernels::rope(be, ViewOf<B, float, 3>(s.index_q.data(), {n, d.n_heads, rope}, {d.n_heads * d.head_dim, d.head_dim, 1}),
                cos, sin, o.index_rope_pairing);
  kernels::rope(be, ViewOf<B, float, 3>(s.index_k.data(), {n, 1, rope}, {d.head_dim, d.head_dim, 1}), cos, sin,
                o.index_rope_pairing);
  linear(be, x, m.index_weights, s.index_w);
  kernels::append_index_keys(be, pass, layer, CV(s.index_k));
  kernels::dsa_select(be, d, pass, layer, CV(s.index_q), CV(s.index_w), s.index_selection);
}

// out = MLA(x) for the tokens of every chunk, each chunk's latent and rope key appended to its
// cache ("keys" = latent, "values" = rope key). x [n, d_model], out [n, d_model].
template <class B>
void mla_forward(B be, const MlaOptions& o, const MlaWeights<typename B::memory>& m,
                 const kernels::PassSlots<typename B::memory>& pass, const kernels::CacheLayer& layer,
                 ViewOf<B, const float, 2> x,
                 ViewOf<B, const float, 2> cos, ViewOf<B, const float, 2> sin, const MlaScratch<B>& s,
                 ViewOf<B, float, 2> out) {
  using CV = ViewOf<B, const float, 2>;
  const MlaShape& sh = o.shape;
  // DeepSeek's q_a_layernorm and kv_a_layernorm use the RMSNorm default eps (1e-6), not rms_norm_eps.
  constexpr float kLatentNormEps = 1e-6f;
  const index_t n = x.extent(0), R = sh.kv_lora_rank, width = R + sh.rope;
  if (o.q_lora_rank == 0) {
    linear(be, x, m.q_proj, s.q);
  } else {
    linear(be, x, m.q_a_proj, s.q_a);
    add_bias(be, s.q_a, m.q_a_bias);
    rms_norm(be, CV(s.q_a), m.q_a_norm, kLatentNormEps, s.q_a);
    linear(be, CV(s.q_a), m.q_b_proj, s.q);
  }
  linear(be, x, m.kv_a_proj, s.ckv);
  add_bias(be, s.ckv, m.kv_a_bias);
  const ViewOf<B, float, 2> latent(s.ckv.data(), {n, R}, {width, 1});
  rms_norm(be, CV(latent), m.kv_a_norm, kLatentNormEps, latent);

  kernels::rope(be, ViewOf<B, float, 3>(s.q.data() + sh.nope, {n, sh.n_heads, sh.rope}, {sh.n_heads * sh.qk(), sh.qk(), 1}),
                cos, sin, o.rope_pairing);
  kernels::rope(be, ViewOf<B, float, 3>(s.ckv.data() + R, {n, 1, sh.rope}, {width, sh.rope, 1}), cos, sin,
                o.rope_pairing);

  if (m.split_kv_b()) {
    require(m.k_b_proj.rows == sh.n_heads * R && m.k_b_proj.cols == sh.nope && m.v_b_proj.rows == sh.n_heads * sh.v &&
                m.v_b_proj.cols == R,
            ErrorCode::kInvalidArgument, "mla: k_b_proj [{}, {}] and v_b_proj [{}, {}] for {} heads (nope {}, v {}, rank {})",
            m.k_b_proj.rows, m.k_b_proj.cols, m.v_b_proj.rows, m.v_b_proj.cols, sh.n_heads, sh.nope, sh.v, R);
    linear_heads(be, sh.n_heads, sh.qk(), CV(s.q), m.k_b_proj, s.q_latent);
  } else {
    require_rows_as_stored(m.kv_b_proj, "mla kv_b_proj");
    visit_format<B>(m.kv_b_proj.dtype, [&](auto tag) {
      using T = decltype(tag);
      kernels::mla_absorb_queries(be, sh, m.kv_b_proj.template view<T>(), CV(s.q), s.q_latent);
    });
  }
  kernels::append_cache(be, pass, layer, CV(latent), CV(s.ckv.data() + R, {n, sh.rope}, {width, 1}));
  if (o.dsa.top_k == 0) {
    kernels::cached_mla_attention(be, sh, pass, layer, CV(s.q), CV(s.q_latent), s.out_latent);
  } else {
    if (m.has_indexer()) dsa_indexer_forward(be, o, m, pass, layer, x, CV(s.q_a), cos, sin, s);
    kernels::cached_sparse_mla_attention(be, sh, pass, layer, CV(s.q), CV(s.q_latent),
                                         ViewOf<B, const std::int32_t, 2>(s.index_selection), s.out_latent);
  }
  if (m.split_kv_b()) {
    linear_heads(be, sh.n_heads, R, CV(s.out_latent), m.v_b_proj, s.attn);
  } else {
    visit_format<B>(m.kv_b_proj.dtype, [&](auto tag) {
      using T = decltype(tag);
      kernels::mla_expand_values(be, sh, m.kv_b_proj.template view<T>(), CV(s.out_latent), s.attn);
    });
  }
  linear(be, CV(s.attn), m.o_proj, out);
  add_bias(be, out, m.o_bias);
}

}  // namespace moe::layers
