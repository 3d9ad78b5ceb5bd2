// DeepSeek sparse attention (DSA: DeepSeek-V3.2, GLM-5), the oracle. A lightning indexer scores
// every causal position j of a query t's sequence with its own small multi-head query q_i[t, h]
// [index_head_dim], per-head weights w[t, h] and one key k_i[j] per token (kept in the KV cache
// after the layer's values, CacheLayer::index_width):
//   index[t, j] = Σ_h (w[t, h] · n_index_heads^-½) · relu(q_i[t, h]·k_i[j] · index_head_dim^-½)
// and MLA then attends only to the top_k positions of highest index (all when fewer are causal).
// Tie rule: relu makes many scores exactly 0, so ties at the top_k boundary are common. The
// reference fixtures come from torch's CPU topk, which keeps whichever tied entries libstdc++'s
// std::nth_element leaves in front over the row of all the pass's keys (the causally masked
// positions at the lowest float: transformers adds finfo.min). dsa_top_positions replays that
// algorithm, so the choice is deterministic (a function of the scores and of the row length)
// and matches the reference on the fixtures. Rows list their positions in ascending order;
// unused entries are -1.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/host_device.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>
#include <limits>

namespace moe::kernels {

struct DsaShape {
  index_t n_heads = 0;   // index_n_heads
  index_t head_dim = 0;  // index_head_dim
  index_t top_k = 0;     // index_topk (0: the layer attends densely)
};

namespace detail {

// libstdc++'s std::nth_element (introselect: median-of-three unguarded partitions while more
// than 3 remain, then insertion sort) on (score, position) pairs ordered by score alone,
// descending: written out so that the cuda backend selects the same set (the order in which
// torch's CPU topk meets tied scores decides which of them it keeps). The heap-select fallback
// at the depth limit is replaced by an insertion sort (same set of the first nth+1, which is all
// a selection needs, when scores differ; on ties it may differ from libstdc++). torch switches to
// std::partial_sort when 64·top_k <= the row length; there too only the choice among ties can
// differ from torch (never the scores attended to).
struct DsaPair {
  float score;
  std::int32_t pos;
};
MOE_HD inline void dsa_swap(DsaPair& a, DsaPair& b) noexcept {
  const DsaPair t = a;
  a = b;
  b = t;
}
MOE_HD inline bool dsa_before(const DsaPair& a, const DsaPair& b) noexcept { return a.score > b.score; }
MOE_HD inline void dsa_insertion_sort(DsaPair* first, DsaPair* last) noexcept {
  if (first == last) return;
  for (DsaPair* i = first + 1; i != last; ++i) {
    const DsaPair v = *i;
    if (dsa_before(v, *first)) {
      for (DsaPair* j = i; j != first; --j) *j = *(j - 1);
      *first = v;
    } else {
      DsaPair* j = i;
      while (dsa_before(v, *(j - 1))) {
        *j = *(j - 1);
        --j;
      }
      *j = v;
    }
  }
}
MOE_HD inline void dsa_nth_element(DsaPair* first, DsaPair* nth, DsaPair* last) noexcept {
  if (first == last || nth == last) return;
  int depth = 0;
  for (long n = last - first; n > 1; n >>= 1) ++depth;
  depth *= 2;
  while (last - first > 3) {
    if (depth == 0) break;
    --depth;
    DsaPair* a = first + 1;
    DsaPair* b = first + (last - first) / 2;
    DsaPair* c = last - 1;
    if (dsa_before(*a, *b)) {
      if (dsa_before(*b, *c)) dsa_swap(*first, *b);
      else if (dsa_before(*a, *c)) dsa_swap(*first, *c);
      else dsa_swap(*first, *a);
    } else if (dsa_before(*a, *c)) {
      dsa_swap(*first, *a);
    } else if (dsa_before(*b, *c)) {
      dsa_swap(*first, *c);
    } else {
      dsa_swap(*first, *b);
    }
    DsaPair* lo = first + 1;
    DsaPair* hi = last;
    while (true) {
      while (dsa_before(*lo, *first)) ++lo;
      --hi;
      while (dsa_before(*first, *hi)) --hi;
      if (!(lo < hi)) break;
      dsa_swap(*lo, *hi);
      ++lo;
    }
    if (lo <= nth) first = lo;
    else last = lo;
  }
  dsa_insertion_sort(first, last);
}

template <class S>
void check_dsa_select(const DsaShape& d, const CacheLayer& l, const TensorView<const float, 2, S>& q,
                      const TensorView<const float, 2, S>& w, const TensorView<std::int32_t, 2, S>& sel) {
  const index_t n = q.extent(0);
  require(d.n_heads > 0 && d.head_dim > 0 && d.top_k > 0 && l.index_width == d.head_dim &&
              q.extent(1) == d.n_heads * d.head_dim && w.extent(0) == n && w.extent(1) == d.n_heads &&
              sel.extent(0) == n && sel.extent(1) == d.top_k,
          ErrorCode::kInvalidArgument,
          "dsa_select: q [{}, {}], weights [{}, {}], selection [{}, {}] for {} heads of {}, top {}, index keys of {}", n,
          q.extent(1), w.extent(0), w.extent(1), sel.extent(0), sel.extent(1), d.n_heads, d.head_dim, d.top_k,
          l.index_width);
}

// The index score of row t against key row k (the formula above; host and device code).
MOE_HD inline float dsa_index_score(const DsaShape& d, const float* q, const float* w, const float* k) noexcept {
  const float scale = 1.0f / sqrtf(static_cast<float>(d.head_dim));
  const float wscale = 1.0f / sqrtf(static_cast<float>(d.n_heads));
  float acc = 0.0f;
  for (index_t h = 0; h < d.n_heads; ++h) {
    float dot = 0.0f;
    for (index_t i = 0; i < d.head_dim; ++i) dot += q[h * d.head_dim + i] * k[i];
    const float s = dot * scale;
    acc += (w[h] * wscale) * (s > 0.0f ? s : 0.0f);
  }
  return acc;
}

// Which top_k of a row of `total` index scores (positions >= count masked) survive: the set
// torch's CPU topk picks (std::nth_element of (score, position) pairs by score alone, the masked
// positions at the lowest float), which resolves the ties relu makes (scores of exactly 0) the
// way the reference does. Only the first min(count, top_k) entries of out are kept (in position
// order), the rest -1.
inline void dsa_top_positions(std::vector<DsaPair>& row, const std::vector<float>& score,
                              index_t count, index_t total, index_t top_k, std::int32_t* out) {
  row.resize(static_cast<std::size_t>(total));
  for (index_t j = 0; j < total; ++j) {
    row[j] = DsaPair{j < count ? score[j] : std::numeric_limits<float>::lowest(), static_cast<std::int32_t>(j)};
  }
  const index_t k = std::min(top_k, total);
  dsa_nth_element(row.data(), row.data() + (k - 1), row.data() + total);
  index_t c = 0;
  for (index_t i = 0; i < k; ++i) {
    if (static_cast<index_t>(row[i].pos) < count) out[c++] = row[i].pos;
  }
  std::sort(out, out + c);
  for (index_t i = c; i < top_k; ++i) out[i] = -1;
}

}  // namespace detail

// Appends row t of k [n, index_width] to the indexer keys of token_slot[t]'s cache (layer l).
inline void append_index_keys(backend::reference be, const PassSlots<host_memory>& p, const CacheLayer& l,
                              View<const float, 2> k) {
  require(k.extent(1) == l.index_width && l.index_width > 0, ErrorCode::kInvalidArgument,
          "append_index_keys: keys of width {} for a layer of index width {}", k.extent(1), l.index_width);
  detail::check_token_slots(p, k.extent(0), "append_index_keys");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    const auto start = static_cast<index_t>(s.start);
    copy_rows(be, k.slice(r0, r1), detail::cache_index_keys(s, l).slice(start, start + (r1 - r0)));
  });
}

