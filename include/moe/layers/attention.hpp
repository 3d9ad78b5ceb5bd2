// Causal multi-head / grouped-query attention over a KV cache, with optional sliding window and
// per-head attention sinks (GPT-OSS). Softmax is computed in f32 in one streaming pass (running
// max and sum, rescaled per block of keys), so no score buffer the size of the context is needed.
#pragma once

#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moe::layers {

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

}  // namespace detail

struct AttentionShape {
  index_t n_heads = 0;
  index_t n_kv_heads = 0;
  index_t head_dim = 0;       // q/k
  index_t v_head_dim = 0;
  float scale = 1.0f;         // multiplies q·k
  index_t sliding_window = 0; // 0: full causal; else key j is visible from query p iff p - j < window
};

// Attention of n new tokens of one sequence, at positions start..start+n-1, whose keys and values
// are already in the cache rows [0, start+n).
//   q      [n, n_heads·head_dim] (rope applied)
//   keys   [>= start+n, n_kv_heads·head_dim], values [>= start+n, n_kv_heads·v_head_dim]
//   sinks  [n_heads] logits (GPT-OSS) or nullptr
//   out    [n, n_heads·v_head_dim]
// Query head h reads kv head h / (n_heads / n_kv_heads) (GQA). Parallel over (token, head).
inline void attention_forward(const AttentionShape& a, View<const float, 2> q, View<const float, 2> keys,
                              View<const float, 2> values, index_t start, const float* sinks, View<float, 2> out) {
  const index_t n = q.extent(0);
  const index_t group = a.n_heads / a.n_kv_heads;
  parallel_for_chunks(n * a.n_heads, 4, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = item / a.n_heads, h = item % a.n_heads, kvh = h / group;
      const index_t pos = start + t;
      const index_t lo = a.sliding_window > 0 && pos + 1 > a.sliding_window ? pos + 1 - a.sliding_window : 0;
      const float* qh = &q(t, h * a.head_dim);
      const float* kbase = keys.data() + kvh * a.head_dim;
      const float* vbase = values.data() + kvh * a.v_head_dim;
      const index_t ks = keys.stride(0), vs = values.stride(0);
      detail::attend_streaming(
          lo, pos + 1, sinks != nullptr, sinks != nullptr ? sinks[h] : 0.0f,
          [&](index_t j) { return detail::dot(qh, kbase + j * ks, a.head_dim) * a.scale; },
          [&](index_t j) { return vbase + j * vs; }, a.v_head_dim, &out(t, h * a.v_head_dim));
    }
  });
}

}  // namespace moe::layers
