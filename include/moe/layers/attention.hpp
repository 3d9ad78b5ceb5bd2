// The attention layer of a standard (multi-head / grouped-query) block: q/k/v projections with
// optional biases, QK-norm, OLMoE's clip_qkv, rope, the KV-cache append of each sequence and
// causal attention over its cache (sliding window, GPT-OSS sinks), then the output projection.
// Every step is a kernel on the backend; the layer only wires them.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/lora_linear.hpp"

#include <cstdint>
#include <span>

namespace moe::layers {

using kernels::AttentionShape;

enum class QkNorm : std::uint8_t {
  kNone,
  kPerHead,         // RMSNorm over each head's head_dim (Qwen3-MoE, GLM-4-MoE use_qk_norm)
  kWholeProjection,  // RMSNorm over the whole q / k projection before the head split (OLMoE, MiniMax-M2)
  kPerHeadAfterRope,  // per-head RMSNorm of the rotated q / k (Hunyuan's query/key_layernorm)
  kUnweightedAfterRope  // per-head RMS normalisation without a weight after rope, on rope layers only
                        // (Llama 4's Llama4TextL2Norm with use_qk_norm)
};

template <class S = host_memory>
struct AttentionWeights {
  WeightMatrix<S> q, k, v, o;  // [n_heads·hd, d], [n_kv·hd, d], [n_kv·hd, d], [d, n_heads·hd]
  WeightVector<S> q_bias, k_bias, v_bias, o_bias;
  WeightVector<S> q_norm, k_norm;  // [head_dim] per-head, or [n_heads·hd] / [n_kv·hd] whole
  WeightVector<S> sinks;           // [n_heads] GPT-OSS
  // Gated attention (Qwen3-Next): the output gate's rows of the doubled q_proj, [n_heads·hd, d];
  // the attention output is multiplied by σ(x·gateᵀ) before o_proj.
  WeightMatrix<S> gate;

