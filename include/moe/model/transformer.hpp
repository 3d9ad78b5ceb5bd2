// Transformer<Backend>: the decoder forward pass, written once for every family. Pre-norm
// residual blocks (RMSNorm -> attention or MLA -> + residual; RMSNorm -> dense MLP or MoE ->
// + residual), final RMSNorm, LM head. All prompt tokens of a chunk go through in one batched
// pass; several sequences (chunks) share the pass, each attending only to its own cache.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/attention.hpp"
#include "moe/layers/experts.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/mla.hpp"
#include "moe/layers/moe_block.hpp"
#include "moe/layers/rope.hpp"
#include "moe/model/config.hpp"
#include "moe/model/weights.hpp"
#include "moe/model/workspace.hpp"

#include <algorithm>
#include <cstdint>
#include <span>

namespace moe {

// The tokens of one sequence to run in a forward pass: they are appended to `cache` at positions
// cache->size(), cache->size()+1, ...
struct SequenceChunk {
  KvCache* cache = nullptr;
  std::span<const std::int32_t> tokens;
};

namespace model {

// The per-model constants the forward pass derives once at load time.
struct ForwardPlan {
  layers::RopeFrequencies rope;
  layers::MlaShape mla;
  WorkspaceSizes sizes;  // per-model part (max_tokens = 0)
  std::vector<KvLayerShape> kv_shapes;
};

inline ForwardPlan make_forward_plan(const ModelConfig& c, const ModelWeights& w) {
  ForwardPlan p;
  p.rope = layers::compute_rope_frequencies(c.rope);
  WorkspaceSizes& s = p.sizes;
  s.d_model = c.d_model;
  s.n_layers = c.n_layers;
  s.vocab_size = c.vocab_size;
  s.n_heads = c.n_heads;
  s.rope_half = c.rope.rotary_dim / 2;
  s.n_experts = c.n_experts;
  s.top_k = c.top_k;
  s.router_scratch = layers::router_scratch_floats(c.router);
  if (c.mla) {
    p.mla = layers::MlaShape{c.n_heads, c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim,
                             c.attention_scale};
    s.q_width = c.n_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim);
    s.k_width = c.kv_lora_rank + c.qk_rope_head_dim;
    s.v_width = 0;
    s.attn_width = c.n_heads * c.v_head_dim;
    s.q_lora_rank = c.q_lora_rank;
    s.latent_width = c.n_heads * c.kv_lora_rank;
    p.kv_shapes.assign(c.n_layers, KvLayerShape{c.kv_lora_rank, c.qk_rope_head_dim});
  } else {
    s.q_width = c.n_heads * c.head_dim;
    s.k_width = c.n_kv_heads * c.head_dim;
    s.v_width = c.n_kv_heads * c.v_head_dim;
    s.attn_width = c.n_heads * c.v_head_dim;
    p.kv_shapes.assign(c.n_layers, KvLayerShape{c.n_kv_heads * c.head_dim, c.n_kv_heads * c.v_head_dim});
  }
  // Feed-forward scratch per token: dense MLP 2·d_ff; experts 3·top_k·d_ff_expert; shared 2·d_ff_shared.
  index_t ffn = 0;
  for (const auto& L : w.layers) {
    if (L.moe) {
      ffn = std::max(ffn, 3 * c.top_k * L.moe_weights.experts.d_ff);
      ffn = std::max(ffn, 2 * L.moe_weights.shared.gate.rows);
    } else {
      ffn = std::max(ffn, 2 * L.mlp.gate.rows);
    }
  }
  s.ffn_per_token = ffn;
  return p;
}

template <class Backend>
struct Transformer {
  // Runs all chunks (already validated by Model::forward: caches distinct and with room, token
  // ids < vocab, workspace big enough, logits shaped right). Writes logits [total, vocab] when
  // all_positions, else [chunks.size(), vocab]; appends each chunk's tokens to its cache.
  static void forward(const ModelConfig& c, const ModelWeights& w, const ForwardPlan& plan,
                      std::span<const SequenceChunk> chunks, Workspace& ws, View<float, 2> logits, bool all_positions) {
    const Backend be{};
    index_t n = 0;
    for (const auto& ch : chunks) n += ch.tokens.size();

    // Positions and embeddings.
    auto positions = ws.positions(n);
    View<float, 2> hidden = ws.hidden(n);
    {
      index_t t = 0;
      for (const auto& ch : chunks) {
        for (index_t i = 0; i < ch.tokens.size(); ++i, ++t) {
          positions[t] = static_cast<std::int64_t>(ch.cache->size() + i);
          const auto row = w.embed.row_slice(static_cast<index_t>(ch.tokens[i]), static_cast<index_t>(ch.tokens[i]) + 1);
          visit_dtype(row.dtype, [&](auto tag) {
            using T = decltype(tag);
            const T* src = reinterpret_cast<const T*>(row.data);
            float* dst = &hidden(t, 0);
            for (index_t d = 0; d < c.d_model; ++d) dst[d] = to_float(src[d]);
          });
        }
      }
    }
    View<float, 2> cos = ws.cos(n), sin = ws.sin(n);
    if (c.rope.type == layers::RopeType::kDynamic) {
      // Dynamic NTK: each sequence's frequencies follow its own length after this pass.
      index_t t = 0;
      for (const auto& ch : chunks) {
        const index_t m = ch.tokens.size();
        const auto seq_len = static_cast<std::int64_t>(ch.cache->size() + m);
        const bool scaled = layers::dynamic_ntk_inv_freq(c.rope, seq_len, ws.rope_inv_freq());
        layers::fill_rope_rows(plan.rope, std::span<const std::int64_t>(positions).subspan(t, m),
                               cos.slice(t, t + m), sin.slice(t, t + m),
                               scaled ? std::span<const float>(ws.rope_inv_freq()) : std::span<const float>{});
        t += m;
      }
    } else {
      layers::fill_rope_rows(plan.rope, positions, cos, sin);
    }

    View<float, 2> normed = ws.normed(n);
    View<float, 2> out = ws.out(n);
    for (index_t l = 0; l < c.n_layers; ++l) {
      const LayerWeights& L = w.layers[l];
      layers::rms_norm(be, View<const float, 2>(hidden), L.input_norm, c.rms_norm_eps, normed);
      if (c.mla) {
        mla_block(c, L.mla, plan, l, chunks, ws, n, out);
      } else {
        attention_block(c, L.attn, l, chunks, ws, n, out);
      }
      kernels::add(be, hidden, View<const float, 2>(out));
      layers::rms_norm(be, View<const float, 2>(hidden), L.post_attention_norm, c.rms_norm_eps, normed);
      if (L.moe) {
        layers::MoeScratch s{ws.router_logits(), ws.expert_ids(), ws.expert_weights(), ws.router_scratch(),
                             ws.correction(),    ws.counts(),     ws.slot_token(),     ws.slot_weight(),
                             ws.xs(),            ws.ys(),         ws.ffn(),            ws.shared_out()};
        layers::moe_forward(be, c.router, L.moe_weights, View<const float, 2>(normed), s,
                            ws.expert_usage().layer(l), out);
      } else {
        layers::mlp_forward(be, L.mlp, View<const float, 2>(normed), ws.ffn(), out);
      }
      kernels::add(be, hidden, View<const float, 2>(out));
    }
    for (const auto& ch : chunks) ch.cache->append(ch.tokens.size());

    if (all_positions) {
      layers::rms_norm(be, View<const float, 2>(hidden), w.final_norm, c.rms_norm_eps, normed);
      layers::linear(be, View<const float, 2>(normed), w.lm_head, logits);
    } else {
      index_t t = 0, row = 0;
      for (const auto& ch : chunks) {
        t += ch.tokens.size();
        std::copy_n(&hidden(t - 1, 0), c.d_model, &normed(row++, 0));
      }
      View<float, 2> last = normed.slice(0, chunks.size());
      layers::rms_norm(be, View<const float, 2>(last), w.final_norm, c.rms_norm_eps, last);
      layers::linear(be, View<const float, 2>(last), w.lm_head, logits);
    }
  }

