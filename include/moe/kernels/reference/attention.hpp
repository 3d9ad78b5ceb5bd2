// Causal attention over a KV cache (the oracle): multi-head / grouped-query attention with an
// optional sliding window and per-head sinks (GPT-OSS), and multi-head latent attention over the
// latent cache in its weight-absorbed form (DeepSeek-V2/V3). Softmax is f32 in one streaming pass
// (running max and sum, rescaled per block of keys), so no score buffer the size of the context
// is needed. The cpu backend runs MLA's per-(token, head) work in parallel and has its own
// vectorised kernel for the other attention (kernels/cpu/attention.hpp).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moe::kernels {

struct AttentionShape {
  index_t n_heads = 0;
  index_t n_kv_heads = 0;
  index_t head_dim = 0;        // q/k
  index_t v_head_dim = 0;
  float scale = 1.0f;          // multiplies q·k
  index_t sliding_window = 0;  // 0: full causal; else key j is visible from query p iff p - j < window
  // Llama 4's chunked attention: 0 = none; else key j is visible from query p only when both lie in
  // the same chunk of this many positions (j / chunk == p / chunk), as create_chunked_causal_mask.
  index_t chunk = 0;
};

// The first key position query position `pos` sees (the window and the chunk both bound it below;
// it never decreases with pos, so a tile of queries starts at its first row's bound).
constexpr index_t first_visible_key(index_t sliding_window, index_t chunk, index_t pos) noexcept {
  index_t lo = sliding_window > 0 && pos + 1 > sliding_window ? pos + 1 - sliding_window : 0;
  if (chunk > 0) lo = std::max(lo, pos - pos % chunk);
  return lo;
}

struct MlaShape {
  index_t n_heads = 0;
  index_t kv_lora_rank = 0;
  index_t nope = 0;  // qk_nope_head_dim
  index_t rope = 0;  // qk_rope_head_dim
  index_t v = 0;     // v_head_dim
  float scale = 1.0f;
  index_t qk() const noexcept { return nope + rope; }
};