  template <class F>
  auto transform(F&& f) const {
    AttentionWeights<typename decltype(f("", q))::memory> r;
    r.q = f("q_proj.weight", q), r.k = f("k_proj.weight", k), r.v = f("v_proj.weight", v);
    r.o = f("o_proj.weight", o), r.q_bias = f("q_proj.bias", q_bias), r.k_bias = f("k_proj.bias", k_bias);
    r.v_bias = f("v_proj.bias", v_bias), r.o_bias = f("o_proj.bias", o_bias);
    r.q_norm = f("q_norm.weight", q_norm), r.k_norm = f("k_norm.weight", k_norm), r.sinks = f("sinks", sinks);
    r.gate = f("q_proj.gate.weight", gate);
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
  // Per layer (Llama 4): false on NoPE layers, which skip rope (and its QK-norm).
  bool rope = true;
  // Llama 4's attention temperature tuning on NoPE layers: q scaled by 1 + temperature_scale ·
  // log1p(floor((position + 1) / temperature_floor)); 0 = off.
  float temperature_scale = 0.0f;
  float temperature_floor = 1.0f;
};

// The scratch the layer writes (views into the Workspace, first n rows).
template <class B>
struct AttentionScratch {
  ViewOf<B, float, 2> q, k, v, attn;  // [n, H·hd], [n, KV·hd], [n, KV·v], [n, H·v]
  ViewOf<B, float, 1> sinks;          // [n_heads] f32 copy of the sinks
  ViewOf<B, float, 2> gate = {};      // [n, H·v] the output gate's logits (gated attention only)
  ViewOf<B, const std::int64_t, 1> positions = {};  // [n] the rows' positions (temperature tuning)
};

// out = attention(x) for the rows of every sequence of the pass (each sequence's keys/values
// appended to its cache at its slot's start...; the cache sizes advance after the whole pass, in
// the model).
// x [n, d_model], cos/sin [n, rotary/2], out [n, d_model]. Unmerged LoRA: lora holds the q/k/v/o
// adapter tables and rows each row's adapter (both empty: the plain layer).
template <class B>
void attention_forward(B be, const AttentionOptions& o, const AttentionWeights<typename B::memory>& w,
                       const kernels::PassSlots<typename B::memory>& pass, const kernels::CacheLayer& layer,
                       ViewOf<B, const float, 2> x,
                       ViewOf<B, const float, 2> cos, ViewOf<B, const float, 2> sin, const AttentionScratch<B>& s,
                       ViewOf<B, float, 2> out, const AttentionLora<typename B::memory>& lora = {},
                       const LoraRows<B>& lora_rows = {}) {
  using CV = ViewOf<B, const float, 2>;
  const index_t n = x.extent(0), H = o.shape.n_heads, KV = o.shape.n_kv_heads, hd = o.shape.head_dim;
  linear_fanout<B, 3>(be, x, {&w.q, &w.k, &w.v}, {s.q, s.k, s.v});
  lora_update(be, x, lora.q, lora_rows, s.q);
  lora_update(be, x, lora.k, lora_rows, s.k);
  lora_update(be, x, lora.v, lora_rows, s.v);
  add_bias(be, s.q, w.q_bias);
  add_bias(be, s.k, w.k_bias);
  add_bias(be, s.v, w.v_bias);
  const ViewOf<B, float, 3> q3(s.q.data(), {n, H, hd}), k3(s.k.data(), {n, KV, hd});
  const bool per_head = o.qk_norm == QkNorm::kPerHead;
  const bool after_rope = o.qk_norm == QkNorm::kPerHeadAfterRope;
  const auto norm_heads = [&] {
    const ViewOf<B, float, 2> qh(s.q.data(), {n * H, hd}), kh(s.k.data(), {n * KV, hd});
    rms_norm(be, CV(qh), w.q_norm, o.norm_eps, qh);
    rms_norm(be, CV(kh), w.k_norm, o.norm_eps, kh);
  };
  const bool unweighted = o.qk_norm == QkNorm::kUnweightedAfterRope;
  bool appended = false;  // k and v in the cache already
  if (o.rope && o.clip_qkv <= 0 && o.qk_norm != QkNorm::kWholeProjection && !after_rope && !unweighted &&
      (!per_head || w.q_norm.dtype == w.k_norm.dtype)) {
    // The common case in one fused step: per-head QK-norm (Qwen3, GLM-4) or none, then rope, and
    // the new keys and values into the cache (the steps below touch q only).
    if (per_head) {
      visit_vector_format<B>(w.q_norm.dtype, [&](auto tag) {
        using T = decltype(tag);
        kernels::qk_norm_rope_append(be, q3, k3, CV(s.v), w.q_norm.template view<T>(), w.k_norm.template view<T>(),
                                     o.norm_eps, cos, sin, o.rope_pairing, pass, layer);
      });
    } else {
      kernels::qk_norm_rope_append(be, q3, k3, CV(s.v), ViewOf<B, const float, 1>(), ViewOf<B, const float, 1>(),
                                   o.norm_eps, cos, sin, o.rope_pairing, pass, layer);
    }
    appended = true;
  } else {
    if (o.qk_norm == QkNorm::kWholeProjection) {
      rms_norm(be, CV(s.q), w.q_norm, o.norm_eps, s.q);
      rms_norm(be, CV(s.k), w.k_norm, o.norm_eps, s.k);
    } else if (per_head) {
      norm_heads();
    }
    if (o.clip_qkv > 0) {
      kernels::clamp(be, s.q, o.clip_qkv);
      kernels::clamp(be, s.k, o.clip_qkv);
      kernels::clamp(be, s.v, o.clip_qkv);
    }
    if (o.rope) {
      kernels::rope(be, q3, cos, sin, o.rope_pairing);
      kernels::rope(be, k3, cos, sin, o.rope_pairing);
      if (after_rope) norm_heads();
      if (unweighted) {
        kernels::rms_normalize(be, ViewOf<B, float, 2>(s.q.data(), {n * H, hd}), o.norm_eps);
        kernels::rms_normalize(be, ViewOf<B, float, 2>(s.k.data(), {n * KV, hd}), o.norm_eps);
      }
    }
  }
  if (o.temperature_scale != 0.0f) {
    kernels::attention_temperature(be, s.q, s.positions, o.temperature_floor, o.temperature_scale);
  }

  ViewOf<B, const float, 1> sinks = ViewOf<B, const float, 1>(s.sinks).slice(0, 0);
  if (!w.sinks.empty()) {
    widen(be, w.sinks, s.sinks);
    sinks = s.sinks;
  }
  if (!appended) kernels::append_cache(be, pass, layer, CV(s.k), CV(s.v));
  kernels::cached_attention(be, o.shape, pass, layer, CV(s.q), sinks, s.attn);
  if (!w.gate.empty()) {
    linear(be, x, w.gate, s.gate);
    kernels::sigmoid_mul(be, s.attn, CV(s.gate));
  }
  linear(be, CV(s.attn), w.o, out);
  lora_update(be, CV(s.attn), lora.o, lora_rows, out);
  add_bias(be, out, w.o_bias);
}

}  // namespace moe::layers