 private:
  static void clip(View<float, 2> x, float limit) {
    for (index_t t = 0; t < x.extent(0); ++t) {
      float* r = &x(t, 0);
      for (index_t i = 0; i < x.extent(1); ++i) r[i] = std::clamp(r[i], -limit, limit);
    }
  }

  static void attention_block(const ModelConfig& c, const AttentionWeights& a, index_t layer,
                              std::span<const SequenceChunk> chunks, Workspace& ws, index_t n, View<float, 2> out) {
    const Backend be{};
    View<const float, 2> x = ws.normed(n);
    View<float, 2> q = ws.q(n), k = ws.k(n), v = ws.v(n);
    layers::linear(be, x, a.q, q);
    layers::add_bias(q, a.q_bias);
    layers::linear(be, x, a.k, k);
    layers::add_bias(k, a.k_bias);
    layers::linear(be, x, a.v, v);
    layers::add_bias(v, a.v_bias);
    const index_t H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
    if (c.qk_norm == QkNorm::kWholeProjection) {
      layers::rms_norm(be, View<const float, 2>(q), a.q_norm, c.rms_norm_eps, q);
      layers::rms_norm(be, View<const float, 2>(k), a.k_norm, c.rms_norm_eps, k);
    } else if (c.qk_norm == QkNorm::kPerHead) {
      View<float, 2> qh(q.data(), {n * H, hd});
      View<float, 2> kh(k.data(), {n * KV, hd});
      layers::rms_norm(be, View<const float, 2>(qh), a.q_norm, c.rms_norm_eps, qh);
      layers::rms_norm(be, View<const float, 2>(kh), a.k_norm, c.rms_norm_eps, kh);
    }
    if (c.clip_qkv > 0) {
      clip(q, c.clip_qkv);
      clip(k, c.clip_qkv);
      clip(v, c.clip_qkv);
    }
    View<const float, 2> cos = ws.cos(n), sin = ws.sin(n);
    kernels::rope(be, View<float, 3>(q.data(), {n, H, hd}), cos, sin, c.rope_pairing);
    kernels::rope(be, View<float, 3>(k.data(), {n, KV, hd}), cos, sin, c.rope_pairing);

    const float* sinks = nullptr;
    if (!a.sinks.empty()) {
      auto buf = ws.sinks();
      for (index_t h = 0; h < H; ++h) buf[h] = a.sinks.at(h);
      sinks = buf.data();
    }
    layers::AttentionShape shape{H, KV, hd, c.v_head_dim, c.attention_scale, c.sliding_window[layer]};
    View<float, 2> attn = ws.attn(n);
    index_t t0 = 0;
    for (const auto& ch : chunks) {
      const index_t m = ch.tokens.size(), start = ch.cache->size();
      View<float, 2> keys = ch.cache->keys(layer), values = ch.cache->values(layer);
      for (index_t i = 0; i < m; ++i) {
        std::copy_n(&k(t0 + i, 0), KV * hd, &keys(start + i, 0));
        std::copy_n(&v(t0 + i, 0), KV * c.v_head_dim, &values(start + i, 0));
      }
      layers::attention_forward(shape, View<const float, 2>(q).slice(t0, t0 + m), View<const float, 2>(keys),
                                View<const float, 2>(values), start, sinks, attn.slice(t0, t0 + m));
      t0 += m;
    }
    layers::linear(be, View<const float, 2>(attn), a.o, out);
    layers::add_bias(out, a.o_bias);
  }