namespace detail {

// Dot product with several independent partial sums so the compiler can vectorise it.
inline float dot(const float* a, const float* b, index_t n) noexcept {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (index_t u = 0; u < 8; ++u) acc[u] += a[i + u] * b[i + u];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

inline void axpy(float a, const float* x, float* y, index_t n) noexcept {
  for (index_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline constexpr index_t kKeyBlock = 64;

// out[0..width) = Σ_j softmax(score)_j · value(j) over keys j in [lo, hi), optionally with a sink
// logit that joins the softmax denominator but contributes no value. `score(j)` returns the
// scaled logit of key j, `value(j)` a pointer to its width-wide value row.
template <class Score, class Value>
void attend_streaming(index_t lo, index_t hi, bool has_sink, float sink, Score&& score, Value&& value, index_t width,
                      float* out) {
  float m = has_sink ? sink : -std::numeric_limits<float>::infinity();
  float l = has_sink ? 1.0f : 0.0f;
  std::fill_n(out, width, 0.0f);
  float s[kKeyBlock];
  for (index_t b = lo; b < hi; b += kKeyBlock) {
    const index_t e = std::min(hi, b + kKeyBlock);
    float bm = -std::numeric_limits<float>::infinity();
    for (index_t j = b; j < e; ++j) {
      s[j - b] = score(j);
      bm = std::max(bm, s[j - b]);
    }
    if (bm > m) {
      const float rescale = std::exp(m - bm);
      l *= rescale;
      for (index_t i = 0; i < width; ++i) out[i] *= rescale;
      m = bm;
    }
    for (index_t j = b; j < e; ++j) {
      const float p = std::exp(s[j - b] - m);
      l += p;
      axpy(p, value(j), out, width);
    }
  }
  const float inv = l > 0 ? 1.0f / l : 0.0f;
  for (index_t i = 0; i < width; ++i) out[i] *= inv;
}

// Shape checks shared by every backend's attention (any memory space: extents only).
template <class S>
void check_attention(const AttentionShape& a, const TensorView<const float, 2, S>& q,
                     const TensorView<const float, 2, S>& keys, const TensorView<const float, 2, S>& values,
                     index_t start, const TensorView<const float, 1, S>& sinks, const TensorView<float, 2, S>& out) {
  const index_t n = q.extent(0);
  require(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0 && q.extent(1) == a.n_heads * a.head_dim &&
              keys.extent(1) == a.n_kv_heads * a.head_dim && values.extent(1) == a.n_kv_heads * a.v_head_dim &&
              keys.extent(0) >= start + n && values.extent(0) >= start + n && out.extent(0) == n &&
              out.extent(1) == a.n_heads * a.v_head_dim && (sinks.extent(0) == 0 || sinks.extent(0) == a.n_heads),
          ErrorCode::kInvalidArgument,
          "attention: q [{}, {}], keys [{}, {}], values [{}, {}], {} sinks, out [{}, {}] at start {} do not fit "
          "{} heads of {} / {} kv heads of {}",
          n, q.extent(1), keys.extent(0), keys.extent(1), values.extent(0), values.extent(1), sinks.extent(0),
          out.extent(0), out.extent(1), start, a.n_heads, a.head_dim, a.n_kv_heads, a.v_head_dim);
}

// Query head h of token t (position start + t); reads kv head h / (n_heads / n_kv_heads).
inline void attention_item(const AttentionShape& a, const View<const float, 2>& q, const View<const float, 2>& keys,
                           const View<const float, 2>& values, index_t start, const View<const float, 1>& sinks,
                           const View<float, 2>& out, index_t t, index_t h) {
  const index_t kvh = h / (a.n_heads / a.n_kv_heads);
  const index_t pos = start + t;
  const index_t lo = first_visible_key(a.sliding_window, a.chunk, pos);
  const float* qh = &q(t, h * a.head_dim);
  const float* kbase = keys.data() + kvh * a.head_dim;
  const float* vbase = values.data() + kvh * a.v_head_dim;
  const index_t ks = keys.stride(0), vs = values.stride(0);
  const bool has_sink = sinks.extent(0) != 0;
  attend_streaming(
      lo, pos + 1, has_sink, has_sink ? sinks[h] : 0.0f,
      [&](index_t j) { return dot(qh, kbase + j * ks, a.head_dim) * a.scale; },
      [&](index_t j) { return vbase + j * vs; }, a.v_head_dim, &out(t, h * a.v_head_dim));
}

template <class S>
void check_mla_attention(const MlaShape& s, const TensorView<const float, 2, S>& q,
                         const TensorView<const float, 2, S>& q_latent, const TensorView<const float, 2, S>& latent,
                         const TensorView<const float, 2, S>& k_rope, index_t start,
                         const TensorView<float, 2, S>& out_latent) {
  const index_t n = q.extent(0), r = s.kv_lora_rank;
  require(q.extent(1) == s.n_heads * s.qk() && q_latent.extent(0) == n && q_latent.extent(1) == s.n_heads * r &&
              latent.extent(1) == r && k_rope.extent(1) == s.rope && latent.extent(0) >= start + n &&
              k_rope.extent(0) >= start + n && out_latent.extent(0) == n && out_latent.extent(1) == s.n_heads * r,
          ErrorCode::kInvalidArgument,
          "mla_attention: q [{}, {}], q_latent [{}, {}], latent [{}, {}], k_rope [{}, {}], out [{}, {}] at start {}",
          n, q.extent(1), q_latent.extent(0), q_latent.extent(1), latent.extent(0), latent.extent(1),
          k_rope.extent(0), k_rope.extent(1), out_latent.extent(0), out_latent.extent(1), start);
}

inline void mla_attention_item(const MlaShape& s, const View<const float, 2>& q, const View<const float, 2>& q_latent,
                               const View<const float, 2>& latent, const View<const float, 2>& k_rope, index_t start,
                               const View<float, 2>& out_latent, index_t t, index_t h) {
  const index_t r = s.kv_lora_rank;
  const float* ql = &q_latent(t, h * r);
  const float* qr = &q(t, h * s.qk() + s.nope);
  attend_streaming(
      0, start + t + 1, false, 0.0f,
      [&](index_t j) { return (dot(ql, &latent(j, 0), r) + dot(qr, &k_rope(j, 0), s.rope)) * s.scale; },
      [&](index_t j) { return &latent(j, 0); }, r, &out_latent(t, h * r));
}

}  // namespace detail

// Attention of n new tokens of one sequence, at positions start..start+n-1, whose keys and values
// are already in the cache rows [0, start+n).
//   q      [n, n_heads·head_dim] (rope applied)
//   keys   [>= start+n, n_kv_heads·head_dim], values [>= start+n, n_kv_heads·v_head_dim]
//   sinks  [n_heads] logits (GPT-OSS) or [0]
//   out    [n, n_heads·v_head_dim]
inline void attention(backend::reference, const AttentionShape& a, View<const float, 2> q, View<const float, 2> keys,
                      View<const float, 2> values, index_t start, View<const float, 1> sinks, View<float, 2> out) {
  detail::check_attention(a, q, keys, values, start, sinks, out);
  for (index_t t = 0; t < q.extent(0); ++t) {
    for (index_t h = 0; h < a.n_heads; ++h) detail::attention_item(a, q, keys, values, start, sinks, out, t, h);
  }
}

// Latent attention (MLA, absorbed form) for n tokens of one sequence at positions start..:
//   q          [n, n_heads·(nope+rope)] (rope part rotated), q_latent [n, n_heads·rank]
//   latent     [>= start+n, rank] cache, k_rope [>= start+n, rope] cache
//   out_latent [n, n_heads·rank]: Σ_j softmax(scale·(q_lat·c_j + q_rope·k_rope_j))_j · c_j per head
inline void mla_attention(backend::reference, const MlaShape& s, View<const float, 2> q,
                          View<const float, 2> q_latent, View<const float, 2> latent, View<const float, 2> k_rope,
                          index_t start, View<float, 2> out_latent) {
  detail::check_mla_attention(s, q, q_latent, latent, k_rope, start, out_latent);
  for (index_t t = 0; t < q.extent(0); ++t) {
    for (index_t h = 0; h < s.n_heads; ++h) {
      detail::mla_attention_item(s, q, q_latent, latent, k_rope, start, out_latent, t, h);
    }
  }
}

}  // namespace moe::kernels