// The top_k positions of every row among its causal positions (its indexer keys appended):
// q [n, n_heads·head_dim] (rope applied), w [n, n_heads] (weights_proj output), sel [n, top_k].
inline void dsa_select(backend::reference, const DsaShape& d, const PassSlots<host_memory>& p, const CacheLayer& l,
                       View<const float, 2> q, View<const float, 2> w, View<std::int32_t, 2> sel) {
  detail::check_dsa_select(d, l, q, w, sel);
  detail::check_token_slots(p, q.extent(0), "dsa_select");
  std::vector<float> score;
  std::vector<detail::DsaPair> row;
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    const View<float, 2> keys = detail::cache_index_keys(s, l);
    const index_t total = static_cast<index_t>(s.start) + (r1 - r0);
    for (index_t t = r0; t < r1; ++t) {
      const index_t count = static_cast<index_t>(s.start) + (t - r0) + 1;
      score.resize(static_cast<std::size_t>(count));
      for (index_t j = 0; j < count; ++j) score[j] = detail::dsa_index_score(d, &q(t, 0), &w(t, 0), &keys(j, 0));
      detail::dsa_top_positions(row, score, count, total, d.top_k, &sel(t, 0));
    }
  });
}

namespace detail {

template <class S>
void check_sparse_mla(const MlaShape& m, const CacheLayer& l, const TensorView<const float, 2, S>& q,
                      const TensorView<const float, 2, S>& q_latent, const TensorView<const std::int32_t, 2, S>& sel,
                      const TensorView<float, 2, S>& out_latent) {
  const index_t n = q.extent(0), r = m.kv_lora_rank;
  require(q.extent(1) == m.n_heads * m.qk() && q_latent.extent(0) == n && q_latent.extent(1) == m.n_heads * r &&
              l.key_width == r && l.value_width == m.rope && sel.extent(0) == n && sel.extent(1) > 0 &&
              out_latent.extent(0) == n && out_latent.extent(1) == m.n_heads * r,
          ErrorCode::kInvalidArgument,
          "sparse_mla_attention: q [{}, {}], q_latent [{}, {}], selection [{}, {}], a cache layer of {} / {}, out [{}, "
          "{}] for {} heads of rank {}",
          n, q.extent(1), q_latent.extent(0), q_latent.extent(1), sel.extent(0), sel.extent(1), l.key_width,
          l.value_width, out_latent.extent(0), out_latent.extent(1), m.n_heads, r);
}

// The number of leading valid (>= 0) entries of a selection row.
inline index_t selected_count(const std::int32_t* row, index_t top_k) noexcept {
  index_t c = 0;
  while (c < top_k && row[c] >= 0) ++c;
  return c;
}

// A selection row never lists a position after its own (the row's query at `pos`).
inline void check_selected_positions(const std::int32_t* row, index_t count, index_t pos, index_t t) {
  for (index_t i = 0; i < count; ++i) {
    require(static_cast<index_t>(row[i]) <= pos, ErrorCode::kInvalidArgument,
            "cached_sparse_mla_attention: row {} at position {} selects position {}", t, pos, row[i]);
  }
}

// Head h of row t over the `count` cache positions of `row` (the latent and rope keys of its
// sequence): the absorbed MLA of kernels/reference/attention.hpp, into out_latent(t, h·rank...).
inline void sparse_mla_item(const MlaShape& m, const View<float, 2>& latent, const View<float, 2>& k_rope,
                            const View<const float, 2>& q, const View<const float, 2>& q_latent,
                            const std::int32_t* row, index_t count, const View<float, 2>& out_latent, index_t t,
                            index_t h) {
  const index_t r = m.kv_lora_rank;
  const float* ql = &q_latent(t, h * r);
  const float* qr = &q(t, h * m.qk() + m.nope);
  attend_streaming(
      0, count, false, 0.0f,
      [&](index_t i) { return (dot(ql, &latent(row[i], 0), r) + dot(qr, &k_rope(row[i], 0), m.rope)) * m.scale; },
      [&](index_t i) { return &latent(row[i], 0); }, r, &out_latent(t, h * r));
}

}  // namespace detail

