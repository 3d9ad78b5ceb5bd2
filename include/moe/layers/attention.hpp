// The attention layer of a standard (multi-head / grouped-query) block: q/k/v projections with
// optional biases, QK-norm, OLMoE's clip_qkv, rope, the KV-cache append of each sequence and
// causal attention over its cache (sliding window, GPT-OSS sinks), then the output projection.
// Every step is a kernel on the backend; the layer only wires them.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/layers/linear.hpp"

#include <cstdint>
#include <span>

namespace moe::layers {

using kernels::AttentionShape;

enum class QkNorm : std::uint8_t {
  kNone,
  kPerHead,         // RMSNorm over each head's head_dim (Qwen3-MoE, GLM-4-MoE use_qk_norm)
  kWholeProjection  // RMSNorm over the whole q / k projection before the head split (OLMoE)
};

template <class S = host_memory>
struct AttentionWeights {
  WeightMatrix<S> q, k, v, o;  // [n_heads·hd, d], [n_kv·hd, d], [n_kv·hd, d], [d, n_heads·hd]
  WeightVector<S> q_bias, k_bias, v_bias, o_bias;
  WeightVector<S> q_norm, k_norm;  // [head_dim] per-head, or [n_heads·hd] / [n_kv·hd] whole
  WeightVector<S> sinks;           // [n_heads] GPT-OSS

  template <class F>
  auto transform(F&& f) const {
    AttentionWeights<typename decltype(f("", q))::memory> r;
    r.q = f("q_proj.weight", q), r.k = f("k_proj.weight", k), r.v = f("v_proj.weight", v);
    r.o = f("o_proj.weight", o), r.q_bias = f("q_proj.bias", q_bias), r.k_bias = f("k_proj.bias", k_bias);
    r.v_bias = f("v_proj.bias", v_bias), r.o_bias = f("o_proj.bias", o_bias);
    r.q_norm = f("q_norm.weight", q_norm), r.k_norm = f("k_norm.weight", k_norm), r.sinks = f("sinks", sinks);
    return r;
  }
};

// The per-model options of the layer (from the config); the sliding window is per layer.
struct AttentionOptions {
  AttentionShape shape;                    // sliding_window: this layer's
  QkNorm qk_norm = QkNorm::kNone;
  float norm_eps = 1e-6f;                  // the QK-norm's eps (rms_norm_eps)
  float clip_qkv = 0.0f;                   // 0: no clipping
  kernels::RopePairing rope_pairing = kernels::RopePairing::half_split;
};

// The scratch the layer writes (views into the Workspace, first n rows).
template <class B>
struct AttentionScratch {
  ViewOf<B, float, 2> q, k, v, attn;  // [n, H·hd], [n, KV·hd], [n, KV·v], [n, H·v]
  ViewOf<B, float, 1> sinks;          // [n_heads] f32 copy of the sinks
};

// out = attention(x) for the tokens of every chunk (each chunk's keys/values appended to its
// cache at rows cache->size()...; the cache sizes advance after the whole pass, in the model).
// x [n, d_model], cos/sin [n, rotary/2], out [n, d_model].
template <class B>
void attention_forward(B be, const AttentionOptions& o, const AttentionWeights<typename B::memory>& w, index_t layer,
                       std::span<const BasicSequenceChunk<typename B::memory>> chunks, ViewOf<B, const float, 2> x,
                       ViewOf<B, const float, 2> cos, ViewOf<B, const float, 2> sin, const AttentionScratch<B>& s,
                       ViewOf<B, float, 2> out) {
  using CV = ViewOf<B, const float, 2>;
  const index_t n = x.extent(0), H = o.shape.n_heads, KV = o.shape.n_kv_heads, hd = o.shape.head_dim;
  linear(be, x, w.q, s.q);
  add_bias(be, s.q, w.q_bias);
  linear(be, x, w.k, s.k);
  add_bias(be, s.k, w.k_bias);
  linear(be, x, w.v, s.v);
  add_bias(be, s.v, w.v_bias);
  if (o.qk_norm == QkNorm::kWholeProjection) {
    rms_norm(be, CV(s.q), w.q_norm, o.norm_eps, s.q);
    rms_norm(be, CV(s.k), w.k_norm, o.norm_eps, s.k);
  } else if (o.qk_norm == QkNorm::kPerHead) {
    const ViewOf<B, float, 2> qh(s.q.data(), {n * H, hd}), kh(s.k.data(), {n * KV, hd});
    rms_norm(be, CV(qh), w.q_norm, o.norm_eps, qh);
    rms_norm(be, CV(kh), w.k_norm, o.norm_eps, kh);
  }
  if (o.clip_qkv > 0) {
    kernels::clamp(be, s.q, o.clip_qkv);
    kernels::clamp(be, s.k, o.clip_qkv);
    kernels::clamp(be, s.v, o.clip_qkv);
  }
  kernels::rope(be, ViewOf<B, float, 3>(s.q.data(), {n, H, hd}), cos, sin, o.rope_pairing);
  kernels::rope(be, ViewOf<B, float, 3>(s.k.data(), {n, KV, hd}), cos, sin, o.rope_pairing);

  ViewOf<B, const float, 1> sinks = ViewOf<B, const float, 1>(s.sinks).slice(0, 0);
  if (!w.sinks.empty()) {
    widen(be, w.sinks, s.sinks);
    sinks = s.sinks;
  }
  index_t t0 = 0;
  for (const auto& ch : chunks) {
    const index_t m = ch.tokens.size(), start = ch.cache->size();
    const auto keys = ch.cache->keys(layer), values = ch.cache->values(layer);
    kernels::copy_rows(be, CV(s.k).slice(t0, t0 + m), keys.slice(start, start + m));
    kernels::copy_rows(be, CV(s.v).slice(t0, t0 + m), values.slice(start, start + m));
    kernels::attention(be, o.shape, CV(s.q).slice(t0, t0 + m), CV(keys), CV(values), start, sinks,
                       s.attn.slice(t0, t0 + m));
    t0 += m;
  }
  linear(be, CV(s.attn), w.o, out);
  add_bias(be, out, w.o_bias);
}

}  // namespace moe::layers