  static void mla_block(const ModelConfig& c, const layers::MlaWeights& m, const ForwardPlan& plan, index_t layer,
                        std::span<const SequenceChunk> chunks, Workspace& ws, index_t n, View<float, 2> out) {
    const Backend be{};
    const layers::MlaShape& s = plan.mla;
    // DeepSeek's q_a_layernorm and kv_a_layernorm use the RMSNorm default eps (1e-6), not rms_norm_eps.
    constexpr float kLatentNormEps = 1e-6f;
    View<const float, 2> x = ws.normed(n);
    View<float, 2> q = ws.q(n);
    if (c.q_lora_rank == 0) {
      layers::linear(be, x, m.q_proj, q);
    } else {
      View<float, 2> qa = ws.q_a(n);
      layers::linear(be, x, m.q_a_proj, qa);
      layers::add_bias(qa, m.q_a_bias);
      layers::rms_norm(be, View<const float, 2>(qa), m.q_a_norm, kLatentNormEps, qa);
      layers::linear(be, View<const float, 2>(qa), m.q_b_proj, q);
    }
    const index_t R = s.kv_lora_rank, width = R + s.rope;
    View<float, 2> ckv = ws.k(n);  // [n, rank + rope]
    layers::linear(be, x, m.kv_a_proj, ckv);
    layers::add_bias(ckv, m.kv_a_bias);
    View<float, 2> latent(ckv.data(), {n, R}, {width, 1});
    layers::rms_norm(be, View<const float, 2>(latent), m.kv_a_norm, kLatentNormEps, latent);

    View<const float, 2> cos = ws.cos(n), sin = ws.sin(n);
    kernels::rope(be, View<float, 3>(q.data() + s.nope, {n, s.n_heads, s.rope}, {s.n_heads * s.qk(), s.qk(), 1}), cos,
                  sin, c.rope_pairing);
    kernels::rope(be, View<float, 3>(ckv.data() + R, {n, 1, s.rope}, {width, s.rope, 1}), cos, sin, c.rope_pairing);

    View<float, 2> q_latent = ws.q_latent(n);
    layers::mla_absorb_queries(be, s, m.kv_b_proj, View<const float, 2>(q), q_latent);

    View<float, 2> out_latent = ws.out_latent(n);
    index_t t0 = 0;
    for (const auto& ch : chunks) {
      const index_t cnt = ch.tokens.size(), start = ch.cache->size();
      View<float, 2> lat = ch.cache->keys(layer), kr = ch.cache->values(layer);
      for (index_t i = 0; i < cnt; ++i) {
        std::copy_n(&ckv(t0 + i, 0), R, &lat(start + i, 0));
        std::copy_n(&ckv(t0 + i, R), s.rope, &kr(start + i, 0));
      }
      layers::mla_attention(s, View<const float, 2>(q).slice(t0, t0 + cnt),
                            View<const float, 2>(q_latent).slice(t0, t0 + cnt), View<const float, 2>(lat),
                            View<const float, 2>(kr), start, out_latent.slice(t0, t0 + cnt));
      t0 += cnt;
    }
    View<float, 2> attn = ws.attn(n);
    layers::mla_expand_values(be, s, m.kv_b_proj, View<const float, 2>(out_latent), attn);
    layers::linear(be, View<const float, 2>(attn), m.o_proj, out);
    layers::add_bias(out, m.o_bias);
  }
};

}  // namespace model
}  // namespace moe