// MLA (absorbed form, kernels/reference/attention.hpp's mla_attention) of every row over only the
// cache positions its selection row lists: q [n, n_heads·(nope+rope)], q_latent / out_latent
// [n, n_heads·rank], sel [n, top_k] (positions <= the row's own; -1 ends a row).
inline void cached_sparse_mla_attention(backend::reference, const MlaShape& m, const PassSlots<host_memory>& p,
                                        const CacheLayer& l, View<const float, 2> q, View<const float, 2> q_latent,
                                        View<const std::int32_t, 2> sel, View<float, 2> out_latent) {
  detail::check_sparse_mla(m, l, q, q_latent, sel, out_latent);
  detail::check_token_slots(p, q.extent(0), "cached_sparse_mla_attention");
  const index_t top_k = sel.extent(1);
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    const View<float, 2> latent = detail::cache_keys(s, l), k_rope = detail::cache_values(s, l);
    for (index_t t = r0; t < r1; ++t) {
      const index_t pos = static_cast<index_t>(s.start) + (t - r0);
      const std::int32_t* row = &sel(t, 0);
      const index_t count = detail::selected_count(row, top_k);
      detail::check_selected_positions(row, count, pos, t);
      for (index_t h = 0; h < m.n_heads; ++h) detail::sparse_mla_item(m, latent, k_rope, q, q_latent, row, count, out_latent, t, h);
    }
  });
}

// LayerNorm over the last axis with weight and bias (the indexer's k_norm): x, out [n, d].
template <class W>
void layer_norm(backend::reference, View<const float, 2> x, View<const W, 1> weight, View<const W, 1> bias, float eps,
                View<float, 2> out) {
  const index_t n = x.extent(0), d = x.extent(1);
  require(weight.extent(0) == d && bias.extent(0) == d && out.extent(0) == n && out.extent(1) == d,
          ErrorCode::kInvalidArgument, "layer_norm: x [{}, {}], weight [{}], bias [{}], out [{}, {}]", n, d,
          weight.extent(0), bias.extent(0), out.extent(0), out.extent(1));
  for (index_t t = 0; t < n; ++t) {
    double mean = 0.0;
    for (index_t i = 0; i < d; ++i) mean += x(t, i);
    mean /= static_cast<double>(d);
    double var = 0.0;
    for (index_t i = 0; i < d; ++i) var += (x(t, i) - mean) * (x(t, i) - mean);
    var /= static_cast<double>(d);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    const float mu = static_cast<float>(mean);
    for (index_t i = 0; i < d; ++i) {
      out(t, i) = (x(t, i) - mu) * inv * detail::weight_to_float(weight(i)) + detail::weight_to_float(bias(i));
    }
  }
}

}  // namespace moe::kernels
